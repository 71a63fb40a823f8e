/**
 * UDP cannot go through a proxy: where the route is a proxy, a dgram send is
 * refused (strict) or sent with a `leak` event (layer 'udp'); resolver
 * queries (dns.resolve*, dns.reverse, Resolver methods) in a scope are
 * reported on session-proxy:dns. Proved by what a loopback UDP listener
 * received, with a control datagram sent as plumbing to show it listens.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import diagnostics from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, LeakBlockedError, type LeakEvent, type SessionProxyOptions } from '../../src/index.js';
import { startMockProxy, type MockProxy } from '../../src/testing/index.js';
import { asPlumbing } from '../../src/plumbing.js';

interface Listener {
  readonly port: number;
  readonly received: string[];
  arrived(text: string): Promise<void>;
  close(): Promise<void>;
}

async function startListener(): Promise<Listener> {
  const socket = dgram.createSocket('udp4');
  const received: string[] = [];
  const waiting = new Map<string, () => void>();
  socket.on('message', (msg) => {
    const text = msg.toString();
    received.push(text);
    waiting.get(text)?.();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    received,
    arrived: (text) => (received.includes(text) ? Promise.resolve() : new Promise((resolve) => waiting.set(text, resolve))),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

let proxy: MockProxy;
let listener: Listener;
let manager: SessionProxyManager | undefined;
const sockets: dgram.Socket[] = [];
let controls = 0;

beforeAll(async () => {
  proxy = await startMockProxy();
  listener = await startListener();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await manager?.uninstall();
  manager = undefined;
});
afterAll(async () => {
  await listener.close();
  await proxy.close();
});

function install(options: SessionProxyOptions): { leaks: LeakEvent[] } {
  const leaks: LeakEvent[] = [];
  manager = new SessionProxyManager(options).install();
  manager.on('leak', (e) => leaks.push(e));
  return { leaks };
}

function socket(): dgram.Socket {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  return s;
}

/** What a send's callback got (null on success). */
function sent(run: (cb: (error: Error | null) => void) => void): Promise<Error | null> {
  return new Promise((resolve) => run((error) => resolve(error)));
}

/** What a send without a callback raised on the socket's 'error' event; a throw fails the test. */
function errored(s: dgram.Socket, run: () => void): Promise<Error> {
  return new Promise((resolve) => {
    s.once('error', resolve);
    run();
  });
}

/**
 * Sends a control datagram on a path no hook routes and waits for it: every
 * datagram sent before it on loopback would have arrived first. Returns
 * everything the listener received meanwhile, the control excluded.
 */
async function receivedUntilControl(): Promise<string[]> {
  const text = `control-${++controls}`;
  const start = listener.received.length;
  const s = socket();
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  asPlumbing(() => s.send(text, listener.port, '127.0.0.1'));
  await listener.arrived(text);
  return listener.received.slice(start).filter((t) => t !== text);
}

const alice = () => ({ accounts: { alice: proxy.url }, noProxy: [] as string[] });

