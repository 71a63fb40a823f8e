/**
 * Clients the HTTP layers never see — an app's own undici Agent/Pool/Client
 * (ccxt), http2.connect, grpc-js, got over HTTP/2, raw net/tls, a curl child —
 * still leave through the scope's proxy, via the socket layer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Pool } from 'undici';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { startGrpcEcho } from './grpc-echo.js';
import { socketClients } from '../support/socket-clients.js';

const EGRESS = { alice: '127.0.0.2', bob: '127.0.0.3' } as const;
type Who = keyof typeof EGRESS;

let echo: EchoServer;
let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
const proxies = {} as Record<Who, MockProxy>;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  grpcServer = await startGrpcEcho();
  proxies.alice = await startMockProxy({ egressIp: EGRESS.alice, auth: { username: 'alice', password: 'sock-Pw' } });
  proxies.bob = await startMockProxy({ egressIp: EGRESS.bob });
  manager = new SessionProxyManager({ accounts: { alice: proxies.alice.url, bob: proxies.bob.urlFor('socks5h') }, noProxy: [] }).install();
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo?.close(), grpcServer?.close(), proxies.alice?.close(), proxies.bob?.close()]);
});

describe('socket-level coverage', () => {
  it('every client leaves through its account\'s proxy, interleaved across two accounts', async () => {
    const peersBefore = echo.peers.length;
    const jobs: Array<Promise<{ who: Who; client: string; ip: string }>> = [];
    for (let round = 0; round < 2; round++) {
      for (const [name, client] of Object.entries(socketClients(echo, grpcServer.target))) {
        for (const who of ['alice', 'bob'] as const) {
          jobs.push(manager.withProxy(who, () => client()).then((ip) => ({ who, client: name, ip })));
        }
      }
    }
    const results = await Promise.all(jobs);
    expect(results.filter((r) => r.ip !== EGRESS[r.who])).toEqual([]);
    expect(echo.peers.slice(peersBefore).filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  });

  it('the proxies see no tunnel inside a tunnel: every CONNECT targets a server, never a proxy', () => {
    const proxyPorts = new Set([proxies.alice.port, proxies.bob.port]);
    for (const p of Object.values(proxies)) {
      expect(p.log.length).toBeGreaterThan(0);
      expect(p.log.filter((e) => proxyPorts.has(e.targetPort))).toEqual([]);
    }
  });

  it('one undici.Pool shared by both accounts: each reply is from the right egress (each account on connections of its own)', async () => {
    const shared = new Pool(echo.httpUrl, { connections: 1 });
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const who: Who = i % 2 ? 'bob' : 'alice';
      try {
        const r = await manager.withProxy(who, () => shared.request({ path: `/shared-${i}`, method: 'GET' }));
        const { ip } = (await r.body.json()) as { ip: string };
        outcomes.push(ip === EGRESS[who] ? 'right' : `WRONG ${who} got ${ip}`);
      } catch (err) {
        const typed = findSessionProxyError(err);
        outcomes.push(typed instanceof LeakBlockedError ? 'blocked' : `other error ${String(err)}`);
      }
    }
    await shared.destroy();
    // guard/undici-partition.ts: no refusal either (test/socket/shared-undici.test.ts covers the rest).
    expect(outcomes.filter((o) => o !== 'right')).toEqual([]);
  });

  it('concurrent requests of two accounts queued on one shared Client never leave from the other\'s IP', async () => {
    // A Client is one connection: it serves its first route (alice, i = 0) and
    // refuses every other route's request (guard/undici-partition.ts). Every
    // request blocked, or bob's served from alice's IP, must both fail here.
    const peersBefore = echo.peers.length;
    const requestsBefore = echo.requests.length;
    const bobLogBefore = proxies.bob.log.length;
    const shared = new Client(echo.httpUrl, { pipelining: 1 });
    const jobs = Array.from({ length: 12 }, (_, i) => {
      const who: Who = i % 2 ? 'bob' : 'alice';
      return manager
        .withProxy(who, () => shared.request({ path: `/queued-${i}`, method: 'GET' }))
        .then(async (r) => ({ who, i, ip: ((await r.body.json()) as { ip: string }).ip }))
        .catch((err: unknown) => ({ who, i, error: findSessionProxyError(err) ?? err }));
    });
    const outcomes = await Promise.all(jobs);
    await shared.destroy();
    const alice = outcomes.filter((o) => o.who === 'alice');
    const bob = outcomes.filter((o) => o.who === 'bob');
    // The home route: every request answered, from alice's egress.
    expect(alice.map((o) => ('ip' in o ? o.ip : String(o.error)))).toEqual(Array(6).fill(EGRESS.alice));
    // The other route: every request refused with the typed error (for bob), none answered.
    for (const o of bob) {
      expect('error' in o ? o.error : `answered from ${o.ip}`).toBeInstanceOf(LeakBlockedError);
      expect((o as { error: LeakBlockedError }).error.account).toBe('bob');
    }
    // What the echo server saw: alice's six requests and nothing else, none from another IP.
    const seen = echo.requests.slice(requestsBefore).filter((r) => r.path.startsWith('/queued-'));
    expect(seen.map((r) => r.path).sort()).toEqual([0, 2, 4, 6, 8, 10].map((i) => `/queued-${i}`).sort());
    expect(new Set(seen.map((r) => r.ip))).toEqual(new Set([EGRESS.alice]));
    // Refused before it reached the connection: alice's one connection was never torn down for bob.
    expect(echo.peers.slice(peersBefore).map((p) => p.ip)).toEqual([EGRESS.alice]);
    expect(new Set(seen.map((r) => r.port)).size).toBe(1);
    // Bob's proxy was never asked for the echo server.
    expect(proxies.bob.log.slice(bobLogBefore).filter((e) => e.targetPort === echo.httpPort)).toEqual([]);
  });
});
