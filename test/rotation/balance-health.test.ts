/** healthiest strategy, per-connection balance, periodic health checks. */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionProxyManager, type ProxyHealthEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy } from '../../src/testing/index.js';

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function proxies(egress: string[]) {
  const list = await Promise.all(egress.map((ip) => startMockProxy({ egressIp: ip })));
  cleanup.push(...list.map((p) => () => p.close()));
  return list;
}

describe('strategies and balance', () => {
  it('healthiest moves to the proxy with the lowest measured latency', async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    const [p0, slow, fast] = await proxies(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    slow.faults.latency(150);
    const m = new SessionProxyManager({ accounts: { alice: [p0.url, slow.url, fast.url] }, strategy: 'healthiest', noProxy: [], healthCheck: { interval: 50 } }).install();
    cleanup.push(() => m.uninstall());
    // Let the periodic probes measure every proxy (plain connects; slow's latency applies to handshakes only).
    // Measure tunnels directly: one request through each.
    for (let i = 0; i < 3; i++) {
      await m.withProxy('alice', async () => (await fetch(`${echo.httpUrl}/m`)).text());
      await m.rotate('alice');
    }
    // Now latencies are known for all three; from p0, healthiest picks the fastest other proxy.
    while (m.current('alice').port !== p0.port) await m.rotate('alice');
    const picked = await m.rotate('alice');
    expect(picked.port).toBe(fast.port);
  });

  it('balance: per-connection spreads new connections over the pool', async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    const list = await proxies(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const m = new SessionProxyManager({ accounts: { scraper: list.map((p) => p.url) }, balance: 'per-connection', noProxy: [] }).install();
    cleanup.push(() => m.uninstall());
    const ips = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const r = (await m.withProxy('scraper', async () => (await fetch(`${echo.httpUrl}/b${i}`, { headers: { connection: 'close' } })).json())) as { ip: string };
      ips.add(r.ip);
    }
    expect([...ips].sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
  });

  it('periodic health checks put a dead proxy into cooldown before any request fails, and the account fails over', async () => {
    const list = await proxies(['127.0.0.2', '127.0.0.3']);
    const m = new SessionProxyManager({ accounts: { alice: list.map((p) => p.url) }, healthCheck: { interval: 40, timeout: 500 }, health: { threshold: 1 } }).install();
    cleanup.push(() => m.uninstall());
    const downs: ProxyHealthEvent[] = [];
    m.on('proxy-down', (e) => downs.push(e));
    await list[0].close();
    const deadline = Date.now() + 3_000;
    while (!downs.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(downs[0]).toMatchObject({ proxy: { port: list[0].port }, accounts: ['alice'] });
    expect(m.current('alice').port).toBe(list[1].port);
  });
});
