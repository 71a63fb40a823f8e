/**
 * watchEgress through the mock gateway: a forced flip is reported within one
 * interval plus the probe's time; 'quarantine' lets nothing of the account
 * leave until the new IP is accepted or the account rotated; 'rotate' ends on
 * a new verified session; a collide (two sessions, one exit) is resolved by
 * a new session for one of the two — by the watch or by a verification.
 */
import diagnostics from 'node:diagnostics_channel';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EgressChangedError, findSessionProxyError, type EgressChangeEvent, type EgressEvent, type RotateEvent, type SessionProxyOptions } from '../../src/index.js';
import { EgressWatch } from '../../src/egress/watch.js';
import { Cleanup, gatewayWorld, installed, nextEvent, roads, until } from './support.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const INTERVAL = 300;

async function setup(watchEgress?: SessionProxyOptions['watchEgress']) {
  const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'brightdata' });
  const gateway = { url: gw.urlFor('http', { username: 'brd-customer-C-zone-Z', password: 'pw' }), gateway: 'brightdata' as const };
  const { m, rotations } = installed(cleanup, { accounts: { alice: gateway, bob: gateway }, egressEndpoints: [`${echo.httpUrl}/ip`], ...(watchEgress ? { watchEgress } : {}) });
  const send = roads(echo);
  // Both accounts active (traffic), both verified (the baseline).
  await m.withProxy('alice', () => send('fetch', 'alice-warm'));
  await m.withProxy('bob', () => send('fetch', 'bob-warm'));
  const [a, b] = await Promise.all([m.verifyEgress('alice'), m.verifyEgress('bob')]);
  return { echo, gw, m, rotations, send, aliceIp: a.ip, bobIp: b.ip, probeMs: Math.max(a.latencyMs, b.latencyMs) };
}

describe('watchEgress', () => {
  it("a forced flip is reported within one interval plus the probe's time, on the event and the channel", async () => {
    const { gw, m, aliceIp, probeMs } = await setup({ interval: INTERVAL, onChange: 'event' });
    const published: unknown[] = [];
    const onMessage = (e: unknown): void => void published.push(e);
    diagnostics.subscribe('session-proxy:egress-change', onMessage);
    cleanup.push(() => diagnostics.unsubscribe('session-proxy:egress-change', onMessage));
    const session = m.current('alice').session!;
    const changed = nextEvent<EgressChangeEvent>(m, 'egress-change', 5_000);
    const flippedAt = Date.now();
    const to = gw.flip(session);
    const event = await changed;
    const latency = Date.now() - flippedAt;
    expect(event).toMatchObject({ account: 'alice', from: aliceIp, to, proxy: { session }, action: 'event' });
    expect(event.sameIpAs).toBeUndefined();
    expect(published).toEqual([event]);
    expect(latency).toBeLessThanOrEqual(INTERVAL + probeMs + 150);
    // Reported once: later checks see the new IP as the baseline.
    const checks = m.stats().egressWatch.checks;
    await until('two more checks', () => m.stats().egressWatch.checks >= checks + 2);
    const st = m.stats().egressWatch;
    expect(st.changes).toBe(1);
    expect(st.bytesSent).toBeGreaterThan(0);
    expect(st.bytesReceived).toBeGreaterThan(0);
    console.info(`[watch] ${process.version}: flip reported after ${latency} ms (interval ${INTERVAL} ms, probe ~${probeMs} ms); watch used ${st.requests} requests, ${st.bytesSent} B sent, ${st.bytesReceived} B received`);
  });

  it('costs at most one small request per account per interval, each account on its own phase', async () => {
    const { m } = await setup({ interval: INTERVAL });
    const from = m.stats().egressWatch.requests;
    const started = Date.now();
    await until('some checks', () => m.stats().egressWatch.requests >= from + 6);
    const elapsed = Date.now() - started;
    const used = m.stats().egressWatch.requests - from;
    expect(used).toBeLessThanOrEqual(2 * (Math.floor(elapsed / INTERVAL) + 1));
    expect(m.stats().egressWatch.failures).toBe(0);
  });

  it("'quarantine': after the change nothing of the account leaves — not on new connections, not on kept-alive ones, not after a later check that succeeds — until it is accepted", async () => {
    const { echo, gw, m, send } = await setup({ interval: INTERVAL, onChange: 'quarantine' });
    // Kept-alive connections on two roads: global fetch's pool and ccxt's own Agent.
    await m.withProxy('alice', () => send('ccxt', 'alice-ccxt-warm'));
    const changed = nextEvent<EgressChangeEvent>(m, 'egress-change', 5_000);
    const to = gw.flip(m.current('alice').session!);
    expect(await changed).toMatchObject({ account: 'alice', to, action: 'quarantine' });
    const mark = echo.requests.length;
    for (const road of ['fetch', 'ccxt', 'http', 'ws'] as const) {
      const err = await m.withProxy('alice', () => send(road, `alice-${road}-blocked`)).then(() => undefined, (e: unknown) => findSessionProxyError(e) ?? e);
      expect(err, road).toBeInstanceOf(EgressChangedError);
    }
    const checks = m.stats().egressWatch.checks;
    await until('a later successful check', () => m.stats().egressWatch.checks >= checks + 2);
    await expect(m.withProxy('alice', () => send('fetch', 'alice-fetch-still-blocked'))).rejects.toThrow();
    // Only the watch's probes (/ip) reached the echo server since; none of alice's requests.
    expect(echo.requests.slice(mark).filter((r) => r.path !== '/ip').map((r) => r.path)).toEqual([]);
    // bob was never affected.
    await m.withProxy('bob', () => send('fetch', 'bob-fine'));
    // Accepted: the new IP is the normal now.
    expect((await m.verifyEgress('alice', { accept: true })).ip).toBe(to);
    expect(await m.withProxy('alice', () => send('fetch', 'alice-fetch-accepted'))).toBe(to);
  });

  it("'quarantine' is lifted by rotate() too: a new session", async () => {
    const { gw, m, send, bobIp } = await setup({ interval: INTERVAL, onChange: 'quarantine' });
    const old = m.current('alice').session!;
    const changed = nextEvent<EgressChangeEvent>(m, 'egress-change', 5_000);
    gw.flip(old);
    await changed;
    await expect(m.withProxy('alice', () => send('fetch', 'alice-blocked'))).rejects.toThrow();
    const to = await m.rotate('alice');
    expect(to.session).not.toBe(old);
    const ip = await m.withProxy('alice', () => send('fetch', 'alice-after-rotate'));
    expect(ip).not.toBe(bobIp);
  });

  it("'rotate': the account ends on a new, verified session", async () => {
    const { gw, m, bobIp, send } = await setup({ interval: INTERVAL, onChange: 'rotate' });
    const old = m.current('alice').session!;
    const rotated = nextEvent<RotateEvent>(m, 'rotate', 5_000, (e) => e.account === 'alice');
    const verified = nextEvent<EgressEvent>(m, 'egress', 5_000, (e) => e.account === 'alice' && e.status === 'verified' && e.proxy.session !== old);
    gw.flip(old);
    expect(await rotated).toMatchObject({ account: 'alice', reason: 'egress-change', from: { session: old } });
    const ok = await verified;
    expect(ok.proxy.session).toBe(m.current('alice').session);
    expect(await m.withProxy('alice', () => send('fetch', 'alice-after'))).toBe((ok as { ip: string }).ip);
    expect((ok as { ip: string }).ip).not.toBe(bobIp);
  });

  it('a collide found by the watch: the event names the other account (sameIpAs), one of the two gets a new session, verified', async () => {
    const { gw, m, send, aliceIp } = await setup({ interval: INTERVAL, onChange: 'event' });
    const alice = m.current('alice').session!;
    const bob = m.current('bob').session!;
    const shared = nextEvent<EgressChangeEvent>(m, 'egress-change', 5_000, (e) => (e.sameIpAs?.length ?? 0) > 0);
    const renewed = nextEvent<RotateEvent>(m, 'rotate', 5_000, (e) => e.reason === 'same-ip');
    gw.collide(alice, bob);
    const event = await shared;
    const other = event.account === 'bob' ? 'alice' : 'bob';
    expect(event).toMatchObject({ to: aliceIp, sameIpAs: [other], action: 'new-session' });
    expect(await renewed).toMatchObject({ account: event.account });
    await until('the re-verification', () => m.current(event.account).session !== (event.account === 'bob' ? bob : alice));
    const [a, b] = [await m.withProxy('alice', () => send('fetch', 'alice-x')), await m.withProxy('bob', () => send('fetch', 'bob-x'))];
    expect(a).not.toBe(b);
  });
});