describe('UDP inside a scope, strict', () => {
  it('every send signature fails through its callback with LeakBlockedError; nothing is sent, nothing resolved, nothing thrown', async () => {
    const { leaks } = install(alice());
    const lookups: unknown[] = [];
    const onDns = (m: unknown): void => void lookups.push(m);
    diagnostics.subscribe('session-proxy:dns', onDns);
    const s = socket(); // not bound: Node would bind it on the first send
    const port = listener.port;
    const buf = Buffer.from('leak-buffer');
    const calls: Record<string, (cb: (e: Error | null) => void) => void> = {
      'send(msg, port, address, cb)': (cb) => s.send('leak-1', port, '127.0.0.1', cb),
      'send(msg, offset, length, port, address, cb)': (cb) => s.send(buf, 0, 4, port, '127.0.0.1', cb),
      'send([msgs], port, address, cb)': (cb) => s.send([Buffer.from('leak-'), 'list'], port, '127.0.0.1', cb),
      'send(msg, port, cb) (address omitted: loopback)': (cb) => s.send('leak-2', port, cb),
      'sendto(msg, offset, length, port, address, cb)': (cb) => (s as unknown as { sendto: (...a: unknown[]) => void }).sendto(buf, 0, 4, port, '127.0.0.1', cb),
      'send(msg, port, hostname, cb)': (cb) => s.send('leak-3', port, 'localhost', cb),
    };
    for (const [name, call] of Object.entries(calls)) {
      const error = await manager!.withProxy('alice', () => sent(call));
      expect(error, name).toBeInstanceOf(LeakBlockedError);
      expect(error, name).toMatchObject({ account: 'alice', target: name.includes('hostname') ? `localhost:${port}` : `127.0.0.1:${port}` });
    }
    diagnostics.unsubscribe('session-proxy:dns', onDns);
    expect(await receivedUntilControl()).toEqual([]);
    expect(lookups).toEqual([]); // the hostname was never looked up
    expect(leaks).toHaveLength(Object.keys(calls).length);
    expect(leaks[0]).toMatchObject({ account: 'alice', layer: 'udp', action: 'blocked', target: `127.0.0.1:${port}` });
  });

  it('without a callback the socket emits LeakBlockedError on \'error\'', async () => {
    install(alice());
    const s = socket();
    const error = await manager!.withProxy('alice', () => errored(s, () => s.send('leak-4', listener.port, '127.0.0.1')));
    expect(error).toBeInstanceOf(LeakBlockedError);
    expect(await receivedUntilControl()).toEqual([]);
  });

  it('a connected socket (connected outside the scope) is refused on send(msg), with and without a callback', async () => {
    install(alice());
    const s = socket();
    await new Promise<void>((resolve) => s.connect(listener.port, '127.0.0.1', resolve));
    const withCallback = await manager!.withProxy('alice', () => sent((cb) => s.send('leak-5', cb)));
    expect(withCallback).toBeInstanceOf(LeakBlockedError);
    expect(withCallback).toMatchObject({ target: `127.0.0.1:${listener.port}` });
    const viaOffset = await manager!.withProxy('alice', () => sent((cb) => s.send(Buffer.from('leak-6'), 0, 6, cb)));
    expect(viaOffset).toBeInstanceOf(LeakBlockedError);
    const withoutCallback = await manager!.withProxy('alice', () => errored(s, () => s.send('leak-7')));
    expect(withoutCallback).toBeInstanceOf(LeakBlockedError);
    expect(await receivedUntilControl()).toEqual([]);
    // The same socket outside the scope (no default proxy: direct) still works.
    expect(await sent((cb) => s.send('direct-1', cb))).toBeNull();
    await listener.arrived('direct-1');
  });

  it('Node\'s own argument errors still throw', () => {
    install(alice());
    const s = socket();
    expect(() => manager!.withProxy('alice', () => s.send('x', 0, '127.0.0.1'))).toThrow(/port/i);
  });
});

