/**
 * The library's own plumbing — connections to proxies, egress probes, the
 * testing kit's upstream sockets — must never be routed again by our own
 * hooks. It is recognised by a private marker, never by destination address:
 *
 * - a synchronous depth counter, raised only for the duration of the call to
 *   the original `net.connect` / `tls.connect` (which call
 *   `Socket.prototype.connect` synchronously, so a prototype hook sees it);
 *   deliberately *not* an AsyncLocalStorage context, which would leak into the
 *   socket's callbacks and let user code run "as plumbing";
 * - `kPlumbing` set on the returned socket, so later hooks (writes, TLS
 *   wrapping) recognise it too.
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { state } from './state.js';

export const kPlumbing: unique symbol = Symbol.for('session-proxy.plumbing') as never;

/** True while a plumbing call is on the stack. */
export function isPlumbing(): boolean {
  return state.plumbingDepth > 0;
}

/** True for sockets (or request options) marked as the library's own. */
export function isMarkedPlumbing(value: unknown): boolean {
  return !!value && typeof value === 'object' && (value as Record<symbol, unknown>)[kPlumbing] === true;
}

/**
 * On connect options marked as plumbing: a background connection (the fleet
 * store's client), which must not keep the process alive by itself — the
 * library holds the process open while a request waits on it instead.
 */
export const kBackground: unique symbol = Symbol.for('session-proxy.background') as never;

/** True for connect options of a background connection (see kBackground). */
export function isBackground(value: unknown): boolean {
  return !!value && typeof value === 'object' && (value as Record<symbol, unknown>)[kBackground] === true;
}

export function markPlumbing<T extends object>(value: T): T {
  Object.defineProperty(value, kPlumbing, { value: true, enumerable: false, configurable: true });
  return value;
}

/** Runs `fn` synchronously as plumbing: every socket hook lets through what it opens. */
export function asPlumbing<T>(fn: () => T): T {
  state.plumbingDepth++;
  try {
    return fn();
  } finally {
    state.plumbingDepth--;
  }
}

/** `net.connect` as Node shipped it, marked as plumbing. */
export function directConnect(options: net.NetConnectOpts, onConnect?: () => void): net.Socket {
  const socket = asPlumbing(() => state.originals.netConnect(options, onConnect));
  return markPlumbing(socket);
}

/** `tls.connect` as Node shipped it, marked as plumbing. */
export function directTlsConnect(options: tls.ConnectionOptions, onSecure?: () => void): tls.TLSSocket {
  const socket = asPlumbing(() => state.originals.tlsConnect(options, onSecure));
  return markPlumbing(socket);
}
