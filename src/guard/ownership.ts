/**
 * Connection ownership: every outbound connection the library routes serves
 * exactly one route (an account, or the default route outside scopes), and
 * this is where it is recorded and checked on every later use. Clients pool
 * connections by origin only (an app's undici.Pool, got's global http2 agent,
 * grpc-js's subchannel pool, a shared http.Agent), so a connection can be
 * handed traffic of another route; when that is seen, the connection is
 * destroyed with LeakBlockedError *before* the bytes leave.
 *
 * Two kinds of use, two rules:
 * - a **pooled request** (an HTTP request on an agent's socket, an undici
 *   request, an http2 stream) belongs to the route it was created in, and
 *   a request created outside any scope belongs to the default route: it
 *   never rides an account's connection;
 * - a **stream write** (raw net/tls, a WebSocket frame) is checked against
 *   the writer's scope: writes from outside any scope pass (app-wide
 *   heartbeats, `ws.close()` in a SIGTERM handler), writes from another
 *   account's scope are refused.
 * Bypass connections (noProxy targets) are shared by design and not claimed.
 */
import type { Socket } from 'node:net';
import { state } from '../state.js';
import { LeakBlockedError } from '../errors.js';
import { BYPASS_ROUTE, DEFAULT_ROUTE, unbracket, type RouteKey } from '../routing/route.js';
import type { Layer, LeakPolicy } from '../routing/leak-policy.js';
import { isRuleRoute, isScopedRuleRoute, ruleLabel } from '../routing/rules.js';
import type { Restore } from '../layers/layer.js';

const kServes = Symbol('session-proxy.serves');
const kRequestRoute = Symbol('session-proxy.request-route');

type Claimed = { [kServes]?: RouteKey; _parent?: unknown; _handle?: { _parentWrap?: { stream?: unknown } } | null };

/** Claimed connections open now: while there are none, the request guards are not subscribed (whileClaimed). */
let claimed = 0;

/**
 * Work that only matters while some connection is claimed (the undici
 * request guard, the rotation drain): `on` runs when the first connection is
 * claimed and its restore when the last one closes. Subscribing to undici's
 * diagnostics channels makes every undici copy build a message for every
 * request, so nobody listens while there is nothing to check (direct and
 * bypassed traffic only).
 */
interface ClaimWatcher {
  readonly on: () => Restore;
  off: Restore | undefined;
}
const watchers = new Set<ClaimWatcher>();

export function whileClaimed(on: () => Restore): Restore {
  const watcher: ClaimWatcher = { on, off: claimed > 0 ? on() : undefined };
  watchers.add(watcher);
  return () => {
    watchers.delete(watcher);
    watcher.off?.();
    watcher.off = undefined;
  };
}

function countClaimed(delta: 1 | -1): void {
  claimed += delta;
  if (delta === 1 && claimed === 1) for (const w of watchers) w.off ??= w.on();
  if (delta === -1 && claimed === 0) {
    for (const w of watchers) {
      w.off?.();
      w.off = undefined;
    }
  }
}

/**
 * The route `socket` serves, looking through a TLS socket to the socket it
 * wraps (tls.connect({ socket }) over a claimed net socket, or over a Duplex
 * such as the env-CONNECT stand-in).
 */
export function servedRoute(socket: unknown): RouteKey | undefined {
  let s = socket as Claimed | null | undefined;
  for (let depth = 0; s && typeof s === 'object' && depth < 4; depth++) {
    if (s[kServes] !== undefined) return s[kServes];
    s = (s._parent ?? s._handle?._parentWrap?.stream) as Claimed | undefined;
  }
  return undefined;
}

/** The route a request created in `account`'s context belongs to (outside scopes: the default route). */
export const routeOfRequest = (account: string | undefined): RouteKey => account ?? DEFAULT_ROUTE;

/**
 * May traffic created in `account`'s scope (undefined: outside any scope)
 * use a connection serving `served`? Its own route's, yes. A rule's
 * connections (routing/rules.ts) carry traffic outside scopes only — an
 * account's requests keep the account's proxy — except a `scopes: true`
 * rule's, which are direct and serve every scope alike.
 */
