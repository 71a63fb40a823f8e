/**
 * A route carried on connect options. Node's http Agent and tls.connect copy
 * the options they are given (object spread keeps own symbol keys) down to
 * `net.Socket.prototype.connect`, so a mark put on a request's options
 * reaches the socket hook even when the connection is made later, from a
 * queue, in another async context:
 * - `decided`: a layer already applied the router's answer (it passes): the
 *   socket hook only records which route the connection serves;
 * - otherwise the socket hook decides for the marked account instead of
 *   reading the (possibly foreign) current context.
 */
import { BYPASS_ROUTE, type RouteKey } from '../routing/route.js';

const kRouteMark = Symbol('session-proxy.route-mark');

export interface RouteMark {
  readonly route: RouteKey;
  /** The account the request was created for; undefined: outside any scope. */
  readonly account: string | undefined;
  readonly decided: boolean;
}

/** A bypassed connection, decided: serves everyone, nothing to record (one shared object, no allocation per request). */
export const BYPASS_MARK: RouteMark = Object.freeze({ route: BYPASS_ROUTE, account: undefined, decided: true });

export function withRouteMark<T extends object>(options: T, mark: RouteMark): T {
  return { ...options, [kRouteMark]: mark };
}

export function routeMarkOf(options: unknown): RouteMark | undefined {
  return options !== null && typeof options === 'object' ? ((options as Record<symbol, unknown>)[kRouteMark] as RouteMark | undefined) : undefined;
}

/**
 * The same, for a connection opened synchronously inside `fn` (an undici
 * dispatcher connects within `dispatch()` when it has no idle socket), whose
 * connect options the layer cannot reach. Like the plumbing depth counter,
 * deliberately not an async context: it must not leak into callbacks.
 */
let decidedNow: RouteMark | undefined;

export function withDecided<T>(mark: RouteMark, fn: () => T): T {
  const outer = decidedNow;
  decidedNow = mark;
  try {
    return fn();
  } finally {
    decidedNow = outer;
  }
}

/** The route mark for a connection being made now: on its options, or from an enclosing withDecided. */
export function routeMarkFor(options: unknown): RouteMark | undefined {
  return routeMarkOf(options) ?? decidedNow;
}
