/**
 * A mock rotating gateway for tests: one host, HTTP CONNECT and SOCKS5, that
 * reads a vendor's grammar from the credentials (answering a malformed one as
 * a gateway would), binds each session id to an exit address from a pool,
 * changes it after `lifetimeMs` or `idleMs` (or the lifetime the credential
 * asks for), lets a test force a change (`flip`) or put two sessions on one
 * address (`collide`), and logs every connection with the raw credentials it
 * received. Built on the mock proxy's pieces (reader, tunnel relay, socket
 * registry, faults); its upstream sockets are the library's plumbing, so it
 * runs beside an installed manager without being routed.
 */
import * as net from 'node:net';
import { listenOnFreePort } from './mock-proxy/io.js';
import { gatewayGrammar } from '../gateways/definition.js';
import { ProxyContext, resolveOptions } from './mock-proxy/context.js';
import { FaultState } from './mock-proxy/faults.js';
import { Bindings } from './mock-gateway/bindings.js';
import { accept, type GatewayContext } from './mock-gateway/serve.js';
import type { MockGateway, MockGatewayOptions } from './mock-gateway/types.js';

export type { MockGateway, MockGatewayLogEntry, MockGatewayOptions, MockGatewaySession } from './mock-gateway/types.js';

export async function startMockGateway(options: MockGatewayOptions): Promise<MockGateway> {
  if (!options || typeof options !== 'object') throw new TypeError('startMockGateway needs { vendor, egressIps }');
  for (const ip of options.egressIps ?? []) if (net.isIP(ip) === 0) throw new TypeError(`egressIps: ${String(ip)} is not an IP address`);
  for (const [k, v] of [['lifetimeMs', options.lifetimeMs], ['idleMs', options.idleMs]] as const) {
    if (v !== undefined && !(typeof v === 'number' && v > 0)) throw new TypeError(`${k} must be a positive number of milliseconds`);
  }
  const ctx = new ProxyContext(resolveOptions({ host: options.host, hosts: options.hosts }), new FaultState());
  const g: GatewayContext = {
    ctx,
    grammar: gatewayGrammar(options.vendor),
    bindings: new Bindings(options.egressIps ?? [], options.lifetimeMs, options.idleMs),
    options,
    log: [],
    nextId: 1,
  };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => accept(g, socket));
  const port = await listenOnFreePort(server, ctx.options.host);
  const host = ctx.options.host;
  const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    url: `http://${authority}`,
    urlFor: (protocol, c) => `${protocol}://${encodeURIComponent(c.username)}:${encodeURIComponent(c.password)}@${authority}`,
    log: g.log,
    sessions: () => g.bindings.all(),
    session: (id) => g.bindings.get(id),
    flip: (id) => g.bindings.flip(id),
    collide: (a, b) => g.bindings.collide(a, b),
    failSession: (id) => g.bindings.kill(id),
    faults: ctx.faults,
    openConnections: () => ctx.openConnections(),
    close: () =>
      (closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await ctx.close();
        await closed;
        for (const entry of g.log) if (entry.status === 'open') Object.assign(entry, { status: 'error', error: 'mock gateway closed', closedAt: Date.now() });
      })()),
  };
}
