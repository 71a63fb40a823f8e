/**
 * The routing proofs again, against real proxy servers from Debian, each
 * binding its upstream side to its own loopback address: tinyproxy with
 * Basic auth (alice), microsocks with user/pass (bob), squid (the default).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startEchoServer, testCa, type EchoServer } from '../../src/testing/index.js';
import { skipWithout, startMicrosocks, startSquid, startTinyproxy, type RealProxy } from '../support/real-proxies.js';
import { httpClients } from '../support/http-clients.js';
import { socketClients } from '../support/socket-clients.js';
import { httpsGetJson, sequentialPeers, tick } from '../support/scenario.js';
import { startGrpcEcho } from '../socket/grpc-echo.js';

const EGRESS = { alice: '127.0.0.21', bob: '127.0.0.22', default: '127.0.0.23' } as const;
type Who = keyof typeof EGRESS;

describe.skipIf(skipWithout('tinyproxy', 'microsocks', 'squid', 'curl'))('real proxies: tinyproxy (Basic auth), microsocks (user/pass), squid', () => {
  let echo: EchoServer;
  let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
  const proxies = {} as Record<Who, RealProxy>;
  let manager: SessionProxyManager;

  beforeAll(async () => {
    echo = await startEchoServer({ http2: true });
    grpcServer = await startGrpcEcho();
    [proxies.alice, proxies.bob, proxies.default] = await Promise.all([
      startTinyproxy({ egressIp: EGRESS.alice, auth: { username: 'alice', password: 'tiny-Pw-1' } }),
      startMicrosocks({ egressIp: EGRESS.bob, auth: { username: 'bob', password: 'socks-Pw-2' } }),
      startSquid({ egressIp: EGRESS.default }),
    ]);
    manager = new SessionProxyManager({
      proxy: proxies.default.url,
      accounts: { alice: proxies.alice.url, bob: proxies.bob.url },
      noProxy: [],
      requestTls: { ca: testCa },
    }).install();
  }, 30_000);

  afterAll(async () => {
    await manager?.uninstall();
    await Promise.all([echo?.close(), grpcServer?.close(), ...Object.values(proxies).map((p) => p?.close())]);
  }, 30_000);

  it('200+ interleaved requests over every HTTP road leave from their account\'s proxy; outside scopes from the default', async () => {
    const peersBefore = echo.peers.length;
    const all = httpClients(echo);
    const jobs: Array<Promise<{ who: Who; client: string; ip: string }>> = [];
    const rounds = Math.ceil(210 / (Object.keys(all).length * 3));
    for (let round = 0; round < rounds; round++) {
      for (const [name, client] of Object.entries(all)) {
        for (const who of ['alice', 'bob', 'default'] as const) {
          const job = who === 'default' ? client() : manager.withProxy(who, client);
          jobs.push(job.then((r) => ({ who, client: name, ip: r.ip })));
        }
      }
    }
    expect(jobs.length).toBeGreaterThanOrEqual(200);
    const results = await Promise.all(jobs);
    expect(results.filter((r) => r.ip !== EGRESS[r.who])).toEqual([]);
    expect(echo.peers.slice(peersBefore).filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  }, 60_000);

  it('socket-level clients (ccxt, undici pools, http2, grpc, got h2, raw net/tls, curl child) too', async () => {
    const peersBefore = echo.peers.length;
    const jobs: Array<Promise<{ who: Who; client: string; ip: string }>> = [];
    for (const [name, client] of Object.entries(socketClients(echo, grpcServer.target))) {
      for (const who of ['alice', 'bob'] as const) jobs.push(manager.withProxy(who, client).then((ip) => ({ who, client: name, ip })));
    }
    const results = await Promise.all(jobs);
    expect(results.filter((r) => r.ip !== EGRESS[r.who])).toEqual([]);
    expect(echo.peers.slice(peersBefore).filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  }, 60_000);

  it('keep-alive through the real proxies: 20 sequential HTTPS requests use one tunnel (fetch via tinyproxy, https.get via microsocks)', async () => {
    // A fresh manager: pools with no sockets left from the concurrent tests.
    await manager.uninstall();
    manager = new SessionProxyManager({ accounts: { alice: proxies.alice.url, bob: proxies.bob.url }, noProxy: [], requestTls: { ca: testCa } }).install();
    const viaFetch = await sequentialPeers(20, () =>
      manager.withProxy('alice', async () => (await fetch(`${echo.httpsUrl}/ka`)).json() as Promise<{ ip: string; port: number }>),
    );
    expect(viaFetch.ips).toEqual(new Set([EGRESS.alice]));
    expect(viaFetch.ports.size).toBe(1);
    const viaGet = await sequentialPeers(20, () => manager.withProxy('bob', () => httpsGetJson(`${echo.httpsUrl}/ka2`, testCa)));
    expect(viaGet.ips).toEqual(new Set([EGRESS.bob]));
    expect(viaGet.ports.size).toBe(1);
  }, 60_000);

  it('bytes in the stats match what the echo server exchanged, within the framing overhead', async () => {
    const before = manager.stats().accounts.find((a) => a.account === 'alice')!;
    const size = 64 * 1024;
    const body = 'x'.repeat(size);
    const r = await manager.withProxy('alice', async () => (await fetch(`${echo.httpsUrl}/upload`, { method: 'POST', body })).json() as Promise<{ body: string }>);
    expect(r.body.length).toBe(size);
    await tick();
    const after = manager.stats().accounts.find((a) => a.account === 'alice')!;
    const sent = after.bytesSent - before.bytesSent;
    const received = after.bytesReceived - before.bytesReceived;
    // The upload went out once; the echo sent it back once inside its JSON reply.
    expect(sent).toBeGreaterThanOrEqual(size);
    expect(sent).toBeLessThan(size * 1.1 + 4096);
    expect(received).toBeGreaterThanOrEqual(size);
    expect(received).toBeLessThan(size * 1.1 + 4096);
  }, 30_000);
});
