/**
 * UDP. A proxy (HTTP CONNECT, SOCKS4, our SOCKS5 client) carries TCP only,
 * so a datagram sent where the route is a proxy would leave from this host's
 * own IP. Every datagram Node's JavaScript sends goes through
 * `dgram.Socket.prototype.send`: `sendto` calls `this.send`, a connected
 * socket sends through it without an address, and a send on a socket not yet
 * bound re-calls `this.send` once the implicit bind completes. (`connect`,
 * `bind`, `setBroadcast` send nothing; multicast and broadcast datagrams are
 * ordinary sends to a group or broadcast address and are routed like any
 * target. Native code — c-ares DNS, QUIC — is not seen here.)
 *
 * Per send, the router is asked once, synchronously, in the caller's context,
 * with the target the caller named (a hostname is not resolved; noProxy
 * matches it by name; a connected socket's target is the remote it was
 * connected to). The answer maps to:
 * - direct → sent as is;
 * - proxy or blocked → a leak: with `strict`, nothing is sent (not even the
 *   DNS lookup of a hostname target) and LeakBlockedError arrives through
 *   the callback, or the socket's 'error' event, never as a throw;
 *   without `strict` it is sent with a `leak` event;
 * - fail (pool down, quarantine) → that error, the same way; never sent.
 */
import dgram from 'node:dgram';
import { isMarkedPlumbing, isPlumbing } from '../plumbing.js';
import type { Router } from '../routing/router.js';
import type { Target } from '../routing/route.js';
import { patch, restoreAll, type Restore } from './layer.js';

export interface DgramLayerDeps {
  readonly router: Router;
}

type Fn = (this: dgram.Socket, ...args: unknown[]) => unknown;

interface Send {
  readonly target: Target;
  readonly callback: ((error: Error) => void) | undefined;
}

export function installDgramLayer(deps: DgramLayerDeps): Restore {
  const proto = dgram.Socket.prototype as unknown as Record<'send' | 'connect' | 'remoteAddress', Fn>;
  const originalSend = proto.send;
  const originalConnect = proto.connect;
  const remoteAddress = proto.remoteAddress;
  /** The remote each socket was connected to, as the caller named it. */
  const named = new WeakMap<dgram.Socket, Target>();
  const original = (socket: dgram.Socket, args: unknown[]): unknown => originalSend.apply(socket, args);

  const connectedTo = (socket: dgram.Socket): Target | undefined => {
    let remote: { address: string; port: number };
    try {
      remote = remoteAddress.call(socket) as typeof remote; // throws unless connected (or closed)
    } catch {
      return undefined;
    }
    const name = named.get(socket);
    return name && name.port === remote.port ? name : { host: remote.address, port: remote.port };
  };

  /** The router never tunnels UDP: its answer is pass, or the refusal (a leak under strict, a pool down, quarantine). */
  const refusal = (target: Target): Error | undefined => {
    const action = deps.router.decide(target, 'udp');
    return action.kind === 'fail' ? action.error : undefined;
  };

  const hookedSend = function send(this: dgram.Socket, ...args: unknown[]): unknown {
    if (isPlumbing() || isMarkedPlumbing(this)) return sendDecided(this, args);
    const call = parseSend(this, args, connectedTo(this));
    // Arguments Node rejects: it throws on them synchronously, before anything is sent.
    if (!call) return sendDecided(this, args);
    const error = refusal(call.target);
    if (!error) return sendDecided(this, args);
    const socket = this;
    // As Node delivers a failed send (lib/dgram.js doSend): callback, else 'error'.
    if (call.callback) process.nextTick(call.callback, error);
    else process.nextTick(() => socket.emit('error', error));
    return undefined;
  };

  /**
   * Sends a datagram whose route is decided. On a socket that is not bound
   * yet, Node queues `this.send.bind(...)` and calls it after the implicit
   * bind, in the bind's context: the queued call must not be decided again
   * (another scope's decision, a second leak event). While the original runs,
   * `this.send` reads the original.
   */
  const sendDecided = (socket: dgram.Socket, args: unknown[]): unknown => {
    const own = Object.getOwnPropertyDescriptor(socket, 'send');
    if (own && !own.configurable) return original(socket, args);
    Object.defineProperty(socket, 'send', { value: originalSend, configurable: true, writable: true, enumerable: false });
    try {
      return original(socket, args);
    } finally {
      if (own) Object.defineProperty(socket, 'send', own);
      else delete (socket as { send?: unknown }).send;
    }
  };

  /** Sends nothing (a UDP connect is local); remembers the remote as named, for the sends that follow. */
  const hookedConnect = function connect(this: dgram.Socket, ...args: unknown[]): unknown {
    const result = originalConnect.apply(this, args);
    const [port, address] = args;
    named.set(this, { host: typeof address === 'string' && address !== '' ? address : loopback(this), port: Number(port) });
    return result;
  };

  return restoreAll([patch(proto, 'send', hookedSend), patch(proto, 'connect', hookedConnect)]);
}

/**
 * The target and callback of `send(msg[, offset, length], port[, address][, cb])`
 * on an unconnected socket, or `send(msg[, offset, length][, cb])` on a connected
 * one, read as lib/dgram.js reads them; undefined for arguments Node throws on.
 */
function parseSend(socket: dgram.Socket, args: unknown[], connected: Target | undefined): Send | undefined {
  let [buffer, offset, length, port, address, callback] = args;
  if (!isMessage(buffer)) return undefined;
  if (!connected) {
    if (!(address || (port && typeof port !== 'function'))) {
      callback = port;
      port = offset;
      address = length;
    }
  } else {
    if (typeof length === 'number') {
      if (typeof port === 'function') {
        callback = port;
        port = null;
      }
    } else {
      callback = offset;
    }
    if (port || address) return undefined; // ERR_SOCKET_DGRAM_IS_CONNECTED
  }
  if (typeof callback !== 'function') callback = undefined;
  if (typeof address === 'function') {
    callback = address;
    address = undefined;
  } else if (address != null && typeof address !== 'string') {
    return undefined;
  }
  const cb = callback as Send['callback'];
  if (connected) return { target: connected, callback: cb };
  const p = validPort(port);
  if (p === undefined) return undefined;
  // An omitted or empty address is loopback (lib/internal/dgram.js lookup4/lookup6).
  return { target: { host: (address as string | null | undefined) || loopback(socket), port: p }, callback: cb };
}

function isMessage(value: unknown): boolean {
  const one = (v: unknown): boolean => typeof v === 'string' || ArrayBuffer.isView(v);
  return Array.isArray(value) ? value.every(one) : one(value);
}

/** lib/internal/validators.js validatePort(port, 'Port', false). */
function validPort(port: unknown): number | undefined {
  if (typeof port !== 'number' && typeof port !== 'string') return undefined;
  if (typeof port === 'string' && port.trim() === '') return undefined;
  const n = +port;
  if (n !== n >>> 0 || n > 0xffff || port === 0) return undefined;
  return n;
}

function loopback(socket: dgram.Socket): string {
  return (socket as { type?: string }).type === 'udp6' ? '::1' : '127.0.0.1';
}
