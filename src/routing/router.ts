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
}

export interface DecideOptions {
  /** The account the request belongs to; default: the calling scope's. `null`: outside any scope. */
  readonly account?: string | null;
  /** An egress probe: not gated, not refused by quarantine, not counted. */
  readonly probe?: boolean;
}

/** Why a connection passes, for the route channel. */
type PassReason = 'no-proxy' | 'env-no-proxy' | 'unscoped' | 'own-proxy' | 'leak-allowed';

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
    if (this.o.noProxy.matches(target.host, target.port)) return BYPASS_ROUTE;
    if (account !== undefined) return account;
    if (this.o.pools.get(DEFAULT_ACCOUNT) && this.o.envNoProxy.matches(target.host, target.port)) return BYPASS_ROUTE;
    return DEFAULT_ROUTE;
  }

  /** The final answer for a connection `layer` is about to make; published on `session-proxy:route` when observed. */
  decide(target: Target, layer: Layer, options: DecideOptions = {}): Action {
    const account = options.account === undefined ? this.currentAccount() : (options.account ?? undefined);
    const route = this.routeKey(target, account);
    if (route === BYPASS_ROUTE) {
      return this.report(target, layer, account, { kind: 'pass', route }, this.o.noProxy.matches(target.host, target.port) ? 'no-proxy' : 'env-no-proxy');
    }
    // The pool whose proxy this route leaves through: the account's, or the default pool outside scopes.
    const owner = account ?? (this.o.pools.get(DEFAULT_ACCOUNT) ? DEFAULT_ACCOUNT : undefined);
    if (this.o.pools.isProxyAddress(target)) {
      const foreign = this.o.pools.proxyAt(target, owner);
      if (!foreign) return this.report(target, layer, account, { kind: 'pass', route }, 'own-proxy');
      const whose = foreign.pool === DEFAULT_ACCOUNT ? "the default route's proxy" : foreign.pool === owner ? `a proxy of the pool other than its active one` : `account "${foreign.pool}"'s proxy`;
      return this.leak(target, layer, account, route, `connection to ${whose} ${foreign.proxy} (a client dialing a proxy itself, e.g. one read from HTTP(S)_PROXY or an http.Agent with proxyEnv / NODE_USE_ENV_PROXY)`);
    }
    if (owner === undefined) {
      if (this.o.requireScope) return this.leak(target, layer, account, route, this.o.refusal ?? 'traffic outside any withProxy scope is refused (requireScope: true)');
      return this.report(target, layer, account, { kind: 'pass', route }, 'unscoped');
    }
    // A target no handshake can carry as it is (CR/LF, a NUL, a space…) is refused here, before
    // anything is picked or dialed: for the socket layer, before even the relay is connected to.
    const invalid = layer === 'udp' ? undefined : invalidTarget(target, { account: owner });
    if (invalid) return this.report(target, layer, account, { kind: 'fail', route, error: invalid });
    const proxy = this.o.select(owner);
    const tooLong = layer === 'udp' ? undefined : invalidTarget(target, { account: owner, proxy, protocol: proxy.protocol });
    if (tooLong) return this.report(target, layer, account, { kind: 'fail', route, error: tooLong });
    const probe = options.probe ?? false;
    if (!probe) {
      const error = this.o.unavailable(owner, proxy);
      if (error) return this.report(target, layer, account, { kind: 'fail', route, error });
    }
    const untunnelable = layer === 'udp' ? "a UDP datagram cannot go through a proxy: it would leave from this host's IP" : layer === 'socket' && !this.o.tunnelSockets ? 'socket-level connection outside the HTTP layers, and tunnelSockets is false' : undefined;
    if (untunnelable) return this.leak(target, layer, account, route, untunnelable);
    if (!probe) this.o.counted?.(owner, proxy);
    return this.report(target, layer, account, { kind: 'tunnel', route, account: owner, proxy, open: this.o.opener(owner, proxy, probe) });
  }

  /** The leak policy's answer: fail with LeakBlockedError (strict), or pass with a `leak` event. */
  private leak(target: Target, layer: Layer, account: string | undefined, route: RouteKey, reason: string): Action {
    const error = this.o.leaks.violation({ layer, account, target, reason });
    return this.report(target, layer, account, error ? { kind: 'fail', route, error } : { kind: 'pass', route }, error ? undefined : 'leak-allowed', reason);
  }

  private report(target: Target, layer: Layer, account: string | undefined, action: Action, pass?: PassReason, leak?: string): Action {
    if (channels.route.hasSubscribers) {
      publish('route', () => ({
        account,
        target: printableAuthority(target.host, target.port),
        layer,
        decision: action.kind === 'tunnel' ? 'proxy' : action.kind === 'pass' ? 'direct' : leak !== undefined ? 'blocked' : 'fail',
        proxy: action.kind === 'tunnel' ? String(action.proxy) : undefined,
        reason: action.kind === 'pass' ? (leak ?? pass) : action.kind === 'fail' ? action.error.message : undefined,
      }));
    }
    return action;
  }
}
