/**
 * Failover: kill the active proxy of an account under load; the account
 * moves to the next proxy, never direct, never through another account's.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SessionProxyManager, ProxyConnectError, ProxyUnavailableError, ConfigError, findSessionProxyError, type RotateEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function world(egress: string[], options: ConstructorParameters<typeof SessionProxyManager>[0] = {}) {
  const echo = await startEchoServer();
  const proxies = await Promise.all(egress.map((ip) => startMockProxy({ egressIp: ip })));
  cleanup.push(() => echo.close(), ...proxies.map((p) => () => p.close()));
  return { echo, proxies };
}

const ipVia = async (m: SessionProxyManager, account: string, url: string): Promise<string> =>
  m.withProxy(account, async () => ((await (await fetch(url)).json()) as { ip: string }).ip);

describe('failover', () => {
  it('kills the active proxy under steady load: later requests succeed on the next proxy, failures are typed, nothing goes direct or via another account', async () => {
    const { echo, proxies } = await world(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const [a1, a2, other] = proxies;
    const m = new SessionProxyManager({ accounts: { alice: [a1.url, a2.url], bob: other.url }, noProxy: [], health: { threshold: 2, cooldownMs: 60_000 } }).install();
    cleanup.push(() => m.uninstall());
    const rotations: RotateEvent[] = [];
    m.on('rotate', (e) => rotations.push(e));
    expect(await ipVia(m, 'alice', `${echo.httpUrl}/warm`)).toBe('127.0.0.2');

    const outcomes: string[] = [];
    const waves = 6;
    for (let wave = 0; wave < waves; wave++) {
      if (wave === 2) await a1.close();
      const batch = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => ipVia(m, 'alice', `${echo.httpUrl}/load-${wave}-${i}`)));
      for (const r of batch) {
        if (r.status === 'fulfilled') outcomes.push(r.value);
        else outcomes.push(findSessionProxyError(r.reason) instanceof ProxyConnectError ? 'typed-error' : `untyped ${String(r.reason)}`);
      }
    }
    expect(outcomes.filter((o) => o.startsWith('untyped'))).toEqual([]);
    expect(outcomes.filter((o) => o === '127.0.0.1' || o === '127.0.0.4')).toEqual([]);
    // The last wave runs entirely on the second proxy.
    expect(outcomes.slice(-8)).toEqual(Array(8).fill('127.0.0.3'));
    expect(rotations).toMatchObject([{ account: 'alice', reason: 'failover' }]);
    expect(m.current('alice').port).toBe(a2.port);
    expect(echo.peers.filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  });

  it('a whole pool down fails fast with ProxyUnavailableError naming the proxies and the next probe', async () => {
    const { echo, proxies } = await world(['127.0.0.2', '127.0.0.3']);
    const m = new SessionProxyManager({ accounts: { alice: proxies.map((p) => p.url) }, noProxy: [], health: { threshold: 1, cooldownMs: 60_000 } }).install();
    cleanup.push(() => m.uninstall());
    await Promise.all(proxies.map((p) => p.close()));
    for (let i = 0; i < 3; i++) await ipVia(m, 'alice', `${echo.httpUrl}/x`).catch(() => undefined);
    const started = Date.now();
    const err = await ipVia(m, 'alice', `${echo.httpUrl}/x`).then(() => undefined, (e: unknown) => findSessionProxyError(e));
    expect(err).toBeInstanceOf(ProxyUnavailableError);
    expect(err!.message).toMatch(/every proxy of the pool is down/);
    expect(err!.message).toMatch(/next probe in \d+ ms/);
    expect(err!.message).toContain(`127.0.0.1:${proxies[0].port}`);
    expect(Date.now() - started).toBeLessThan(200);
    expect(echo.peers).toEqual([]);
  });

  it('cooldown, then probe-before-reuse: a recovered proxy is used again only after its probe', async () => {
    const { echo, proxies } = await world(['127.0.0.2', '127.0.0.3']);
    const [p1, p2] = proxies;
    const m = new SessionProxyManager({ accounts: { alice: [p1.url, p2.url] }, noProxy: [], health: { threshold: 1, cooldownMs: 300 } }).install();
    cleanup.push(() => m.uninstall());
    const ups: string[] = [];
    const downs: string[] = [];
    m.on('proxy-up', (e) => ups.push(String(e.proxy.port)));
    m.on('proxy-down', (e) => downs.push(String(e.proxy.port)));
    p1.faults.refuseNext(1);
    // The refused tunnel is retried once on the next proxy (no byte had left).
    expect(await ipVia(m, 'alice', `${echo.httpUrl}/a`)).toBe('127.0.0.3');
    expect(downs).toEqual([String(p1.port)]);
    expect(m.stats().proxies.find((p) => p.proxy.port === p1.port)!.status).toBe('cooldown');
    await new Promise((r) => setTimeout(r, 600));
    expect(ups).toEqual([String(p1.port)]);
    expect(m.stats().proxies.find((p) => p.proxy.port === p1.port)!.status).toBe('up');
    // The account stays sticky on p2 until something moves it.
    expect(await ipVia(m, 'alice', `${echo.httpUrl}/b`)).toBe('127.0.0.3');
  });
});

describe('rotation', () => {
  it('requests started after rotate() use the new egress; closeExisting closes ws connections, which reconnect through the new proxy', async () => {
    const { echo, proxies } = await world(['127.0.0.2', '127.0.0.3']);
    const m = new SessionProxyManager({ accounts: { alice: proxies.map((p) => p.url) }, noProxy: [] }).install();
    cleanup.push(() => m.uninstall());
    const ws = await m.withProxy('alice', () => new Promise<WebSocket>((resolve, reject) => {
      const s = new WebSocket(echo.wsUrl);
      s.once('open', () => resolve(s));
      s.once('error', reject);
    }));
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    const inflight = Array.from({ length: 10 }, (_, i) => ipVia(m, 'alice', `${echo.httpUrl}/before-${i}`));
    const info = await m.rotate('alice', { closeExisting: true });
    expect(info.port).toBe(proxies[1].port);
    const after = await Promise.all(Array.from({ length: 10 }, (_, i) => ipVia(m, 'alice', `${echo.httpUrl}/after-${i}`)));
    expect(after).toEqual(Array(10).fill('127.0.0.3'));
    await Promise.allSettled(inflight);
    await closed;
    const reconnected = await m.withProxy('alice', () => new Promise<{ ip: string }>((resolve, reject) => {
      const s = new WebSocket(echo.wsUrl);
      s.once('open', () => s.send('x'));
      s.once('message', (d) => { resolve(JSON.parse(String(d))); s.close(); });
      s.once('error', reject);
    }));
    expect(reconnected.ip).toBe('127.0.0.3');
  });

  it('strategies pick in their documented order', async () => {
    const { proxies } = await world(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
    const urls = proxies.map((p) => p.url);
    const order = async (strategy: 'round-robin' | 'least-used'): Promise<number[]> => {
      const m = new SessionProxyManager({ accounts: { alice: urls }, strategy }).install();
      const seen: number[] = [];
      try {
        for (let i = 0; i < 4; i++) seen.push((await m.rotate('alice')).port);
      } finally {
        await m.uninstall();
      }
      return seen.map((port) => proxies.findIndex((p) => p.port === port));
    };
    expect(await order('round-robin')).toEqual([1, 2, 3, 0]);
    const m = new SessionProxyManager({ accounts: { alice: urls }, strategy: 'random' }).install();
    cleanup.push(() => m.uninstall());
    for (let i = 0; i < 10; i++) {
      const before = m.current('alice').port;
      expect((await m.rotate('alice')).port).not.toBe(before);
    }
  });

  it('least-used under skew prefers the proxy no other account holds and with fewest requests', async () => {
    const { echo, proxies } = await world(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const [p0, p1, p2] = proxies;
    const m = new SessionProxyManager({ accounts: { alice: [p0.url, p1.url, p2.url] }, strategy: 'least-used', exclusive: false, noProxy: [] }).install();
    cleanup.push(() => m.uninstall());
    // Skew: p1 carries many requests (via rotate there and back).
    await m.rotate('alice');
    for (let i = 0; i < 5; i++) await ipVia(m, 'alice', `${echo.httpUrl}/skew`);
    await m.rotate('alice'); // from p1 → least used of {p0, p2}: both 0 requests; p2 comes first in order after p1
    expect(m.current('alice').port).toBe(p2.port);
    await m.rotate('alice'); // from p2 → p0 (0 requests) beats p1 (5)
    expect(m.current('alice').port).toBe(p0.port);
  });

  it('exclusivity: a configuration forcing two accounts onto one proxy fails with ConfigError naming them', async () => {
    const { proxies } = await world(['127.0.0.2', '127.0.0.3']);
    expect(() => new SessionProxyManager({ accounts: { alice: proxies[0].url, bob: proxies[0].url } })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ accounts: { alice: proxies[0].url, bob: proxies[0].url } })).toThrow(/"bob" and "alice"/);
    // Pools that overlap are fine: each account gets a proxy of its own, and rotation skips the other's.
    const m = new SessionProxyManager({ accounts: { alice: [proxies[0].url, proxies[1].url], bob: [proxies[0].url, proxies[1].url] } }).install();
    cleanup.push(() => m.uninstall());
    expect(m.current('alice').port).not.toBe(m.current('bob').port);
    await expect(m.rotate('alice')).rejects.toThrow(ProxyUnavailableError);
  });
});

describe('retry safety', () => {
  it('never replays a request whose bytes may have reached the target; retries once only before the first byte', async () => {
    let hits = 0;
    const target = http.createServer((req, res) => {
      hits++;
      req.socket.destroy(); // the order "reached" the exchange, then the connection died
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise((r) => target.close(r)));
    const { proxies } = await world(['127.0.0.2', '127.0.0.3']);
    const m = new SessionProxyManager({ accounts: { alice: proxies.map((p) => p.url) }, noProxy: [] }).install();
    cleanup.push(() => m.uninstall());
    const url = `http://127.0.0.1:${(target.address() as { port: number }).port}/order`;
    const r = await m.withProxy('alice', () => fetch(url, { method: 'POST', body: 'buy' })).then(() => 'ok', () => 'failed');
    expect(r).toBe('failed');
    expect(hits).toBe(1);
  });
});
