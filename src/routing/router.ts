/**
 * The routing decision — the one every layer (undici, http, sockets, the
 * env-CONNECT stand-in, UDP, egress probes) asks, and whose answer is final:
 * tunnel with this opener, pass, or fail with this error (route.ts, Action).
 * Layers adapt their arguments to a Target and apply the Action; no layer
 * holds policy of its own.
 *
 * It reads the caller's account synchronously from the scope store, so it
 * must be asked when the request is *created*, never from a socket callback
 * (pooled sockets run callbacks in their opener's context).
 *
 * | request created…                   | goes to                                              |
 * |------------------------------------|------------------------------------------------------|
 * | inside withProxy(account)          | the account's proxy; explicit noProxy → direct       |
 * | outside scopes, default proxy set  | the default proxy; noProxy or env NO_PROXY → direct  |
 * | outside scopes, no default proxy   | direct; requireScope → refused                       |
 *
 * Rules (rules.ts) come first: outside scopes every rule, inside an
 * account's scope only `scopes: true` ones ('direct' or 'block'); a rule is a
 * route of its own. Outside scopes the order is rules → noProxy / env
 * NO_PROXY → PAC (pac/) → the default proxy; `requireScope` refuses what
 * none of them routes. A PAC answer is asynchronous: the decision made here
 * is a tunnel with the PAC's opener, which waits for the answer (started
 * now) and tries its entries in order.
 *
 * Folded in: a connection to a configured proxy itself passes when it is the
 * route's own active proxy (a client tunnelling on its own) and is a leak
 * when it is anyone else's; `tunnelSockets: false` makes a socket-level
 * tunnel a leak; the leak policy (strict → fail, else pass with a `leak`
 * event) turns every leak into the final answer. A target that would go to
 * a proxy but cannot be put into a handshake as it is (validate-target.ts)
 * fails with InvalidTargetError before anything is sent.
 */
import { state } from '../state.js';
import type { NoProxyMatcher } from '../proxy/no-proxy.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { AccountPools } from './account-pools.js';
import { DEFAULT_ACCOUNT } from './account-pools.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, type Action, type RouteKey, type Target } from './route.js';
import type { Layer, LeakPolicy } from './leak-policy.js';
import type { TunnelOpener } from './account-tunnels.js';
import { channels, publish } from '../diagnostics.js';
import { invalidTarget, printableAuthority } from '../tunnel/validate-target.js';
import { LeakBlockedError } from '../errors.js';
import type { Rule, RuleSet } from './rules.js';
import type { PacDecider } from './pac/pac-router.js';

/**
 * Internal option of a manager that refuses everything (a process whose
 * inherited configuration could not be used, see preload.ts): why, said in
 * every refusal, and the unusable pointer its children inherit.
 */
export const REFUSAL = Symbol.for('session-proxy.refusal.v1');
export interface Refusal {
  readonly reason: string;
  readonly ref: string;
}

export interface RouterOptions {
  readonly pools: AccountPools;
  /** Explicit `noProxy` (or the loopback default): applies inside and outside scopes. */
  readonly noProxy: NoProxyMatcher;
  /** The operator's NO_PROXY as it was before install: applies outside scopes only. */
  readonly envNoProxy: NoProxyMatcher;
  readonly requireScope: boolean;
  /** What a requireScope refusal says, when not the default. */
  readonly refusal?: string;
  /** Tunnel socket-level connections (false: they are leaks). */
  readonly tunnelSockets: boolean;
  readonly leaks: LeakPolicy;
  /** The proxy an account's next connection uses (its active one, or a balanced pick). */
  readonly select: (account: string) => ProxyEndpoint;
  /** Why the account cannot use `proxy` right now (pool down, quarantine), if so. */
  readonly unavailable: (account: string, proxy: ProxyEndpoint) => Error | undefined;
  /** The tunnel opener of an (account, proxy) pool; `probe` skips the egress gate (verifyEgress is what lifts it). */
  readonly opener: (account: string, proxy: ProxyEndpoint, probe: boolean) => TunnelOpener;
  /** Counts a request routed through a proxy. */
  readonly counted?: (account: string, proxy: ProxyEndpoint) => void;
  /** Per-destination rules (option `rules`); a proxy rule's pool is in `pools` under its route key. */
  readonly rules?: RuleSet;
  /** The PAC (option `pac`): decides the default route after rules and noProxy. */
  readonly pac?: PacDecider;
}

