/**
 * Runs code in a route's scope. The socket layer tunnels a connection by the
 * async context that opens it, and a connection's later callbacks inherit
 * that context; a partition (undici, http2-wrapper, grpc-js) that decided a
 * request's route in the caller's context runs the work it hands to the
 * route's own pool inside that route, so whatever that pool opens now or
 * later is tunnelled for exactly that route.
 */
import { randomBytes } from 'node:crypto';
import { state } from '../state.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, type RouteKey } from '../routing/route.js';
import { isRuleRoute, isScopedRuleRoute } from '../routing/rules.js';

export function enterRoute<T>(route: RouteKey, fn: () => T): T {
  if (route === BYPASS_ROUTE) return fn(); // noProxy targets go direct from any scope
  // A scopes: true rule decides alike in every scope; any other rule outside scopes only.
  if (isScopedRuleRoute(route)) return fn();
  if (isRuleRoute(route)) return state.scopes.getStore() === undefined ? fn() : state.scopes.exit(fn);
  const current = state.scopes.getStore()?.account;
  if (route === DEFAULT_ROUTE) {
    // withProxy('default') is the default route too; keep it (env NO_PROXY does not apply inside a scope).
    return current === undefined || current === DEFAULT_ROUTE ? fn() : state.scopes.exit(fn);
  }
  return current === route ? fn() : state.scopes.run({ account: route }, fn);
}

/** The account a route's connections are decided for: none for the default and bypass routes. */
export function accountOfRoute(route: RouteKey): string | undefined {
  return route === DEFAULT_ROUTE || route === BYPASS_ROUTE || isRuleRoute(route) ? undefined : route;
}

/**
 * A new id per install (random, so the ESM and CJS builds of the library
 * never repeat one): partitions put it in the keys of the pools they make,
 * so nothing pooled by an earlier install is picked by a later one.
 */
export function installId(): string {
  return randomBytes(4).toString('hex');
}
