/**
 * A proxy goes down while every other proxy of the account's pool is held by
 * another account: the fleet's failover finds nowhere free. When one comes
 * free (released, then past its quarantine), the account's next request
 * moves it there — it does not stay on the dead proxy until its cooldown ends.
 * (The in-process store, `memory:`: the same protocol as Redis.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionProxyManager, type RotateEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy } from '../../src/testing/index.js';
import { until } from './support.js';

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('fleet failover when nowhere is free', () => {
  it('moves the account as soon as a proxy comes free, not after the cooldown', async () => {
    const echo = await startEchoServer();
    const p1 = await startMockProxy({ egressIp: '127.0.0.81' });
    const p2 = await startMockProxy({ egressIp: '127.0.0.82' });
    cleanup.push(() => echo.close(), () => p1.close(), () => p2.close());
    const m = new SessionProxyManager({
      accounts: { alice: [p1.url, p2.url], bob: [p2.url] },
      store: { url: 'memory:', leaseTtl: 500 },
      noProxy: [],
      failover: true,
      health: { threshold: 1, cooldownMs: 60_000, maxCooldownMs: 60_000 },
    }).install();
    cleanup.push(() => m.uninstall());
    const moves: RotateEvent[] = [];
    m.on('rotate', (e) => moves.push(e));
    const ip = (account: 'alice' | 'bob'): Promise<string> => m.withProxy(account, () => fetch(`${echo.httpUrl}/${account}`)).then(async (r) => ((await r.json()) as { ip: string }).ip);
    expect(await ip('alice')).toBe('127.0.0.81');
    expect(await ip('bob')).toBe('127.0.0.82');

    await p1.close();
    await expect(ip('alice')).rejects.toThrow();
    expect(moves.filter((e) => e.account === 'alice')).toEqual([]); // nowhere free: bob holds p2
    const freed = performance.now();
    await m.removeAccount('bob'); // p2 released: free for alice after TTL + margin (600 ms)
    const served = await until(() => ip('alice').catch(() => undefined), 5000, 'alice served again');
    expect(served).toBe('127.0.0.82');
    expect(moves.filter((e) => e.account === 'alice').map((e) => e.reason)).toEqual(['failover']);
    console.log(`[fleet] failover retried: alice on p2 ${Math.round(performance.now() - freed)} ms after bob released it (quarantine 600 ms, cooldown 60 s)`);
  }, 20_000);
});