describe('verification', () => {
  it('verifyAll finds two accounts on one IP and gives one of them a new session, verified again (watch off)', async () => {
    const { gw, m } = await setup();
    gw.collide(m.current('alice').session!, m.current('bob').session!);
    const bob = m.current('bob').session!;
    const events: EgressChangeEvent[] = [];
    m.on('egress-change', (e) => events.push(e));
    const alice = m.current('alice').session!;
    const rotations: RotateEvent[] = [];
    m.on('rotate', (e) => rotations.push(e));
    const rows = await m.verifyAll();
    expect(rows.every((r) => r.ok)).toBe(true);
    expect(new Set(rows.map((r) => r.ip)).size).toBe(2);
    expect(events.filter((e) => e.sameIpAs)).toHaveLength(1);
    expect(rotations).toHaveLength(1);
    expect(rotations[0]).toMatchObject({ reason: 'same-ip' });
    // Exactly one of the two has a new session; the rows show the sessions they now have.
    expect([m.current('alice').session !== alice, m.current('bob').session !== bob].filter(Boolean)).toHaveLength(1);
    expect(rows.map((r) => r.proxy.session)).toEqual([m.current('alice').session, m.current('bob').session]);
    expect(m.stats().egressWatch.requests).toBe(0); // the watch is off by default
  });
});

describe('EgressWatch scheduling', () => {
  it('puts each account on its own phase within the first interval, then one check per interval', async () => {
    vi.useFakeTimers();
    try {
      const ticks: Array<[string, number]> = [];
      const phases = [0.1, 0.5, 0.9];
      let n = 0;
      const w = new EgressWatch({ interval: 1_000 }, { identity: () => 'id', check: async (a) => void ticks.push([a, Date.now()]) }, () => phases[n++ % 3]!);
      const t0 = Date.now();
      for (const a of ['a', 'b', 'c']) w.touch(a);
      w.start();
      await vi.advanceTimersByTimeAsync(2_950);
      w.stop();
      expect(ticks.map(([a, t]) => [a, t - t0])).toEqual([
        ['a', 100], ['b', 500], ['c', 900],
        ['a', 1_100], ['b', 1_500], ['c', 1_900],
        ['a', 2_100], ['b', 2_500], ['c', 2_900],
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});
