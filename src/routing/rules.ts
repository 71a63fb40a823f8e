/**
 * Per-destination rules (option `rules`): an ordered list of
 * `{ match, proxy | 'direct' | 'block', scopes? }`, the first match wins.
 *
 * - `match` is one entry or a list in the NO_PROXY matcher's syntax (host,
 *   `*.suffix`, `host:port`, IPv4/IPv6, CIDR; proxy/no-proxy.ts), each
 *   optionally prefixed by a URL scheme (`https://api.example.com`,
 *   `wss://*.exchange.test`). A scheme is honoured where the layer knows it
 *   (fetch/undici, http/https, ws, the global WebSocket); connections the
 *   socket layer decides (an app's own undici Pool, http2, grpc-js, raw
 *   sockets) and the pools partitioned above it are seen as host and port
 *   only, so a rule with a scheme never matches there: write the port
 *   (`api.example.com:443`) to reach them too.
 * - Rules decide the **default route** (traffic outside any `withProxy`
 *   scope). Inside an account's scope the account's proxy stays: a rule
 *   applies there only with `scopes: true`, and then only as `'direct'` or
 *   `'block'` — it may narrow an account's traffic, never hand it to another
 *   proxy (the account's requests must never quietly leave from an IP that
 *   is not the account's).
 *
 * Each rule is a route of its own (`ruleRoute`): its connections are never
 * shared with the default route's or an account's. A rule's proxy is a pool
 * like an account's, registered in AccountPools under the rule's route key,
 * so health, failover, rotation and `exclusive` treat it like any pool.
 */
import { ConfigError } from '../errors.js';
import { NoProxyMatcher } from '../proxy/no-proxy.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { RouteKey, Target } from './route.js';

/** The schemes a rule's match may name. */
export const RULE_SCHEMES: readonly string[] = ['http', 'https', 'ws', 'wss'];

/** A rule as given (options.ts RoutingRule, with its proxy already parsed). */
export interface RuleInput {
  readonly match: string | readonly string[];
  readonly proxy: 'direct' | 'block' | readonly ProxyEndpoint[];
  readonly scopes?: boolean;
}

export interface Rule {
  /** 1-based position in `rules`, as messages and the `route` event name it. */
  readonly index: number;
  /** The entries as written, comma-joined (for messages and diagnostics). */
  readonly match: string;
  readonly action: 'direct' | 'block' | 'proxy';
  readonly scopes: boolean;
  /** The route its connections serve; for a proxy rule also the name of its pool in AccountPools. */
  readonly route: RouteKey;
  readonly proxies: readonly ProxyEndpoint[];
}

/** Rule routes start with a NUL, which no account name a user typed contains (like BYPASS_ROUTE). */
const RULE_PREFIX = '\0rule #';
const SCOPED_SUFFIX = ' (scopes)';

export function isRuleRoute(route: RouteKey): boolean {
  return route.startsWith(RULE_PREFIX);
}

/** A `scopes: true` rule's route: it also serves account scopes (direct only), so any scope may use its connections. */
export function isScopedRuleRoute(route: RouteKey): boolean {
  return isRuleRoute(route) && route.endsWith(SCOPED_SUFFIX);
}

/** `rule #2` for a rule route (its pool name), else undefined. */
export function ruleLabel(route: RouteKey): string | undefined {
  if (!isRuleRoute(route)) return undefined;
  const text = route.slice(1);
  return text.endsWith(SCOPED_SUFFIX) ? text.slice(0, -SCOPED_SUFFIX.length) : text;
}

interface Compiled {
  readonly scheme: string | undefined;
  readonly matcher: NoProxyMatcher;
}

/** Splits `https://host:443` into its scheme and the NO_PROXY entry; ConfigError (without `path`) for what cannot be one. */
export function parseMatchEntry(entry: string): { scheme: string | undefined; entry: string } {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(entry.trim());
  if (!m) return { scheme: undefined, entry };
  const scheme = m[1]!.toLowerCase();
  if (!RULE_SCHEMES.includes(scheme)) throw new ConfigError(`invalid match entry "${entry}": the scheme must be one of ${RULE_SCHEMES.join(', ')}`);
  const rest = m[2]!;
  if (rest === '' || /[/?#]/.test(rest)) throw new ConfigError(`invalid match entry "${entry}": after the scheme comes a host, optionally with :port (no path)`);
  return { scheme, entry: rest };
}

function compile(match: string | readonly string[], path: string): Compiled[] {
  const entries = (typeof match === 'string' ? [match] : [...match]).flatMap((e) => e.split(/[\s,]+/)).filter(Boolean);
  if (entries.length === 0) throw new ConfigError(`${path}: expected at least one host, domain, IP or CIDR entry`);
  const groups = new Map<string | undefined, string[]>();
  for (const raw of entries) {
    try {
      const { scheme, entry } = parseMatchEntry(raw);
      groups.set(scheme, [...(groups.get(scheme) ?? []), entry]);
    } catch (err) {
      throw new ConfigError(`${path}: ${(err as Error).message}`);
    }
  }
  const out: Compiled[] = [];
  for (const [scheme, list] of groups) {
    try {
      out.push({ scheme, matcher: new NoProxyMatcher(list) });
    } catch (err) {
      throw new ConfigError(`${path}: ${(err as Error).message.replace('NO_PROXY entry', 'match entry')}`);
    }
  }
  return out;
}

/** Checks one rule's `match` (code options and files alike): ConfigError naming `path`. */
export function checkMatch(match: string | readonly string[], path: string): void {
  compile(match, path);
}

export class RuleSet {
  readonly rules: readonly Rule[];
  readonly #compiled: ReadonlyArray<readonly Compiled[]>;

  constructor(inputs: readonly RuleInput[] = []) {
    const rules: Rule[] = [];
    const compiled: Compiled[][] = [];
    inputs.forEach((input, i) => {
      const index = i + 1;
      const path = `rules[${i}]`;
      compiled.push(compile(input.match, `${path}.match`));
      const scopes = input.scopes === true;
      const action = input.proxy === 'direct' || input.proxy === 'block' ? input.proxy : 'proxy';
      if (scopes && action === 'proxy') {
        throw new ConfigError(
          `${path}: a rule with scopes: true may only be 'direct' or 'block': inside an account's scope the account's proxy stays, and a rule may narrow it but never send the account's requests through another proxy`,
        );
      }
      const proxies = action === 'proxy' ? (input.proxy as readonly ProxyEndpoint[]) : [];
      if (action === 'proxy' && proxies.length === 0) throw new ConfigError(`${path}.proxy: expected at least one proxy`);
      const match = (typeof input.match === 'string' ? [input.match] : [...input.match]).join(',');
      rules.push(Object.freeze({ index, match, action, scopes, route: `${RULE_PREFIX}${index}${scopes ? SCOPED_SUFFIX : ''}`, proxies }));
    });
    this.rules = Object.freeze(rules);
    this.#compiled = compiled;
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * The first rule that decides a connection to `target`: outside scopes
   * every rule, inside an account's scope only `scopes: true` ones. A rule
   * with a scheme matches only when the layer knows the target's scheme.
   */
  match(target: Target, inScope: boolean): Rule | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i]!;
      if (inScope && !rule.scopes) continue;
      for (const c of this.#compiled[i]!) {
        if (c.scheme !== undefined && c.scheme !== target.scheme) continue;
        if (c.matcher.matches(target.host, target.port)) return rule;
      }
    }
    return undefined;
  }

  /** The rule whose route (pool name) this is. */
  byRoute(route: RouteKey): Rule | undefined {
    return this.rules.find((r) => r.route === route);
  }
}