export interface DecideOptions {
  /** The account the request belongs to; default: the calling scope's. `null`: outside any scope. */
  readonly account?: string | null;
  /** An egress probe: not gated, not refused by quarantine, not counted. */
  readonly probe?: boolean;
}

/** Why a connection passes, for the route channel. */
type PassReason = 'no-proxy' | 'env-no-proxy' | 'unscoped' | 'own-proxy' | 'leak-allowed' | 'rule';

/** What the `route` event says besides the action: the rule that matched, the PAC that decides. */
interface Matched {
  readonly rule?: Rule;
  readonly pac?: string;
}

export class Router {
  constructor(private readonly o: RouterOptions) {}

  /** The calling async context's account, if inside a withProxy scope. */
  currentAccount(): string | undefined {
    return state.scopes.getStore()?.account;
  }

  /**
   * The route a connection to `target` created now would serve (see
   * RouteKey): what pooled connections are keyed and guarded by.
   */
  routeKey(target: Target, account: string | undefined = this.currentAccount()): RouteKey {
    return this.resolve(target, account).route;
  }

  private resolve(target: Target, account: string | undefined): { route: RouteKey; rule?: Rule } {
    const rule = this.o.rules?.match(target, account !== undefined);
    if (rule) return { route: rule.route, rule };
    if (this.o.noProxy.matches(target.host, target.port)) return { route: BYPASS_ROUTE };
    if (account !== undefined) return { route: account };
    if ((this.o.pools.get(DEFAULT_ACCOUNT) || this.o.pac) && this.o.envNoProxy.matches(target.host, target.port)) return { route: BYPASS_ROUTE };
    return { route: DEFAULT_ROUTE };
  }

  /** The final answer for a connection `layer` is about to make; published on `session-proxy:route` when observed. */
  decide(target: Target, layer: Layer, options: DecideOptions = {}): Action {
    const account = options.account === undefined ? this.currentAccount() : (options.account ?? undefined);
    const { route, rule } = this.resolve(target, account);
    const matched: Matched = rule ? { rule } : {};
    if (route === BYPASS_ROUTE) {
      return this.report(target, layer, account, { kind: 'pass', route }, this.o.noProxy.matches(target.host, target.port) ? 'no-proxy' : 'env-no-proxy');
    }
    if (rule?.action === 'block') {
      const error = new LeakBlockedError(`blocked by rule #${rule.index} (match ${JSON.stringify(rule.match)})`, { account, target: printableAuthority(target.host, target.port) });
      return this.report(target, layer, account, { kind: 'fail', route, error }, undefined, undefined, matched);
    }
    // The pool whose proxy this route leaves through: a proxy rule's, the account's, or the default pool outside scopes.
    const owner = rule ? (rule.action === 'proxy' ? rule.route : undefined) : (account ?? (this.o.pools.get(DEFAULT_ACCOUNT) ? DEFAULT_ACCOUNT : undefined));
    if (this.o.pools.isProxyAddress(target)) {
      const foreign = this.o.pools.proxyAt(target, owner);
      if (!foreign) return this.report(target, layer, account, { kind: 'pass', route }, 'own-proxy', undefined, matched);
      const whose = foreign.pool === DEFAULT_ACCOUNT ? "the default route's proxy" : foreign.pool === owner ? `a proxy of the pool other than its active one` : `account "${foreign.pool}"'s proxy`;
      return this.leak(target, layer, account, route, `connection to ${whose} ${foreign.proxy} (a client dialing a proxy itself, e.g. one read from HTTP(S)_PROXY or an http.Agent with proxyEnv / NODE_USE_ENV_PROXY)`);
    }
    if (rule?.action === 'direct') return this.report(target, layer, account, { kind: 'pass', route }, 'rule', undefined, matched);
    if (!rule && account === undefined && this.o.pac) return this.byPac(this.o.pac, target, layer, route);
    if (owner === undefined) {
      if (this.o.requireScope) return this.leak(target, layer, account, route, this.o.refusal ?? 'traffic outside any withProxy scope is refused (requireScope: true)');
      return this.report(target, layer, account, { kind: 'pass', route }, 'unscoped');
    }
    // A target no handshake can carry as it is (CR/LF, a NUL, a space…) is refused here, before
    // anything is picked or dialed: for the socket layer, before even the relay is connected to.
    const named = rule ? undefined : owner;
    const invalid = layer === 'udp' ? undefined : invalidTarget(target, { account: named });
    if (invalid) return this.report(target, layer, account, { kind: 'fail', route, error: invalid }, undefined, undefined, matched);
    const proxy = this.o.select(owner);
    const tooLong = layer === 'udp' ? undefined : invalidTarget(target, { account: named, proxy, protocol: proxy.protocol });
    if (tooLong) return this.report(target, layer, account, { kind: 'fail', route, error: tooLong }, undefined, undefined, matched);
    const probe = options.probe ?? false;
    if (!probe) {
      const error = this.o.unavailable(owner, proxy);
      if (error) return this.report(target, layer, account, { kind: 'fail', route, error }, undefined, undefined, matched);
    }
    const untunnelable = layer === 'udp' ? "a UDP datagram cannot go through a proxy: it would leave from this host's IP" : layer === 'socket' && !this.o.tunnelSockets ? 'socket-level connection outside the HTTP layers, and tunnelSockets is false' : undefined;
    if (untunnelable) return this.leak(target, layer, account, route, untunnelable);
    if (!probe) this.o.counted?.(owner, proxy);
    return this.report(target, layer, account, { kind: 'tunnel', route, account: owner, proxy, open: this.o.opener(owner, proxy, probe) }, undefined, undefined, matched);
  }

