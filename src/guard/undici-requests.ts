/**
 * The undici backstop of the ownership guard. Every copy of undici (Node's
 * bundled one included) publishes `undici:request:create` when a request is
 * created and `undici:client:sendHeaders` just before its headers are
 * written to a socket; if the socket serves another route than the request,
 * the socket is destroyed before the request leaves.
 *
 * The request's route is the context it was created in. A Pool queues
 * requests when its clients are busy and creates them later from a socket
 * callback — in the *socket opener's* context — so the current store can
 * lie: the request APIs (request, stream, pipeline, upgrade, connect: what
 * ccxt uses) hand undici a handler that is an AsyncResource created in the
 * caller's context, which is asked first. Shared undici pools are kept apart
 * per route before they queue anything (guard/undici-partition), so this
 * guard is what catches a copy that could not be reached.
 */
import { AsyncResource } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { state } from '../state.js';
import { crossRoute, mayUse, routeOfRequest, servedRoute, whileClaimed } from './ownership.js';

/** The scope a core undici Request was created in: its handler's creation context, else the current one. */
function scopeOf(request: object): { account: string | undefined } {
  const key = Object.getOwnPropertySymbols(request).find((s) => s.description === 'handler');
  const handler = key ? (request as Record<symbol, unknown>)[key] : undefined;
  const account = handler instanceof AsyncResource ? handler.runInAsyncScope(() => state.scopes.getStore()?.account) : state.scopes.getStore()?.account;
  return { account };
}

/** Subscribes the guard; returns its unsubscribe. */
export function guardUndiciRequests(): () => void {
  const createdIn = new WeakMap<object, { account: string | undefined }>();
  const onCreate = (message: unknown): void => {
    const request = (message as { request: object }).request;
    createdIn.set(request, scopeOf(request));
  };
  const onSendHeaders = (message: unknown): void => {
    const { request, socket } = message as { request: object; socket: Socket };
    const served = servedRoute(socket);
    if (served === undefined) return;
    // A request created while no connection was claimed has no record: ask its handler now.
    const { account } = createdIn.get(request) ?? scopeOf(request);
    if (mayUse(served, account)) return;
    const refusal = crossRoute(served, routeOfRequest(account), 'an undici request', 'undici', socket);
    if (refusal) socket.destroy(refusal);
  };
  // Subscribed only while a connection is claimed: with none, there is nothing to check.
  return whileClaimed(() => {
    diagnostics.subscribe('undici:request:create', onCreate);
    diagnostics.subscribe('undici:client:sendHeaders', onSendHeaders);
    return () => {
      diagnostics.unsubscribe('undici:request:create', onCreate);
      diagnostics.unsubscribe('undici:client:sendHeaders', onSendHeaders);
    };
  });
}
