/**
 * Draining: after rotate(), no new request of the account may leave through
 * the proxy it left, and none may fail because of the move. The library's own
 * pools switch by themselves (ConnectionPools.retire). This file moves the
 * socket layer's tunnels that sit inside *other libraries'* pools — ccxt's
 * undici Agent, an app's undici.Pool, the http2 sessions of got, grpc-js and
 * undici, a Node http Agent reached by functions captured before install —
 * which would otherwise keep carrying the account's new requests from the
 * old IP.
 *
 * Each connection is drained the way its owner drains one itself, so the
 * owner reconnects for the next request — through the account's new proxy,
 * since the socket hook routes every new connection by the active proxy:
 * - undici HTTP/1 socket: idle → destroyed without an error (undici sees no
 *   failed request and reconnects on the next one); busy → undici's own
 *   `reset` flag, the one `Connection: close` sets: nothing more is written
 *   on it and undici closes it when its in-flight requests complete. Busy or
 *   idle is told by undici's diagnostics channels (`client:sendHeaders` …
 *   `request:trailers` / `request:error`), which every copy publishes.
 * - http2 session: its streams are counted (session.request()). It is closed
 *   as a server's GOAWAY closes it: a `goaway` event (grpc-js takes the
 *   subchannel out of service on it), then session.close() (no new stream;
 *   Node destroys the session after the last one). Pickers that do not look
 *   at `session.closed` would race a new request onto it and fail with
 *   ERR_HTTP2_GOAWAY_SESSION, so their own flags are set: http2-wrapper's
 *   (got) `gracefullyClosing`; undici's connection reports itself busy
 *   (undici's goaway handler fails the in-flight request, so it gets no
 *   `goaway`).
 * - Node http Agent socket: free → taken out of its agent (`agentRemove`)
 *   and destroyed; in use (`_httpMessage`) → the same when its response
 *   ends (`free`), before the agent can hand it a queued request.
 * - A socket still being set up at rotate() serves the request it is being
 *   set up for, then closes the same way.
 * - Anything else — raw net/tls, an upgraded WebSocket, a CONNECT tunnel —
 *   is a stream nothing is known about: it stays until its owner closes it
 *   or `closeExisting` cuts it.
 * Whatever is still busy after `drainTimeout` is cut with DrainTimeoutError.
 */
