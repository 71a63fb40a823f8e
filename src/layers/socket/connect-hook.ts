/**
 * Layer 4 — sockets. Clients that never touch the global dispatcher or
 * http(s).request — an app's own undici.Agent/Pool (ccxt), http2.connect,
 * grpc-js, raw net/tls — all end in `net.Socket.prototype.connect` (net.connect,
 * net.createConnection and tls.connect call it), so one hook there sees every
 * outbound TCP connection, synchronously, in the async context that made it.
 *
 * Each connection is routed by the same table as the HTTP layers:
 * - the library's plumbing (marked, never by address) and IPC pass untouched;
 * - direct routes pass untouched;
 * - proxy routes are redirected to the in-process relay, which tunnels them
 *   through the account's proxy with the hostname the caller gave (no local
 *   DNS); the socket then belongs to that account (ownership.ts);
 * - with `tunnelSockets: false`, or a blocked route, the connection is refused
 *   with LeakBlockedError before any SYN is sent (strict), or goes direct
 *   with a `leak` event (strict: false).
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { state } from '../../state.js';
import { isMarkedPlumbing, isPlumbing } from '../../plumbing.js';
import type { Router } from '../../routing/router.js';
import type { LeakPolicy } from '../../routing/leak-policy.js';
import { unbracket, type Route, type Target } from '../../routing/route.js';
import type { ProxyEndpoint } from '../../proxy/endpoint.js';
import { Relay } from './relay.js';
import type { TunnelOpener } from '../../routing/account-tunnels.js';
import { claimSocket } from './ownership.js';

export interface SocketLayerDeps {
  readonly router: Router;
  readonly leaks: LeakPolicy;
  /** Tunnel connections the HTTP layers do not cover (default true); false refuses them. */
  readonly tunnelSockets: boolean;
  /** Is a configured proxy (of any account) listening at this address? */
  readonly isProxyAddress: (target: Target) => boolean;
  /** Told about every tunnelled socket, for rotate's closeExisting. */
  readonly onTunnel?: (socket: Socket, account: string, proxy: ProxyEndpoint) => void;
  readonly openerFor: (account: string, proxy: ProxyEndpoint) => TunnelOpener;
}

type ConnectFn = (this: Socket, ...args: unknown[]) => Socket;

export function installSocketLayer(deps: SocketLayerDeps): () => void {
  const original = state.originals.socketConnect as unknown as ConnectFn;
  // Started at install, so it is usually listening before the first socket needs it.
  const relay = new Relay();

  const hooked = function connect(this: Socket, ...args: unknown[]): Socket {
    if (isPlumbing() || isMarkedPlumbing(this)) return original.apply(this, args);
    const { options, callback } = normalizeConnectArgs(args);
    if (!options || options.path !== undefined || options.port === undefined) return original.apply(this, args);
    const target: Target = { host: unbracket(String(options.host ?? 'localhost')), port: Number(options.port) };
    const route = deps.router.resolve(target, 'socket');
    if (route.kind === 'direct') return original.apply(this, args);
    if (route.kind === 'blocked') return refuse(this, args, route, target, route.reason);
    if (route.kind === 'fail') return failSocket(this, route.error);
    if (deps.isProxyAddress(target)) {
      // A client dialing a proxy itself (its own ProxyAgent reading HTTPS_PROXY):
      // its own way out passes as is; another account's proxy is a leak.
      const foreign = route.scoped ? deps.router.foreignProxyAt(target, route.account) : undefined;
      if (!foreign) return original.apply(this, args);
      return refuse(this, args, route, target, `connection to another account's proxy ${foreign}`);
    }
    if (!deps.tunnelSockets) {
      return refuse(this, args, route, target, 'socket-level connection outside the HTTP layers, and tunnelSockets is false');
    }
    const socket = this;
    claimSocket(socket, route.account);
    reportTarget(socket, target);
    deps.onTunnel?.(socket, route.account, route.proxy);
    const entry = { caller: socket, open: deps.openerFor(route.account, route.proxy), target };
    socket.once('connect', () => relay.register(socket.localPort!, entry));
    const relayed: Record<string, unknown> = { host: '127.0.0.1' };
    for (const k of ['timeout', 'noDelay', 'keepAlive', 'keepAliveInitialDelay', 'signal'] as const) {
      if (options[k] !== undefined) relayed[k] = options[k];
    }
    if (relay.port !== undefined) return original.call(socket, { ...relayed, port: relay.port }, callback);
    // Not listening yet: the socket stays "connecting" (Node queues writes until 'connect').
    (socket as { connecting: boolean }).connecting = true;
    relay.ready.then(
      (port) => { if (!socket.destroyed) original.call(socket, { ...relayed, port }, callback); },
      (err: Error) => socket.destroy(err),
    );
    return socket;
  };

  const refuse = (socket: Socket, args: unknown[], route: Route, target: Target, reason: string): Socket => {
    const error = deps.leaks.violation({ layer: 'socket', route, target, reason });
    if (!error) return original.apply(socket, args);
    return failSocket(socket, error);
  };

  net.Socket.prototype.connect = hooked as unknown as net.Socket['connect'];
  return () => {
    net.Socket.prototype.connect = state.originals.socketConnect;
    relay.close();
  };
}

/** No SYN is sent: the socket fails as if its connect had failed. */
function failSocket(socket: Socket, error: Error): Socket {
  (socket as { connecting: boolean }).connecting = true;
  process.nextTick(() => socket.destroy(error));
  return socket;
}

/**
 * A tunnelled socket is physically connected to the relay; it reports the
 * *target* as its remote end (http2 derives a session's origin from
 * remotePort; logs should name where the bytes go). remoteAddress is the
 * target as the caller named it — a hostname when the proxy resolved it.
 */
function reportTarget(socket: Socket, target: Target): void {
  const family = net.isIP(target.host);
  Object.defineProperties(socket, {
    remoteAddress: { value: target.host, configurable: true },
    remotePort: { value: target.port, configurable: true },
    remoteFamily: { value: family === 6 ? 'IPv6' : family === 4 ? 'IPv4' : undefined, configurable: true },
  });
}

interface ConnectOptions {
  host?: string;
  port?: number | string;
  path?: string;
  [key: string]: unknown;
}

/**
 * connect(options[, cb]) | connect(port[, host][, cb]) | connect(path[, cb]),
 * and the pre-normalized [options, cb] array net.connect passes.
 */
function normalizeConnectArgs(args: unknown[]): { options: ConnectOptions | undefined; callback: unknown } {
  let list = args;
  if (Array.isArray(args[0])) list = args[0] as unknown[];
  const [a, b, c] = list;
  if (a !== null && typeof a === 'object') return { options: a as ConnectOptions, callback: b };
  if (typeof a === 'string' && !/^\d+$/.test(a)) return { options: { path: a }, callback: b };
  if (typeof a === 'number' || typeof a === 'string') {
    return typeof b === 'string' ? { options: { port: a, host: b }, callback: c } : { options: { port: a }, callback: b };
  }
  return { options: undefined, callback: undefined };
}