export function mayUse(served: RouteKey, account: string | undefined): boolean {
  if (served === routeOfRequest(account)) return true;
  if (isRuleRoute(served)) return account === undefined || isScopedRuleRoute(served);
  return false;
}

function describe(route: RouteKey): string {
  const rule = ruleLabel(route);
  if (rule) return rule;
  return route === DEFAULT_ROUTE ? 'the default route (outside any scope)' : `account "${route}"`;
}

/** The installed manager's leak policy (strict: refuse; else pass with a `leak` event). */
let policy: LeakPolicy | undefined;

/** Puts the guard under `leaks` while installed. */
export function guardWith(leaks: LeakPolicy): Restore {
  policy = leaks;
  return () => {
    if (policy === leaks) policy = undefined;
  };
}

/**
 * Traffic of route `user` met a connection serving `owner`: the leak
 * policy's answer — LeakBlockedError to destroy the connection or refuse
 * the request with, or undefined (strict: false) to let it pass, with a
 * `leak` event either way.
 */
export function crossRoute(owner: RouteKey, user: RouteKey, what: string, layer: Layer, connection: unknown): LeakBlockedError | undefined {
  const reason =
    `a connection serving ${describe(owner)} was used by ${what} of ${describe(user)}; ` +
    'each route keeps its own connections — hand work to another scope with manager.bind(account, fn), or give each account its own client';
  const account = user === DEFAULT_ROUTE || isRuleRoute(user) ? undefined : user;
  const peer = connection as { remoteAddress?: string; remotePort?: number } | undefined;
  const target = { host: unbracket(String(peer?.remoteAddress ?? 'unknown')), port: Number(peer?.remotePort ?? 0) };
  if (!policy) return new LeakBlockedError(`refused to send traffic that would leave from the wrong IP: ${reason}`, { account });
  return policy.violation({ layer, account, target, reason });
}

/** Marks an HTTP ClientRequest with the route it was created in (its agent socket is checked against it). */
export function tagRequest(request: object, route: RouteKey): void {
  (request as Record<symbol, unknown>)[kRequestRoute] = route;
}

function taggedRoute(request: unknown): RouteKey | undefined {
  return request && typeof request === 'object' ? ((request as Record<symbol, unknown>)[kRequestRoute] as RouteKey | undefined) : undefined;
}

/**
 * Records that `socket` serves `route` and guards its writes. Call it after
 * `connect()` has run: Node's connect puts `Socket.prototype.write` back on
 * a socket whose `write` was replaced. Calling it again re-installs the
 * guard; bypass connections are not claimed.
 */
export function claim(socket: Socket, route: RouteKey): void {
  if (route === BYPASS_ROUTE) return;
  const owned = socket as Claimed & { write: Socket['write'] & { [kServes]?: true } };
  if (owned[kServes] === undefined) {
    owned[kServes] = route;
    countClaimed(1);
    socket.once('close', () => countClaimed(-1));
  }
  if (owned.write[kServes]) return;
  const write = socket.write;
  const guardedWrite = function guardedWrite(this: Socket, ...args: unknown[]): boolean {
    // A socket destroyed by a refusal stays refused: one leak event, not one per frame.
    if (this.destroyed) return (write as (...a: unknown[]) => boolean).apply(this, args);
    const refusal = writeRefusal(this, owned[kServes]!);
    if (refusal) {
      this.destroy(refusal);
      return false;
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Socket['write'] & { [kServes]?: true };
  guardedWrite[kServes] = true;
  socket.write = guardedWrite;
}

function writeRefusal(socket: Socket, route: RouteKey): LeakBlockedError | undefined {
  // An agent's socket carrying an HTTP request: the request's own route counts, wherever the write comes from.
  // Once upgraded (a WebSocket) or CONNECTed, the socket is a stream: the writer's scope counts.
  const message = (socket as { _httpMessage?: { upgradeOrConnect?: boolean } | null })._httpMessage;
  const request = message && !message.upgradeOrConnect ? taggedRoute(message) : undefined;
  if (request !== undefined) return request === route ? undefined : crossRoute(route, request, 'an HTTP request', 'http', socket);
  const writer = state.scopes.getStore()?.account;
  return writer !== undefined && !mayUse(route, writer) ? crossRoute(route, writer, 'a write', 'socket', socket) : undefined;
}