  /**
   * The default route under a PAC: a tunnel whose opener waits for the
   * PAC's answer (evaluation started now, in the caller's context) and tries
   * its entries in order — proxies with health and failover, DIRECT as a
   * plumbing connection. UDP cannot wait for an answer nor go through a proxy.
   */
  private byPac(pac: PacDecider, target: Target, layer: Layer, route: RouteKey): Action {
    if (layer === 'udp') return this.leak(target, layer, undefined, route, `a UDP datagram cannot go through a proxy, and ${pac.label} decides this route (add the target to noProxy)`);
    const invalid = invalidTarget(target, {});
    if (invalid) return this.report(target, layer, undefined, { kind: 'fail', route, error: invalid }, undefined, undefined, { pac: pac.label });
    if (layer === 'socket' && !this.o.tunnelSockets) return this.leak(target, layer, undefined, route, 'socket-level connection outside the HTTP layers, and tunnelSockets is false');
    pac.begin(target);
    return this.report(target, layer, undefined, { kind: 'tunnel', route, account: DEFAULT_ACCOUNT, proxy: pac.endpoint, open: pac.open }, undefined, undefined, { pac: pac.label });
  }

  /** The leak policy's answer: fail with LeakBlockedError (strict), or pass with a `leak` event. */
  private leak(target: Target, layer: Layer, account: string | undefined, route: RouteKey, reason: string): Action {
    const error = this.o.leaks.violation({ layer, account, target, reason });
    return this.report(target, layer, account, error ? { kind: 'fail', route, error } : { kind: 'pass', route }, error ? undefined : 'leak-allowed', reason);
  }

  private report(target: Target, layer: Layer, account: string | undefined, action: Action, pass?: PassReason, leak?: string, matched: Matched = {}): Action {
    if (channels.route.hasSubscribers) {
      publish('route', () => ({
        account,
        target: printableAuthority(target.host, target.port),
        layer,
        decision: action.kind === 'tunnel' ? 'proxy' : action.kind === 'pass' ? 'direct' : leak !== undefined || matched.rule?.action === 'block' ? 'blocked' : 'fail',
        proxy: action.kind === 'tunnel' ? (matched.pac ?? String(action.proxy)) : undefined,
        reason: action.kind === 'pass' ? (leak ?? pass) : action.kind === 'fail' ? action.error.message : undefined,
        // The rule that decided (1-based index, its match as written), and the PAC that decides.
        rule: matched.rule ? { index: matched.rule.index, match: matched.rule.match, action: matched.rule.action } : undefined,
        pac: matched.pac,
      }));
    }
    return action;
  }
}
