/**
 * The routing table — the one decision every layer (undici, http, sockets)
 * asks for. It reads the caller's account synchronously from the scope
 * store, so it must be called when the request is *created*, never from a
 * socket callback (pooled sockets run callbacks in their opener's context).
 *
 * | request created…                   | goes to                                              |
 * |------------------------------------|------------------------------------------------------|
 * | inside withProxy(account)          | the account's proxy; explicit noProxy → direct       |
 * | outside scopes, default proxy set  | the default proxy; noProxy or env NO_PROXY → direct  |
 * | outside scopes, no default proxy   | direct; requireScope → blocked                       |
 */
import { state } from '../state.js';
import type { NoProxyMatcher } from '../proxy/no-proxy.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { AccountPools } from './account-pools.js';
import { DEFAULT_ACCOUNT } from './account-pools.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, type Route, type RouteKey, type Target } from './route.js';
import type { Layer } from './leak-policy.js';
import { channels, publish } from '../diagnostics.js';
import { formatAuthority } from '../tunnel/target.js';

export interface RouterOptions {
  readonly pools: AccountPools;
  /** Explicit `noProxy` (or the loopback default): applies inside and outside scopes. */
  readonly noProxy: NoProxyMatcher;
  /** The operator's NO_PROXY as it was before install: applies outside scopes only. */
  readonly envNoProxy: NoProxyMatcher;
  readonly requireScope: boolean;
  /** The proxy an account's next connection uses (its active one, or a balanced pick). */
  readonly select: (account: string) => ProxyEndpoint;
  /** Why the account cannot use `proxy` right now (pool down, quarantine), if so. */
  readonly unavailable: (account: string, proxy: ProxyEndpoint) => Error | undefined;
  /** Counts a request routed through a proxy. */
  readonly counted?: (account: string, proxy: ProxyEndpoint) => void;
}

export class Router {
  constructor(private readonly o: RouterOptions) {}

  /** The calling async context's account, if inside a withProxy scope. */
  currentAccount(): string | undefined {
    return state.scopes.getStore()?.account;
  }

  /** The route for a connection `layer` is about to make; published on `session-proxy:route` when observed. */
  resolve(target: Target, layer: Layer, account: string | undefined = this.currentAccount()): Route {
    const route = this.decide(target, account);
    if (channels.route.hasSubscribers) {
      publish('route', () => ({
        account: route.account,
        target: formatAuthority(target.host, target.port),
        layer,
        decision: route.kind,
        proxy: route.kind === 'proxy' ? String(route.proxy) : undefined,
        reason: route.kind === 'direct' || route.kind === 'blocked' ? route.reason : route.kind === 'fail' ? route.error.message : undefined,
      }));
    }
    return route;
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

  private decide(target: Target, account: string | undefined): Route {
    if (account !== undefined) {
      if (this.o.noProxy.matches(target.host, target.port)) return { kind: 'direct', account, reason: 'no-proxy' };
      return this.through(account, true);
    }
    const fallback = this.o.pools.get(DEFAULT_ACCOUNT);
    if (fallback) {
      if (this.o.noProxy.matches(target.host, target.port)) return { kind: 'direct', account, reason: 'no-proxy' };
      if (this.o.envNoProxy.matches(target.host, target.port)) return { kind: 'direct', account, reason: 'env-no-proxy' };
      return this.through(DEFAULT_ACCOUNT, false);
    }
    if (this.o.requireScope && !this.o.noProxy.matches(target.host, target.port)) {
      return { kind: 'blocked', account, reason: 'traffic outside any withProxy scope is refused (requireScope: true)' };
    }
    return { kind: 'direct', account, reason: 'unscoped' };
  }

  private through(account: string, scoped: boolean): Route {
    const proxy = this.o.select(account);
    const error = this.o.unavailable(account, proxy);
    if (error) return { kind: 'fail', account, error };
    this.o.counted?.(account, proxy);
    return { kind: 'proxy', account, proxy, scoped };
  }

  /**
   * The configured proxy listening at `host:port` that is NOT the given
   * account's own — a connection there from inside the scope would leave
   * through someone else's proxy (an env-reading client dialing the default).
   */
  foreignProxyAt(target: Target, account: string): ProxyEndpoint | undefined {
    return this.o.pools.proxyAt(target, account);
  }
}
