/**
 * A tunnelled socket belongs to the account that opened it. Clients pool
 * sockets by origin only (one undici.Pool shared by two accounts, got's
 * global http2 agent, grpc-js's subchannel pool), so the same socket can be
 * handed a request created in another account's scope. When that is seen,
 * the socket is destroyed with LeakBlockedError *before* the bytes leave:
 * that request fails instead of leaving from the other account's IP.
 *
 * Three places see it: the socket's own write (the writer's async context),
 * undici's `undici:request:create` / `undici:client:sendHeaders` channels
 * (every copy of undici publishes them; the request's own context is what
 * counts, even when a queued request is written from a socket callback), and
 * http2 sessions' request(). Writes from code outside any
 * scope pass: they carry no evidence of another account.
 *
 * For undici copies loaded through require/import this is the backstop:
 * guard/undici-partition.ts already gives each route its own connections.
 * It is the only cover of copies bundled into another build.
 */
import { AsyncResource } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import http2 from 'node:http2';
import { syncBuiltinESMExports } from 'node:module';
import type { Socket } from 'node:net';
import { state } from '../../state.js';
import { LeakBlockedError } from '../../errors.js';

const kOwner = Symbol('session-proxy.owner');

type Owned = { [kOwner]?: string };

export function ownerOf(socket: unknown): string | undefined {
  return socket && typeof socket === 'object' ? (socket as Owned)[kOwner] : undefined;
}

function violation(owner: string, writer: string): LeakBlockedError {
  return new LeakBlockedError(`a connection opened for account "${owner}" was used from account "${writer}"'s scope; keep one client per account`, { account: writer });
}

/** Owned sockets open now: while there are none, the undici guard has nothing to check and returns at once. */
let owned = 0;

/** Marks `socket` as `account`'s and guards its writes. */
export function claimSocket(socket: Socket, account: string): void {
  (socket as Owned)[kOwner] = account;
  owned++;
  socket.once('close', () => owned--);
  const write = socket.write;
  socket.write = function guardedWrite(this: Socket, ...args: unknown[]): boolean {
    const writer = state.scopes.getStore()?.account;
    if (writer !== undefined && writer !== account) {
      this.destroy(violation(account, writer));
      return false;
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Socket['write'];
}

/**
 * The account a core undici Request belongs to. A Pool queues requests when
 * its clients are busy and creates them later from a socket callback — in
 * the *socket opener's* context — so the current store can lie. The request
 * APIs (request, stream, pipeline, upgrade, connect: what ccxt uses) hand
 * undici a handler that is an AsyncResource created in the caller's context:
 * ask it. Other handlers (fetch's) fall back to the context at creation.
 */
function accountOfRequest(request: object): string | undefined {
  const key = Object.getOwnPropertySymbols(request).find((s) => s.description === 'handler');
  const handler = key ? (request as Record<symbol, unknown>)[key] : undefined;
  if (handler instanceof AsyncResource) return handler.runInAsyncScope(() => state.scopes.getStore()?.account);
  return state.scopes.getStore()?.account;
}

/** The undici channel guard; returns its unsubscribe. */
export function guardUndiciRequests(): () => void {
  const createdIn = new WeakMap<object, string>();
  const onCreate = (message: unknown): void => {
    if (owned === 0) return;
    const request = (message as { request: object }).request;
    const account = accountOfRequest(request);
    if (account !== undefined) createdIn.set(request, account);
  };
  const onSendHeaders = (message: unknown): void => {
    if (owned === 0) return;
    const { request, socket } = message as { request: object; socket: Socket };
    const owner = ownerOf(socket);
    // A request created while no socket was owned has no record: ask its handler now.
    const writer = createdIn.get(request) ?? accountOfRequest(request);
    if (owner !== undefined && writer !== undefined && owner !== writer) socket.destroy(violation(owner, writer));
  };
  diagnostics.subscribe('undici:request:create', onCreate);
  diagnostics.subscribe('undici:client:sendHeaders', onSendHeaders);
  return () => {
    diagnostics.unsubscribe('undici:request:create', onCreate);
    diagnostics.unsubscribe('undici:client:sendHeaders', onSendHeaders);
  };
}

/**
 * http2 writes frames through the native handle, not socket.write, so the
 * check sits on session.request(): a stream created in another account's
 * scope destroys the session and throws (grpc-js and got catch it as a
 * request error).
 */
export function guardHttp2Sessions(): () => void {
  const original = http2.connect;
  const hooked = function connect(this: unknown, ...args: unknown[]) {
    const session = (original as (...a: unknown[]) => http2.ClientHttp2Session).apply(this, args);
    const request = session.request;
    session.request = function guardedRequest(this: http2.ClientHttp2Session, ...a: unknown[]) {
      const writer = state.scopes.getStore()?.account;
      const owner = ownerOf(session.socket);
      if (writer !== undefined && owner !== undefined && writer !== owner) {
        const error = violation(owner, writer);
        session.destroy(error);
        throw error;
      }
      return (request as (...x: unknown[]) => http2.ClientHttp2Stream).apply(this, a);
    } as http2.ClientHttp2Session['request'];
    return session;
  };
  (http2 as { connect: unknown }).connect = hooked;
  syncBuiltinESMExports();
  return () => {
    (http2 as { connect: unknown }).connect = original;
    syncBuiltinESMExports();
  };
}
