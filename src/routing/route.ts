import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { TunnelOpener } from './account-tunnels.js';

/**
 * Which route a connection serves. Every outbound connection serves exactly
 * one: an account (its name), the default route (`DEFAULT_ROUTE`: traffic
 * outside any scope — default proxy, direct, or refused), or `BYPASS_ROUTE`
 * (a target `noProxy` sends direct for everyone; such connections may be
 * shared, since they carry no account's IP).
 */
export type RouteKey = string;
/** The default route's key: the reserved account name of the default pool. */
export const DEFAULT_ROUTE: RouteKey = 'default';
/** noProxy targets: direct for every scope. A NUL cannot appear in an account name a user typed. */
export const BYPASS_ROUTE: RouteKey = '\0bypass';

/** A connection's destination as the caller named it. */
export interface Target {
  readonly host: string;
  readonly port: number;
  /**
   * `http`, `https`, `ws` or `wss` where the layer knows it (fetch/undici,
   * http/https, ws): rules with a scheme match only then. The socket layer
   * and the pools partitioned above it see host and port only.
   */
  readonly scheme?: string;
}

/**
 * The router's final answer for one request or connection; a layer only
 * adapts its arguments and applies it.
 * - `tunnel`: open the connection with `open` (through `proxy`, for `account`);
 * - `pass`: let the caller's own connection go (a bypassed or direct target,
 *   a client dialing its route's own proxy, or a leak `strict: false` let through);
 * - `fail`: refuse with `error` (LeakBlockedError, ProxyUnavailableError, …) before anything is sent.
 */
export type Action =
  | { readonly kind: 'tunnel'; readonly route: RouteKey; readonly account: string; readonly proxy: ProxyEndpoint; readonly open: TunnelOpener }
  | { readonly kind: 'pass'; readonly route: RouteKey }
  | { readonly kind: 'fail'; readonly route: RouteKey; readonly error: Error };

/** Default ports by URL scheme, for targets given as URLs or origins. */
export function defaultPort(protocol: string): number {
  switch (protocol) {
    case 'https:':
    case 'wss:':
      return 443;
    default:
      return 80;
  }
}

/** `[::1]` → `::1`: targets are compared and tunnelled with bare IPv6 literals. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function targetFromUrl(url: URL | string): Target {
  const u = typeof url === 'string' ? new URL(url) : url;
  return { host: unbracket(u.hostname), port: u.port ? Number(u.port) : defaultPort(u.protocol) };
}

/** `target` with the scheme the caller used (`ws`/`wss` for a WebSocket upgrade), for rules that name one. */
export function withScheme(target: Target, secure: boolean, websocket: boolean): Target {
  return { host: target.host, port: target.port, scheme: websocket ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http' };
}