describe('UDP inside a scope, not strict or bypassed', () => {
  it('strict: false: it is sent, with one leak event and one route decision per send (also on a socket not bound yet)', async () => {
    const { leaks } = install({ ...alice(), strict: false });
    const routes: Array<{ layer: string }> = [];
    const onRoute = (m: unknown): void => void routes.push(m as { layer: string });
    diagnostics.subscribe('session-proxy:route', onRoute);
    const s = socket();
    expect(await manager!.withProxy('alice', () => sent((cb) => s.send('lenient-1', listener.port, '127.0.0.1', cb)))).toBeNull();
    await listener.arrived('lenient-1');
    diagnostics.unsubscribe('session-proxy:route', onRoute);
    expect(leaks).toEqual([
      { account: 'alice', target: `127.0.0.1:${listener.port}`, layer: 'udp', action: 'direct', reason: expect.stringContaining('UDP') },
    ]);
    expect(routes.filter((r) => r.layer === 'udp')).toHaveLength(1);
  });

  it('noProxy: a bypassed IP passes silently; a hostname is matched by name, connected sockets too', async () => {
    const { leaks } = install({ accounts: { alice: proxy.url }, noProxy: ['127.0.0.1:' + listener.port, 'localhost'] });
    const s = socket();
    expect(await manager!.withProxy('alice', () => sent((cb) => s.send('bypass-1', listener.port, '127.0.0.1', cb)))).toBeNull();
    const named = socket();
    expect(await manager!.withProxy('alice', () => sent((cb) => named.send('bypass-2', listener.port, 'localhost', cb)))).toBeNull();
    const connected = socket();
    await new Promise<void>((resolve) => connected.connect(listener.port, 'localhost', resolve));
    expect(await manager!.withProxy('alice', () => sent((cb) => connected.send('bypass-3', cb)))).toBeNull();
    await Promise.all(['bypass-1', 'bypass-2', 'bypass-3'].map((t) => listener.arrived(t)));
    expect(leaks).toEqual([]);
    // The same address is not in the list for another port.
    const other = await manager!.withProxy('alice', () => sent((cb) => s.send('leak-8', listener.port === 65535 ? 1 : listener.port + 1, '127.0.0.1', cb)));
    expect(other).toBeInstanceOf(LeakBlockedError);
  });

  it('a send queued until the implicit bind keeps the decision made when it was called, not the binding scope\'s', async () => {
    const { leaks } = install({ accounts: { alice: proxy.url }, noProxy: [`127.0.0.1:${listener.port}`] });
    const s = socket(); // not bound: alice's send binds it, and Node queues both sends until it is
    const other = await startListener();
    try {
      const inScope = manager!.withProxy('alice', () => sent((cb) => s.send('queued-1', listener.port, '127.0.0.1', cb)));
      const outside = sent((cb) => s.send('queued-2', other.port, '127.0.0.1', cb)); // outside any scope: direct
      expect(await inScope).toBeNull();
      expect(await outside).toBeNull();
      await Promise.all([listener.arrived('queued-1'), other.arrived('queued-2')]);
      expect(leaks).toEqual([]);
    } finally {
      await other.close();
    }
  });
});

describe('UDP outside scopes', () => {
  it('a default proxy: refused', async () => {
    install({ proxy: proxy.url, noProxy: [] });
    const error = await sent((cb) => socket().send('leak-9', listener.port, '127.0.0.1', cb));
    expect(error).toBeInstanceOf(LeakBlockedError);
    expect((error as LeakBlockedError).account).toBeUndefined(); // outside any scope: no account the user named
    expect(await receivedUntilControl()).toEqual([]);
  });

  it('no default proxy: passes silently', async () => {
    const { leaks } = install(alice());
    expect(await sent((cb) => socket().send('direct-2', listener.port, '127.0.0.1', cb))).toBeNull();
    await listener.arrived('direct-2');
    expect(leaks).toEqual([]);
  });

  it('requireScope: refused', async () => {
    const { leaks } = install({ ...alice(), requireScope: true });
    const error = await sent((cb) => socket().send('leak-10', listener.port, '127.0.0.1', cb));
    expect(error).toBeInstanceOf(LeakBlockedError);
    expect(leaks[0]).toMatchObject({ account: undefined, layer: 'udp', action: 'blocked', reason: expect.stringContaining('requireScope') });
    expect(await receivedUntilControl()).toEqual([]);
  });

  it('uninstall restores dgram.Socket.prototype.send and connect', async () => {
    const { send, connect } = dgram.Socket.prototype;
    install(alice());
    expect(dgram.Socket.prototype.send).not.toBe(send);
    await manager!.uninstall();
    manager = undefined;
    expect(dgram.Socket.prototype.send).toBe(send);
    expect(dgram.Socket.prototype.connect).toBe(connect);
  });
});

/**
 * A DNS server on loopback that answers every query NXDOMAIN, so resolver
 * queries finish fast without the internet. Its replies are sent outside any
 * scope with no default proxy: direct.
 */
