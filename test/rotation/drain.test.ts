/**
 * Rotation moves the whole account: once rotate() returns, no new request of
 * the account leaves through the old proxy — neither through the library's
 * own pools (global fetch) nor through connections kept inside other
 * libraries' pools (ccxt's undici Agent, an app's undici.Pool, got's and
 * undici's http2 sessions, grpc-js, a Node http Agent reached by a function
 * captured before install) — and none fails because of the move: in-flight
 * requests finish on the old egress, idle connections close, and a long
 * response is cut after `drainTimeout`.
 */
import http2 from 'node:http2';
import https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, Pool, request as undiciRequest } from 'undici';
import ccxt from 'ccxt';
import * as grpcJs from '@grpc/grpc-js';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import { SessionProxyManager, DrainTimeoutError, ProxyUnavailableError, findSessionProxyError, type RotateEvent, type SessionProxyOptions } from '../../src/index.js';
import { startScenario, readJson, type Scenario } from '../support/scenario.js';
import { skipWithout, startTinyproxy } from '../support/real-proxies.js';
import { echoService } from '../socket/grpc-echo.js';

// Captured before any install, like a module that destructured `https` early: it bypasses the
// http layer, so its requests reach the network through the socket layer only.
const capturedRequest = https.request;

const OLD = '127.0.0.2';
const NEW = '127.0.0.3';

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function world(): Promise<Scenario> {
  const s = await startScenario({ old: { egressIp: OLD }, new: { egressIp: NEW } }, { http2: true });
  cleanup.push(() => s.close());
  return s;
}

function install(options: SessionProxyOptions): { m: SessionProxyManager; events: RotateEvent[] } {
  const m = new SessionProxyManager({ noProxy: [], ...options }).install();
  cleanup.push(() => m.uninstall());
  const events: RotateEvent[] = [];
  m.on('rotate', (e) => events.push(e));
  return { m, events };
}

/** Waits (bounded) for a condition that an event outside the test's reach makes true. */
async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The egress IP the echo server saw for the request with this path. */
const egressOf = (s: Scenario, path: string): string | undefined => s.echo.requests.find((r) => r.path === path)?.ip;

const slug = (name: string): string => name.replace(/\W+/g, '-');

