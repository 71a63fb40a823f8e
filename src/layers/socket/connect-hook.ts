/**
 * Layer 4 — sockets. Clients that never touch the global dispatcher or
 * http(s).request — an app's own undici.Agent/Pool (ccxt), http2.connect,
 * grpc-js, raw net/tls — all end in `net.Socket.prototype.connect` (net.connect,
 * net.createConnection and tls.connect call it), so one hook there sees every
 * outbound TCP connection, synchronously, in the async context that made it.
 *
 * It is the backstop for every TCP connection: the library's plumbing
 * (marked, never by address) and IPC (a non-empty `path`) pass untouched;
 * everything else gets the router's answer:
 * - tunnel → the socket is redirected to the in-process relay, which tunnels
 *   it through the account's proxy with the hostname the caller gave (no
 *   local DNS);
 * - pass → the connection goes as the caller asked;
 * - fail → refused with the router's error before any SYN is sent.
 * Either way the socket is recorded as serving its route (guard/ownership),
 * so every later use is checked. A connection some layer already decided
 * (route-mark `decided`) is only recorded, never decided twice.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { state } from '../../state.js';
import { isBackground, isMarkedPlumbing, isPlumbing } from '../../plumbing.js';
import type { Router } from '../../routing/router.js';
import { unbracket, type RouteKey, type Target } from '../../routing/route.js';
import type { ProxyEndpoint } from '../../proxy/endpoint.js';
import { Relay } from './relay.js';
import { claim } from '../../guard/ownership.js';
import { routeMarkFor } from '../../guard/route-mark.js';
import { patch, type Restore } from '../layer.js';

export interface SocketLayerDeps {
  readonly router: Router;
  /** Told about every tunnelled socket, for rotation. */
  readonly onTunnel?: (socket: Socket, account: string, proxy: ProxyEndpoint) => void;
}

type ConnectFn = (this: Socket, ...args: unknown[]) => Socket;

export function installSocketLayer(deps: SocketLayerDeps): Restore {
  const original = state.originals.socketConnect as unknown as ConnectFn;
  // Started at install, so it is usually listening before the first socket needs it.
  const relay = new Relay();

  const hooked = function connect(this: Socket, ...args: unknown[]): Socket {
    if (isPlumbing() || isMarkedPlumbing(this)) return original.apply(this, args);
    const { options, callback } = normalizeConnectArgs(args);
    // Options marked as the library's own (the fleet store's Redis client spreads its socket options into these).
    if (isMarkedPlumbing(options)) {
      const socket = original.apply(this, args);
      if (isBackground(options)) socket.unref();
      return socket;
    }
    // IPC only for a non-empty path, as Node itself decides (`!!path`): Node's
    // http Agent passes `path: null`, and `path: ''` connects over TCP too.
    // Without a port Node throws before anything is sent.
    if (!options || options.path || options.port === undefined) return original.apply(this, args);
    // `||` as Node's own lookupAndConnect: an empty host is localhost.
    const target: Target = { host: unbracket(String(options.host || 'localhost')), port: Number(options.port) };
    const mark = routeMarkFor(options);
    if (mark?.decided) {
      // A layer already applied the router's answer (it passes): only record the route.
      return claimed(original.apply(this, args), mark.route);
    }
    // Marked options (an http Agent's queued request) decide for the request's account, not the current context.
    const action = deps.router.decide(target, 'socket', mark ? { account: mark.account ?? null } : {});
    if (action.kind === 'fail') return failSocket(this, action.error);
    if (action.kind === 'pass') return claimed(original.apply(this, args), action.route);
    const socket = this;
    reportTarget(socket, target);
    deps.onTunnel?.(socket, action.account, action.proxy);
    const entry = { caller: socket, open: action.open, target };
    socket.once('connect', () => relay.register(socket.localPort!, entry));
    const relayed: Record<string, unknown> = { host: '127.0.0.1' };
    for (const k of ['timeout', 'noDelay', 'keepAlive', 'keepAliveInitialDelay', 'signal'] as const) {
      if (options[k] !== undefined) relayed[k] = options[k];
    }
    if (relay.port !== undefined) return claimed(original.call(socket, { ...relayed, port: relay.port }, callback), action.route);
    // Not listening yet: the socket stays "connecting" (Node queues writes until 'connect').
    (socket as { connecting: boolean }).connecting = true;
    claim(socket, action.route);
    relay.ready.then(
      (port) => { if (!socket.destroyed) claimed(original.call(socket, { ...relayed, port }, callback), action.route); },
      (err: Error) => socket.destroy(err),
    );
    return socket;
  };

  const restore = patch(net.Socket.prototype, 'connect', hooked);
  return () => {
    restore();
    relay.close();
  };
}

/** Records the route after connect() ran (it resets a replaced `write`). */
function claimed(socket: Socket, route: RouteKey): Socket {
  claim(socket, route);
  return socket;
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
  path?: string | null;
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
