/**
 * Health and failover on a gateway: a session whose exit fails while the
 * gateway answers gets a new session (failover by minting, the request
 * retried once before any byte left); a gateway that refuses is down for all
 * its sessions at once (health per gateway host) and its accounts fail over
 * to the rest of their pools; a known lifetime moves the account to a fresh
 * session shortly before the vendor would change its IP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyHealthEvent, RotateEvent } from '../../src/index.js';
import { startMockProxy } from '../../src/testing/index.js';
import { Cleanup, gatewayWorld, installed, nextEvent, roads } from './support.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('gateway failover', () => {
  it("a session that fails while the gateway works gets a new session; the gateway's health is untouched", async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'brightdata' });
    const gateway = { url: gw.urlFor('http', { username: 'brd-customer-C-zone-Z', password: 'pw' }), gateway: 'brightdata' as const };
    const { m, rotations } = installed(cleanup, { accounts: { alice: gateway, bob: gateway }, health: { threshold: 1 } });
    const send = roads(echo);
    const bobIp = await m.withProxy('bob', () => send('ws', 'bob-ws-0'));
    const first = await m.withProxy('alice', () => send('ws', 'alice-ws-0'));
    const dead = m.current('alice').session!;
    gw.failSession(dead);
    // The 502 comes before any byte of the request left: minted, then retried once on the new session.
    const ip = await m.withProxy('alice', () => send('ws', 'alice-ws-1'));
    const now = m.current('alice').session!;
    expect(now).not.toBe(dead);
    expect(rotations).toMatchObject([{ account: 'alice', reason: 'session-failed', from: { session: dead }, to: { session: now } }]);
    expect(ip).not.toBe(bobIp);
    expect(ip).not.toBe(first);
    expect(gw.log.filter((e) => e.session === dead && e.status === 'refused')).toHaveLength(1);
    expect(m.stats().proxies.every((p) => p.status === 'up')).toBe(true);
    expect(await m.withProxy('bob', () => send('ws', 'bob-ws-1'))).toBe(bobIp);
  });

  it('a gateway that refuses is down for all its sessions: one proxy-down naming every account on it, each fails over to its pool', async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'oxylabs' });
    const backupA = await startMockProxy({ egressIp: '127.0.0.30' });
    const backupB = await startMockProxy({ egressIp: '127.0.0.31' });
    cleanup.push(() => backupA.close(), () => backupB.close());
    const gateway = { url: gw.urlFor('http', { username: 'acme', password: 'pw' }), gateway: 'oxylabs' as const };
    const { m, rotations } = installed(cleanup, { accounts: { alice: [gateway, backupA.url], bob: [gateway, backupB.url] }, health: { threshold: 1, cooldownMs: 60_000 } });
    const send = roads(echo);
    const downs: ProxyHealthEvent[] = [];
    m.on('proxy-down', (e) => downs.push(e));
    expect(await m.withProxy('alice', () => send('ws', 'alice-ws-0'))).toMatch(/^127\.0\.0\.2\d$/);
    await gw.close();
    // alice's next connection is refused: the gateway (both sessions) goes down, alice's request is retried on her backup.
    expect(await m.withProxy('alice', () => send('ws', 'alice-ws-1'))).toBe('127.0.0.30');
    expect(downs).toHaveLength(1);
    expect(downs[0]!.accounts.sort()).toEqual(['alice', 'bob']);
    expect(downs[0]!.proxy.gateway).toBe('oxylabs');
    expect(rotations.map((r: RotateEvent) => [r.account, r.reason]).sort()).toEqual([['alice', 'failover'], ['bob', 'failover']]);
    // bob never touched the gateway after it went down: his first request goes to his backup.
    expect(await m.withProxy('bob', () => send('ws', 'bob-ws-0'))).toBe('127.0.0.31');
  });
});

describe('lifetime', () => {
  it('shortly before the vendor ends a session the account moves to a fresh one (rotate event, reason lifetime): the IP changes at the app\'s moment, never under a live session', async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'iproyal' });
    const gateway = { url: gw.urlFor('http', { username: 'acme', password: 'pw' }), gateway: 'iproyal' as const, lifetime: '2s' };
    const { m } = installed(cleanup, { accounts: { alice: gateway } });
    const send = roads(echo);
    const first = m.current('alice').session!;
    const renewed = nextEvent<RotateEvent>(m, 'rotate', 10_000, (e) => e.reason === 'lifetime');
    let done = false;
    void renewed.then(() => (done = true), () => (done = true));
    // Requests all along (bounded by the event's own timeout); each session must keep one address.
    const seen = new Map<string, Set<string>>();
    const started = Date.now();
    let i = 0;
    let afterwards = 0;
    while (afterwards < 3) {
      if (done) afterwards++;
      const session = m.current('alice').session!;
      // Mostly kept-alive fetches; every tenth request a new connection (ws).
      const ip = await m.withProxy('alice', () => send(i % 10 ? 'fetch' : 'ws', `alice-${i++}`));
      if (m.current('alice').session === session) (seen.get(session) ?? seen.set(session, new Set()).get(session)!).add(ip);
    }
    expect(seen.size).toBe(2);
    const event = await renewed;
    const movedAfterMs = Date.now() - started;
    expect(event).toMatchObject({ account: 'alice', reason: 'lifetime', from: { session: first } });
    expect(event.to.session).not.toBe(first);
    expect([...seen.values()].every((ips) => ips.size === 1)).toBe(true);
    // The vendor never moved a session while it was in use: every change was ours.
    expect(gw.sessions().every((s) => s.changes === 0)).toBe(true);
    expect(gw.session(first)!.requestedLifetimeMs).toBe(2_000);
    console.info(`[gateway lifetime] ${process.version}: lifetime 2 s, moved to a fresh session after ~${movedAfterMs} ms of traffic (${i} requests), drained ${event.drained}, draining ${event.draining}`);
  });
});