import diagnostics from 'node:diagnostics_channel';
import { whileClaimed } from '../guard/ownership.js';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { DrainTimeoutError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';

/** On a tunnelled socket: the http2 session running over it. */
const kSession = Symbol('session-proxy.h2-session');
/** On an http2 session: its open streams, and what to do when none is left. */
const kStreams = Symbol('session-proxy.h2-streams');
const kIdle = Symbol('session-proxy.h2-idle');
/** On a socket being drained: called when its in-flight work is done (or, set up at rotate(), once it was used). */
const kDrain = Symbol('session-proxy.drain');

type Session = ClientHttp2Session & { [kStreams]?: number; [kIdle]?: () => void };
type Drained = Socket & { [kSession]?: Session; [kDrain]?: Drain };

interface Drain {
  /** 'fresh': the socket was still being set up; it may serve one request. */
  readonly mode: 'busy' | 'fresh';
  readonly done: () => void;
}

export interface DrainCounts {
  /** Idle connections closed at once. */
  drained: number;
  /** Busy connections left to finish their requests or streams. */
  draining: number;
}

/** A private symbol of another library, found by its description (undici and http2-wrapper export none). */
function symbolOf(o: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(o).find((s) => s.description === description);
}

function slot(o: object, description: string): unknown {
  const key = symbolOf(o, description);
  return key === undefined ? undefined : (o as Record<symbol, unknown>)[key];
}

type Kind = 'h2' | 'undici' | 'agent' | 'stream';

function kindOf(socket: Drained): Kind {
  if (socket[kSession]) return 'h2';
  // undici sets `client` on its sockets and clears it when an upgrade takes the socket away.
  if (symbolOf(socket, 'client') !== undefined) return slot(socket, 'client') != null ? 'undici' : 'stream';
  // A Node http Agent listens for `agentRemove` on its sockets; an upgrade or CONNECT removes them.
  if (socket.listenerCount('agentRemove') > 0) return 'agent';
  return 'stream';
}

/** undici's own "close after the in-flight requests" flag; false when this copy has none. */
function resetWhenDone(socket: Socket): boolean {
  const key = symbolOf(socket, 'reset');
  if (key === undefined) return false;
  (socket as unknown as Record<symbol, unknown>)[key] = true;
  return true;
}

/** Takes an http Agent's socket out of the agent (its free list too, at once) and closes it. */
function leaveAgent(socket: Socket): void {
  socket.emit('agentRemove');
  socket.destroy();
}

function isUndiciSession(session: Session): boolean {
  return slot(session, 'client') != null && symbolOf(session, 'http2Session state') !== undefined;
}

export class ConnectionDrain {
  /** Requests undici has written on each tunnelled socket and not yet finished. */
  private readonly inflight = new WeakMap<Socket, number>();
  private readonly sentOn = new WeakMap<object, Socket>();

  /**
   * @param timeoutMs drainTimeout
   * @param isTunnel only sockets of the socket layer's tunnels are counted
   */
  constructor(private readonly timeoutMs: number, private readonly isTunnel: (socket: Socket) => boolean) {}

  /** Subscribes to undici's request channels (every copy publishes them); returns the unsubscribe. */
  install(): () => void {
    const onSend = (message: unknown): void => {
      const { request, socket } = message as { request: object; socket: Drained };
      if (!socket || !this.isTunnel(socket)) return;
      this.inflight.set(socket, (this.inflight.get(socket) ?? 0) + 1);
      this.sentOn.set(request, socket);
      // Set up when its account rotated: this request is the one it was set up for, and its last.
      // (An undici http2 socket is handled by its session's streams.)
      if (socket[kDrain]?.mode === 'fresh' && !socket[kSession]) socket[kDrain].done();
    };
    const onDone = (message: unknown): void => {
      const { request } = message as { request: object };
      const socket = this.sentOn.get(request) as Drained | undefined;
      if (!socket) return;
      this.sentOn.delete(request);
      const left = (this.inflight.get(socket) ?? 1) - 1;
      this.inflight.set(socket, left);
      if (left === 0 && socket[kDrain]?.mode === 'busy' && !socket[kSession]) socket[kDrain].done();
    };
    const channels: Array<[string, (m: unknown) => void]> = [
      ['undici:client:sendHeaders', onSend],
      ['undici:request:trailers', onDone],
      ['undici:request:error', onDone],
    ];
    // Only tunnels are drained, and every tunnel is a claimed connection: listen only while one exists.
    return whileClaimed(() => {
      for (const [name, fn] of channels) diagnostics.subscribe(name, fn);
      return () => {
        for (const [name, fn] of channels) diagnostics.unsubscribe(name, fn);
      };
    });
  }

  /** Told about every http2 session (hooked http2.connect): counts its streams. */
  session(session: Session): void {
    let socket: Drained | undefined;
    try {
      // session.socket is a proxy that reads and writes through to the socket.
      const proxy = session.socket as Drained;
      if (!this.isTunnel(proxy)) return;
      proxy[kSession] = session;
      socket = proxy;
    } catch {
      return; // no socket bound: nothing of ours
    }
    session[kStreams] = 0;
    const request = session.request;
    session.request = function countedRequest(this: Session, ...args: unknown[]) {
      const stream = (request as (...a: unknown[]) => ClientHttp2Stream).apply(this, args);
      session[kStreams]!++;
      stream.once('close', () => {
        if (--session[kStreams]! === 0) session[kIdle]?.();
      });
      // Set up when its account rotated: this is the stream it was set up for, and its last.
      if (socket[kDrain]?.mode === 'fresh') socket[kDrain].done();
      return stream;
    } as Session['request'];
  }

  /**
   * Drains `sockets` (the account's tunnels through the proxy it left);
   * returns how many closed at once and how many are finishing. The ones
   * still busy after drainTimeout are cut.
   */
  drain(sockets: Iterable<Socket>, account: string, proxy: ProxyEndpoint): DrainCounts {
    const counts: DrainCounts = { drained: 0, draining: 0 };
    const pending = new Set<Drained>();
    for (const s of sockets) {
      const socket = s as Drained;
      if (socket.destroyed || socket[kDrain]) continue;
      const kind = kindOf(socket);
      const settingUp = socket.connecting || (socket as { secureConnecting?: boolean }).secureConnecting === true;
      // Not (yet) known as any client's: it may be one being set up (undici marks its sockets once
      // connected), or a stream. Either way it may serve one request; a stream is never cut.
      const outcome = kind === 'stream' || settingUp ? this.fresh(socket, kind) : this.start(socket, kind);
      if (outcome === 'closed') {
        counts.drained++;
        continue;
      }
      if (kind !== 'stream') counts.draining++;
      pending.add(socket);
    }
    if (pending.size === 0) return counts;
    const timer = setTimeout(() => {
      const error = new DrainTimeoutError(`cut ${this.timeoutMs} ms after the account rotated off this proxy (drainTimeout)`, { account, proxy });
      for (const socket of pending) this.cut(socket, error);
    }, this.timeoutMs);
    timer.unref();
    for (const socket of pending) {
      socket.once('close', () => {
        pending.delete(socket);
        if (pending.size === 0) clearTimeout(timer);
      });
    }
    return counts;
  }

  /** Starts draining a connection its client set up: 'closed' (it was idle) or 'busy'. */
  private start(socket: Drained, kind: Exclude<Kind, 'stream'>): 'closed' | 'busy' {
    switch (kind) {
      case 'undici': {
        if ((this.inflight.get(socket) ?? 0) === 0) {
          socket.destroy();
          return 'closed';
        }
        resetWhenDone(socket);
        // Without the flag (an undici that has none), the end of its last request closes it.
        socket[kDrain] = { mode: 'busy', done: () => socket.destroy() };
        return 'busy';
      }
      case 'agent': {
        if (!(socket as { _httpMessage?: unknown })._httpMessage) {
          leaveAgent(socket);
          return 'closed';
        }
        this.closeWhenFree(socket, 'busy');
        return 'busy';
      }
      case 'h2': {
        const session = socket[kSession]!;
        if (session.destroyed) return 'closed';
        if (session.connecting) return this.fresh(socket, kind);
        const idle = session[kStreams] === 0;
        socket[kDrain] = { mode: 'busy', done: () => undefined };
        closeSession(session);
        return idle || session.destroyed ? 'closed' : 'busy';
      }
    }
  }

  /** A connection still being set up (or not known yet): it serves the request it is for, then closes. */
  private fresh(socket: Drained, kind: Kind): 'busy' {
    if (kind === 'agent') {
      this.closeWhenFree(socket, 'fresh');
      return 'busy';
    }
    const used = (): void => {
      const session = socket[kSession];
      if (session) {
        socket[kDrain] = { mode: 'busy', done: () => undefined };
        // Streams created before the session connected are sent on 'connect': close after that.
        if (session.connecting) session.once('connect', () => closeSession(session));
        else closeSession(session);
      } else if (kindOf(socket) === 'undici') {
        resetWhenDone(socket);
        socket[kDrain] = { mode: 'busy', done: () => socket.destroy() };
      }
    };
    socket[kDrain] = { mode: 'fresh', done: used };
    // A session with a stream already waiting for the connection: that stream was its use.
    const session = socket[kSession];
    if (session && session[kStreams]! > 0) used();
    return 'busy';
  }

  private closeWhenFree(socket: Drained, mode: 'busy' | 'fresh'): void {
    const done = (): void => leaveAgent(socket);
    socket[kDrain] = { mode, done };
    // Before the agent's own listener, which would hand the socket to a queued request.
    socket.prependListener('free', done);
  }

  /** drainTimeout ran out: cuts what is still running; a stream (an upgrade since) is left alone. */
  private cut(socket: Drained, error: Error): void {
    const session = socket[kSession];
    if (session && !session.destroyed) session.destroy(error); // its streams see the error
    else if (!socket.destroyed && kindOf(socket) !== 'stream') socket.destroy(error);
  }
}

/**
 * Closes an http2 session as a server's GOAWAY would: pickers stop choosing
 * it, its streams finish, then it closes.
 */
function closeSession(session: Session): void {
  if (session.closed || session.destroyed) return;
  if (isUndiciSession(session)) {
    // undici's connection reports itself busy: undici dispatches to another connection (through
    // the new proxy) and keeps its queued requests for it. No GOAWAY while streams run: the
    // server answers one with its own, and undici fails the in-flight request on that.
    const context = slot(slot(session, 'client') as object, 'http context') as { busy?: unknown } | undefined;
    if (context && typeof context === 'object') context.busy = () => true;
    if (session[kStreams] === 0) session.close();
    // undici finishes its bookkeeping of the last stream on the same 'close': close after it.
    else session[kIdle] = () => setImmediate(() => session.close());
    return;
  }
  const gracefully = symbolOf(session, 'gracefullyClosing'); // http2-wrapper (got)
  if (gracefully !== undefined) (session as unknown as Record<symbol, unknown>)[gracefully] = true;
  session.emit('goaway', 0 /* NGHTTP2_NO_ERROR */, 0, Buffer.alloc(0));
  session.close();
}