async function startNxDomainServer(): Promise<{ address: string; queries: () => number; close: () => Promise<void> }> {
  const server = dgram.createSocket('udp4');
  let queries = 0;
  server.on('message', (query, peer) => {
    queries++;
    const reply = Buffer.from(query);
    reply[2] = (reply[2]! | 0x80) & 0xf9; // QR=1, no AA/TC; opcode and RD kept
    reply[3] = 0x80 | 3; // RA=1, RCODE=NXDOMAIN
    server.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  return { address: `127.0.0.1:${server.address().port}`, queries: () => queries, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('resolver queries inside a scope', () => {
  let nx: Awaited<ReturnType<typeof startNxDomainServer>>;
  let servers: string[];
  beforeAll(async () => {
    nx = await startNxDomainServer();
    servers = dns.getServers();
    dns.setServers([nx.address]);
    dns.promises.setServers([nx.address]);
  });
  afterAll(async () => {
    dns.setServers(servers);
    dns.promises.setServers(servers);
    await nx.close();
  });

  it('dns.resolve*, dns.reverse, dns.promises and Resolver instances are published on session-proxy:dns with the account, once each', async () => {
    install(alice());
    const seen: Array<{ account: string; hostname: string; reason: string }> = [];
    const onDns = (m: unknown): void => void seen.push(m as (typeof seen)[number]);
    diagnostics.subscribe('session-proxy:dns', onDns);
    const resolver = new dns.Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([nx.address]);
    const promisesResolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    promisesResolver.setServers([nx.address]);
    const settle = (run: (cb: (e: unknown) => void) => void) => new Promise<void>((resolve) => run(() => resolve()));
    await manager!.withProxy('alice', async () => {
      await settle((cb) => dns.resolve4('a.exchange.test', cb));
      await settle((cb) => dns.resolve('b.exchange.test', 'TXT', cb));
      await settle((cb) => dns.reverse('127.0.0.9', cb));
      await dns.promises.resolve6('c.exchange.test').catch(() => undefined);
      await dns.promises.resolve('d.exchange.test', 'MX').catch(() => undefined);
      await settle((cb) => resolver.resolveSrv('e.exchange.test', cb));
      await promisesResolver.resolveAny('f.exchange.test').catch(() => undefined);
    });
    // Outside any scope: not reported.
    await settle((cb) => dns.resolve4('g.exchange.test', cb));
    diagnostics.unsubscribe('session-proxy:dns', onDns);
    expect(seen.map((m) => [m.account, m.hostname, m.reason])).toEqual([
      ['alice', 'a.exchange.test', 'resolver query inside a scope (dns.resolve4)'],
      ['alice', 'b.exchange.test', 'resolver query inside a scope (dns.resolve)'],
      ['alice', '127.0.0.9', 'resolver query inside a scope (dns.reverse)'],
      ['alice', 'c.exchange.test', 'resolver query inside a scope (dns.promises.resolve6)'],
      ['alice', 'd.exchange.test', 'resolver query inside a scope (dns.promises.resolve)'],
      ['alice', 'e.exchange.test', 'resolver query inside a scope (dns.Resolver#resolveSrv)'],
      ['alice', 'f.exchange.test', 'resolver query inside a scope (dns.promises.Resolver#resolveAny)'],
    ]);
    expect(nx.queries()).toBeGreaterThanOrEqual(8); // the queries went to the local server, not the internet
  });

  it('uninstall restores the resolve functions, and keeps servers set while installed', async () => {
    const { resolve4 } = dns;
    const protoResolve4 = dns.Resolver.prototype.resolve4;
    install(alice());
    expect(dns.resolve4).not.toBe(resolve4);
    dns.setServers([nx.address]); // rebinds dns.resolve4 to the (patched) Resolver.prototype method
    const rebound = dns.resolve4;
    await manager!.uninstall();
    manager = undefined;
    expect(dns.Resolver.prototype.resolve4).toBe(protoResolve4);
    expect(dns.resolve4).toBe(rebound); // not reset to a function bound to the old servers
    const before = nx.queries();
    await new Promise<void>((resolve) => dns.resolve4('h.exchange.test', () => resolve()));
    expect(nx.queries()).toBeGreaterThan(before);
  });
});