/** A response that takes chunks × delay ms: in flight while the account rotates. */
const slow = (tag: string, chunks = 8, delay = 100): string => `/stream?chunks=${chunks}&delay=${delay}&size=256&tag=${tag}`;

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString('utf8')),
};
/** A server stream: 8 messages, 100 ms apart, each with the peer the server saw. */
const ticksService = {
  ticks: { path: '/sessionproxy.test.Ticks/Ticks', requestStream: false, responseStream: true, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
} satisfies grpcJs.ServiceDefinition;
const GrpcClient = grpcJs.makeGenericClientConstructor({ ...echoService, ...ticksService }, 'EchoTicks');
type Peer = { peer: string };
type GrpcMethods = {
  echo: (r: unknown, cb: (e: Error | null, r: Peer) => void) => void;
  ticks: (r: unknown) => grpcJs.ClientReadableStream<Peer>;
};

async function startGrpc(): Promise<{ target: string; close(): Promise<void> }> {
  const server = new grpcJs.Server();
  server.addService(echoService, { echo: (call: grpcJs.ServerUnaryCall<unknown, unknown>, cb: grpcJs.sendUnaryData<unknown>) => cb(null, { peer: call.getPeer() }) });
  server.addService(ticksService, {
    ticks: (call: grpcJs.ServerWritableStream<unknown, unknown>) => {
      let i = 0;
      const timer = setInterval(() => {
        call.write({ peer: call.getPeer() });
        if (++i === 8) {
          clearInterval(timer);
          call.end();
        }
      }, 100);
      call.on('cancelled', () => clearInterval(timer));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpcJs.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { target: `127.0.0.1:${port}`, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

const ipOfPeer = (peer: string): string => peer.replace(/^ipv4:/, '').replace(/:\d+$/, '');

function capturedGet(url: string, agent: https.Agent, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = capturedRequest(url, { agent, ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('rotate() drains the account off the old proxy', () => {
  it('ccxt, global fetch, undici Pools and a captured https.request busy in the scope: requests after rotate() leave from the new egress, in-flight ones finish on the old', async () => {
    const s = await world();
    const { old, new: next } = s.proxies;
    const { m, events } = install({ accounts: { alice: [old.url, next.url] } });
    const { echo } = s;
    const exchange = new ccxt.binance();
    const pool = new Pool(echo.httpsUrl, { connect: { ca: echo.ca } });
    // One connection: a request made after rotate() queues behind the in-flight one on its socket.
    const narrow = new Pool(echo.httpUrl, { connections: 1 });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => pool.destroy(), () => narrow.destroy(), () => agent.destroy());
    const clients: Record<string, (path: string) => Promise<string>> = {
      ccxt: async (path) => {
        const r: unknown = await exchange.fetch(`${echo.httpUrl}${path}`, 'GET'); // parsed JSON, or text
        return typeof r === 'string' ? r : JSON.stringify(r);
      },
      fetch: async (path) => (await fetch(`${echo.httpUrl}${path}`)).text(),
      'undici.Pool': async (path) => (await pool.request({ path, method: 'GET' })).body.text(),
      'undici.Pool (1 connection)': async (path) => (await narrow.request({ path, method: 'GET' })).body.text(),
      'captured https.request': (path) => capturedGet(`${echo.httpsUrl}${path}`, agent, echo.ca),
    };
    const ipOf = (body: string): string => (JSON.parse(body) as { ip: string }).ip;
    const inScope = (fn: () => Promise<string>) => m.withProxy('alice', fn);

    // Kept-alive connections, two per client where it pools more than one: one stays idle.
    for (const [name, get] of Object.entries(clients)) {
      const ips = await Promise.all([1, 2].map((i) => inScope(() => get(`/warm-${i}-${slug(name)}`))));
      expect(ips.map(ipOf), name).toEqual([OLD, OLD]);
    }
    // In flight: slow responses streaming on one connection of each.
    const inflight = Object.entries(clients).map(([name, get]) => ({ name, path: slow(slug(name)), get }));
    const running = inflight.map(({ path, get }) => inScope(() => get(path)));
    await until('every slow request to reach the server', () => inflight.every((f) => egressOf(s, f.path)));

    const to = await m.rotate('alice');
    const rotatedAt = Date.now();
    const tunnelsBefore = old.log.length;
    expect(to.port).toBe(next.port);

    // Started after rotate() returned: several per client, concurrently.
    const after = await Promise.allSettled(
      Object.entries(clients).flatMap(([name, get]) => [1, 2, 3].map((i) => inScope(() => get(`/after-${i}-${slug(name)}`)).then((b) => `${name} ${ipOf(b)}`))),
    );
    const outcomes = after.map((r) => (r.status === 'fulfilled' ? r.value : `error ${String(r.reason)}`));
    expect(outcomes).toEqual(Object.keys(clients).flatMap((name) => [1, 2, 3].map(() => `${name} ${NEW}`)));

    // The in-flight ones completed, on the old egress.
    const bodies = await Promise.allSettled(running);
    expect(bodies.map((b) => (b.status === 'fulfilled' ? b.value.length : String(b.reason)))).toEqual(inflight.map(() => 8 * 256));
    expect(inflight.map((f) => egressOf(s, f.path))).toEqual(inflight.map(() => OLD));

    // Every connection through the old proxy closes; none was opened after rotate().
    await until('the old proxy to have no connection left', () => old.openConnections() === 0);
    const drainMs = Date.now() - rotatedAt;
    expect(old.log.slice(tunnelsBefore)).toEqual([]);
    expect(echo.peers.filter((p) => p.at >= rotatedAt && p.ip !== NEW)).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ account: 'alice', reason: 'manual', closed: 0 });
    // Idle: the second connection of ccxt, fetch's pool, undici.Pool (the captured agent and the narrow pool have one, busy).
    expect(events[0].drained).toBeGreaterThanOrEqual(3);
    expect(events[0].draining).toBeGreaterThanOrEqual(inflight.length);
    console.info(`[drain] ${process.version}: old proxy's connections all closed ${drainMs} ms after rotate(); event ${JSON.stringify({ drained: events[0].drained, draining: events[0].draining })}`);
  });

  it('http2 — got (http2-wrapper), undici allowH2, grpc-js, a raw session: requests after rotate() succeed on the new egress (no GOAWAY error), in-flight streams finish', async () => {
    const s = await world();
    const { old, new: next } = s.proxies;
    const grpcServer = await startGrpc();
    cleanup.push(() => grpcServer.close());
    const { m } = install({ accounts: { alice: [old.url, next.url] } });
    const { echo } = s;
    const h2agent = new http2wrapper.Agent();
    const undiciH2 = new Agent({ allowH2: true, connect: { ca: echo.ca } });
    const grpc = m.withProxy('alice', () => new GrpcClient(grpcServer.target, grpcJs.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 })) as unknown as GrpcMethods & grpcJs.Client;
    const raw = m.withProxy('alice', () => http2.connect(echo.httpsUrl, { ca: echo.ca }));
    raw.on('error', () => undefined);
    cleanup.push(() => h2agent.destroy(), () => undiciH2.destroy().catch(() => undefined), () => grpc.close(), () => raw.destroy());
    const rawGet = (session: http2.ClientHttp2Session, path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path });
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => (body += d));
        stream.on('end', () => resolve(body));
        stream.on('error', reject);
      });
    const clients: Record<string, (path: string) => Promise<string>> = {
      'got http2': (path) => got(`${echo.httpsUrl}${path}`, { http2: true, agent: { http2: h2agent }, https: { certificateAuthority: echo.ca }, retry: { limit: 0 } }).text(),
      'undici allowH2': async (path) => (await undiciRequest(`${echo.httpsUrl}${path}`, { dispatcher: undiciH2 })).body.text(),
    };
    const grpcPeer = (): Promise<string> => new Promise((resolve, reject) => grpc.echo({}, (err, r) => (err ? reject(err) : resolve(ipOfPeer(r.peer)))));
    const inScope = <T>(fn: () => Promise<T>) => m.withProxy('alice', fn);
    const ipOf = (body: string): string => (JSON.parse(body) as { ip: string }).ip;

    for (const [name, get] of Object.entries(clients)) expect(ipOf(await inScope(() => get(`/warm-${slug(name)}`))), name).toBe(OLD);
    expect(await inScope(grpcPeer)).toBe(OLD);
    expect(ipOf(await inScope(() => rawGet(raw, '/warm-raw')))).toBe(OLD);
    expect(echo.peers.filter((p) => p.protocol === 'h2').length).toBeGreaterThanOrEqual(3);

    const inflight = [
      ...Object.entries(clients).map(([name, get]) => ({ path: slow(slug(name)), run: () => inScope(() => get(slow(slug(name)))) })),
      { path: slow('raw'), run: () => inScope(() => rawGet(raw, slow('raw'))) },
    ];
    const running = inflight.map((f) => f.run());
    // A grpc server stream on the channel's connection: in flight once its first message is in.
    let firstTick: () => void;
    const ticking = new Promise<void>((r) => (firstTick = r));
    const ticks = inScope(
      () =>
        new Promise<string[]>((resolve, reject) => {
          const peers: string[] = [];
          const call = grpc.ticks({});
          call.on('data', (m: Peer) => {
            peers.push(ipOfPeer(m.peer));
            firstTick();
          });
          call.on('end', () => resolve(peers));
          call.on('error', reject);
        }),
    );
    await ticking;
    await until('every slow stream to reach the server', () => inflight.every((f) => egressOf(s, f.path)));
    let goaway = false;
    raw.once('goaway', () => (goaway = true));

    await m.rotate('alice');
    const rotatedAt = Date.now();
    const tunnelsBefore = old.log.length;
    // The raw session is the app's own: it is closed as a server's GOAWAY would close it.
    expect(raw.closed).toBe(true);
    expect(goaway).toBe(true);

    const after = await Promise.allSettled([
      ...Object.entries(clients).flatMap(([name, get]) => [1, 2, 3].map((i) => inScope(() => get(`/after-${i}-${slug(name)}`)).then((b) => `${name} ${ipOf(b)}`))),
      ...[1, 2].map(() => inScope(grpcPeer).then((ip) => `grpc ${ip}`)),
      inScope(async () => {
        const session = http2.connect(echo.httpsUrl, { ca: echo.ca });
        try {
          return `raw ${ipOf(await rawGet(session, '/after-raw'))}`;
        } finally {
          session.close();
        }
      }),
    ]);
    expect(after.map((r) => (r.status === 'fulfilled' ? r.value : `error ${(r.reason as Error).message}`))).toEqual([
      ...Object.keys(clients).flatMap((name) => [1, 2, 3].map(() => `${name} ${NEW}`)),
      `grpc ${NEW}`,
      `grpc ${NEW}`,
      `raw ${NEW}`,
    ]);
    const bodies = await Promise.allSettled(running);
    expect(bodies.map((b) => (b.status === 'fulfilled' ? b.value.length : String(b.reason)))).toEqual(inflight.map(() => 8 * 256));
    expect(inflight.map((f) => egressOf(s, f.path))).toEqual(inflight.map(() => OLD));
    // The grpc stream went on to its end, on the old egress.
    expect(await ticks.catch((e: Error) => e.message)).toEqual(Array(8).fill(OLD));
    await until('the old proxy to have no connection left', () => old.openConnections() === 0);
    expect(old.log.slice(tunnelsBefore)).toEqual([]);
    expect(echo.peers.filter((p) => p.at >= rotatedAt && p.ip !== NEW)).toEqual([]);
  });

  it('a long response on a drained connection is cut after drainTimeout with DrainTimeoutError', async () => {
    const s = await world();
    const { old, new: next } = s.proxies;
    const drainTimeout = 300;
    const { m } = install({ accounts: { alice: [old.url, next.url] }, drainTimeout });
    const { echo } = s;
    const pool = new Pool(echo.httpUrl);
    const raw = m.withProxy('alice', () => http2.connect(echo.httpsUrl, { ca: echo.ca }));
    raw.on('error', () => undefined);
    cleanup.push(() => pool.destroy(), () => raw.destroy());
    // 200 × 50 ms: 10 s, far longer than drainTimeout.
    const long = slow('long', 200, 50);
    const consume = async (body: AsyncIterable<unknown>): Promise<string> => {
      for await (const _ of body) {
        // read it all
      }
      return 'completed';
    };
    const cutAfter: number[] = [];
    let rotatedAt = 0;
    const outcome = (p: Promise<string>): Promise<string> =>
      p.then(
        (v) => v,
        (err: unknown) => {
          cutAfter.push(Date.now() - rotatedAt);
          const typed = findSessionProxyError(err);
          return typed instanceof DrainTimeoutError ? `${typed.code} ${typed.account}` : `other ${String(err)}`;
        },
      );
    const downloads: Record<string, Promise<string>> = m.withProxy('alice', () => ({
      'undici.Pool (socket layer)': outcome(pool.request({ path: `${long}&c=pool`, method: 'GET' }).then((r) => consume(r.body))),
      'fetch (library pool)': outcome(fetch(`${echo.httpUrl}${long}&c=fetch`).then((r) => consume(r.body!))),
      'http2 stream': outcome(
        new Promise<string>((resolve, reject) => {
          const stream = m.withProxy('alice', () => raw.request({ ':path': `${long}&c=h2` }));
          stream.on('error', reject);
          consume(stream).then(resolve, reject);
        }),
      ),
    }));
    await until('every download to start', () => ['pool', 'fetch', 'h2'].every((c) => egressOf(s, `${long}&c=${c}`)));
    await m.rotate('alice');
    rotatedAt = Date.now();
    const outcomes: Record<string, string> = {};
    for (const [name, p] of Object.entries(downloads)) outcomes[name] = await p;
    expect(outcomes).toEqual({
      'undici.Pool (socket layer)': 'SP_ERR_DRAIN_TIMEOUT alice',
      'fetch (library pool)': 'SP_ERR_DRAIN_TIMEOUT alice',
      'http2 stream': 'SP_ERR_DRAIN_TIMEOUT alice',
    });
    console.info(`[drain] ${process.version}: drainTimeout ${drainTimeout} ms, long responses cut after ${cutAfter.join(', ')} ms`);
    expect(Math.min(...cutAfter)).toBeGreaterThanOrEqual(drainTimeout - 20);
    expect(Math.max(...cutAfter)).toBeLessThan(drainTimeout + 2_000);
    await until('the old proxy to have no connection left', () => old.openConnections() === 0);
    // The account goes on from the new egress.
    const r = await m.withProxy('alice', () => pool.request({ path: '/after', method: 'GET' }));
    expect(((await r.body.json()) as { ip: string }).ip).toBe(NEW);
  });
});

describe('rotate() with nowhere to go rejects, never stays silently', () => {
  it('a one-proxy pool, the others held by another account, the others down: ProxyUnavailableError naming the account and why', async () => {
    const s = await world();
    const { old, new: next } = s.proxies;
    const single = install({ accounts: { alice: old.url } }).m;
    const e1 = await single.rotate('alice').catch((e: Error) => e);
    expect(e1).toBeInstanceOf(ProxyUnavailableError);
    expect((e1 as ProxyUnavailableError).account).toBe('alice');
    expect((e1 as Error).message).toMatch(/cannot rotate: the pool has one proxy/);
    expect(single.current('alice').port).toBe(old.port);
    await single.uninstall();

    const held = install({ accounts: { alice: [old.url, next.url], bob: next.url } }).m;
    const e2 = await held.rotate('alice').catch((e: Error) => e);
    expect(e2).toBeInstanceOf(ProxyUnavailableError);
    expect((e2 as Error).message).toMatch(/no other proxy of the pool is available: .*held by "bob"/);
    expect((e2 as Error).message).toContain('account "alice"');
    await held.uninstall();

    const { m } = install({ accounts: { alice: [old.url, next.url], bob: next.url }, exclusive: false, health: { threshold: 1, cooldownMs: 60_000 } });
    const events: RotateEvent[] = [];
    m.on('rotate', (e) => events.push(e));
    await next.close();
    await m.withProxy('bob', () => fetch(`${s.echo.httpUrl}/down`)).catch(() => undefined);
    expect(m.stats().proxies.find((p) => p.proxy.port === next.port)!.status).toBe('cooldown');
    const e3 = await m.rotate('alice').catch((e: Error) => e);
    expect(e3).toBeInstanceOf(ProxyUnavailableError);
    expect((e3 as Error).message).toMatch(/no other proxy of the pool is available: .*\(cooldown, next probe in \d+ ms/);
    expect(m.current('alice').port).toBe(old.port);
    expect(events).toEqual([]);
  });
});

describe.skipIf(skipWithout('tinyproxy'))('with a real proxy daemon', () => {
  it('tinyproxy → mock: an app\'s undici.Pool busy on tinyproxy moves at rotate(); tinyproxy sees no new CONNECT', async () => {
    const s = await world();
    const tiny = await startTinyproxy({ egressIp: '127.0.0.4' });
    cleanup.push(() => tiny.close());
    const { m } = install({ accounts: { alice: [tiny.url, s.proxies.new.url] } });
    const pool = new Pool(s.echo.httpsUrl, { connect: { ca: s.echo.ca } });
    cleanup.push(() => pool.destroy());
    const get = (path: string) => m.withProxy('alice', async () => (await pool.request({ path, method: 'GET' })).body.text());
    expect((await Promise.all([get('/warm-1'), get('/warm-2')])).map((b) => JSON.parse(b).ip)).toEqual(['127.0.0.4', '127.0.0.4']);
    const running = get(slow('tiny'));
    await until('the slow request to reach the server', () => egressOf(s, slow('tiny')) !== undefined);
    const connects = (): number => tiny.log().split('\n').filter((l) => l.includes(`CONNECT 127.0.0.1:${s.echo.httpsPort}`)).length;
    await m.rotate('alice');
    const before = connects();
    const after = await Promise.all([1, 2, 3].map((i) => get(`/after-${i}`)));
    expect(after.map((b) => JSON.parse(b).ip)).toEqual([NEW, NEW, NEW]);
    expect((await running).length).toBe(8 * 256);
    expect(egressOf(s, slow('tiny'))).toBe('127.0.0.4');
    expect(before).toBeGreaterThanOrEqual(2);
    expect(connects()).toBe(before);
  });
});
