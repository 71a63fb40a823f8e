/**
 * The http2 part of the ownership guard. http2 writes frames through the
 * native handle, not socket.write, so the check sits on session.request(): a
 * stream is a pooled request and belongs to the route it is created in
 * (outside scopes: the default route). One created for another route than
 * the session's connection serves throws LeakBlockedError — grpc-js and got
 * report it as that request's error — and the session itself, which its own
 * route may be using, is left alone. `observe` is shown every session
 * (rotation's drain counts their streams).
 */
import http2 from 'node:http2';
import { state } from '../state.js';
import { crossRoute, mayUse, routeOfRequest, servedRoute } from './ownership.js';
import { patch } from '../layers/layer.js';

export function guardHttp2Sessions(observe?: (session: http2.ClientHttp2Session) => void): () => void {
  const original = http2.connect;
  const hooked = function connect(this: unknown, ...args: unknown[]) {
    const session = (original as (...a: unknown[]) => http2.ClientHttp2Session).apply(this, args);
    const request = session.request;
    session.request = function guardedRequest(this: http2.ClientHttp2Session, ...a: unknown[]) {
      const served = servedRoute(session.socket);
      if (served !== undefined) {
        const account = state.scopes.getStore()?.account;
        const refusal = mayUse(served, account) ? undefined : crossRoute(served, routeOfRequest(account), 'an http2 stream', 'socket', session.socket);
        if (refusal) throw refusal;
      }
      return (request as (...x: unknown[]) => http2.ClientHttp2Stream).apply(this, a);
    } as http2.ClientHttp2Session['request'];
    observe?.(session);
    return session;
  };
  return patch(http2, 'connect', hooked, { esm: true });
}
