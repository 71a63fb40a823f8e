/**
 * A mock proxy for tests: HTTP forward, HTTP CONNECT, SOCKS4/4a and SOCKS5 on
 * one port (told apart by the first byte), with a log of every tunnel and
 * fault injection. Its upstream sockets are the library's plumbing, so it
 * runs in the same process as an installed manager without being routed.
 */
import * as net from 'node:net';
import { listenOnFreePort } from './mock-proxy/io.js';
import { ProxyContext, resolveOptions } from './mock-proxy/context.js';
import { FaultState } from './mock-proxy/faults.js';
import { serveHttp } from './mock-proxy/http.js';
import type { SocketReader } from './mock-proxy/reader.js';
import { acceptConnection } from './mock-proxy/accept.js';
import { serveSocks4 } from './mock-proxy/socks4.js';
import { serveSocks5 } from './mock-proxy/socks5.js';
import type { MockProxy, MockProxyOptions } from './mock-proxy/types.js';

export type {
  MockProxy,
  MockProxyFaults,
  MockProxyLogEntry,
  MockProxyOptions,
  MockProxyProtocol,
} from './mock-proxy/types.js';

type UrlProtocol = Parameters<MockProxy['urlFor']>[0];
const URL_PROTOCOLS: readonly UrlProtocol[] = ['http', 'socks4', 'socks4a', 'socks5', 'socks5h'];

export async function startMockProxy(options: MockProxyOptions = {}): Promise<MockProxy> {
  const ctx = new ProxyContext(resolveOptions(options), new FaultState());
  const server = net.createServer({ allowHalfOpen: true }, (socket) => accept(ctx, socket));
  const port = await listenOnFreePort(server, ctx.options.host);
  const host = ctx.options.host;
  const hostInUrl = net.isIPv6(host) ? `[${host}]` : host;

  const urlFor = (protocol: UrlProtocol, opts: { auth?: boolean } = {}): string => {
    if (!URL_PROTOCOLS.includes(protocol)) throw new TypeError(`unknown proxy URL protocol: ${String(protocol)}`);
    const auth = ctx.options.auth;
    let userinfo = '';
    if (auth && (opts.auth ?? true)) {
      const user = encodeURIComponent(auth.username);
      // SOCKS4 has a userid and no password.
      userinfo = protocol.startsWith('socks4') ? `${user}@` : `${user}:${encodeURIComponent(auth.password)}@`;
    }
    return `${protocol}://${userinfo}${hostInUrl}:${port}`;
  };

  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    url: urlFor('http'),
    urlFor,
    log: ctx.log,
    faults: ctx.faults,
    openConnections: () => ctx.openConnections(),
    acceptedConnections: () => ctx.accepted,
    close: () =>
      (closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await ctx.close();
        await serverClosed;
      })()),
  };
}

function accept(ctx: ProxyContext, socket: net.Socket): void {
  acceptConnection(ctx, socket, (reader) => serve(ctx, socket, reader));
}

async function serve(ctx: ProxyContext, socket: net.Socket, reader: SocketReader): Promise<void> {
  const first = await reader.peekByte();
  const enabled = ctx.options.protocols;
  if (first === 0x04 && enabled.has('socks4')) return serveSocks4(ctx, socket, reader);
  if (first === 0x05 && enabled.has('socks5')) return serveSocks5(ctx, socket, reader);
  const http = first !== undefined && first !== 0x04 && first !== 0x05;
  if (http && (enabled.has('http') || enabled.has('connect'))) return serveHttp(ctx, socket, reader);
  // A protocol this proxy was told not to speak: hang up, as a proxy that never heard of it would.
  socket.destroy();
}
