/**
 * The lease protocol, operation by operation, against both stores: the
 * in-process MemoryStore (a fake clock) and RedisStore on a real
 * redis-server (the scripts, the server's clock). The same expectations for
 * both: they are one protocol.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import type { Candidate, FleetStore } from '../../src/store/types.js';
import { noRedis, startRedis, type RedisServer } from '../support/redis-server.js';

const ttl = 600;
const margin = 120;
const cand = (...keys: string[]): Candidate[] => keys.map((key) => ({ key, url: `http://user:***@${key}.example:8080` }));

interface World {
  store: FleetStore;
  /** Lets store time pass. */
  pass(ms: number): Promise<void>;
  wipe(): Promise<void>;
}

function suite(name: string, make: () => Promise<World>, skip = false): void {
  describe.skipIf(skip)(`lease protocol: ${name}`, () => {
    let w: World;
    let epoch = '';
    const base = (instance: string) => ({ instance, ttl, margin, epoch, newEpoch: randomUUID() });
    beforeAll(async () => {
      w = await make();
    });
    afterAll(async () => {
      await w?.store.close();
    });

    /** A fresh store settles for TTL + margin before the first lease. */
    async function settled(): Promise<void> {
      await w.wipe();
      const first = await w.store.acquire({ ...base('i1'), account: 'probe', exclusive: true, candidates: cand('zz') });
      expect(first.status).toBe('settling');
      if (first.status !== 'settling') return;
      expect(first.retryIn).toBeGreaterThan(ttl);
      expect(first.retryIn).toBeLessThanOrEqual(ttl + margin);
      epoch = first.epoch;
      await w.pass(first.retryIn + 10);
    }

    it('exclusive: two accounts never get one proxy; sticky after a release; quarantine before another account', async () => {
      await settled();
      const a = await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2') });
      const b = await w.store.acquire({ ...base('i2'), account: 'bob', exclusive: true, candidates: cand('p1', 'p2') });
      expect(a).toMatchObject({ status: 'ok', proxy: 'p1', ver: 1, state: 'ready' });
      expect(b).toMatchObject({ status: 'ok', proxy: 'p2' });
      const c = await w.store.acquire({ ...base('i3'), account: 'carol', exclusive: true, candidates: cand('p1', 'p2') });
      expect(c.status).toBe('none');
      // A second instance of alice joins her proxy, whatever its own order says.
      const a2 = await w.store.acquire({ ...base('i2'), account: 'alice', exclusive: true, candidates: cand('p2', 'p1') });
      expect(a2).toMatchObject({ status: 'ok', proxy: 'p1', ver: 1 });
      await w.store.release({ ...base('i1'), account: 'alice', exclusive: true });
      await w.store.release({ ...base('i2'), account: 'alice', exclusive: true });
      // Released: carol may not take p1 before TTL + margin …
      expect((await w.store.acquire({ ...base('i3'), account: 'carol', exclusive: true, candidates: cand('p1') })).status).toBe('none');
      // … but alice, restarted (a new instance), gets it back at once.
      expect(await w.store.acquire({ ...base('i9'), account: 'alice', exclusive: true, candidates: cand('p2', 'p1') })).toMatchObject({ status: 'ok', proxy: 'p1', ver: 1 });
      await w.store.release({ ...base('i9'), account: 'alice', exclusive: true });
      await w.pass(ttl + margin + 20);
      expect(await w.store.acquire({ ...base('i3'), account: 'carol', exclusive: true, candidates: cand('p1') })).toMatchObject({ status: 'ok', proxy: 'p1' });
    });

    it('a move is a barrier: open until every holder acknowledged it; a stale move adopts the winner', async () => {
      await settled();
      await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2', 'p3') });
      await w.store.acquire({ ...base('i2'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2', 'p3') });
      const moved = await w.store.move({ ...base('i1'), account: 'alice', exclusive: true, fromVer: 1, reason: 'manual', candidates: cand('p2', 'p3') });
      expect(moved).toMatchObject({ status: 'ok', proxy: 'p2', ver: 2, state: 'moving' });
      const stale = await w.store.move({ ...base('i2'), account: 'alice', exclusive: true, fromVer: 1, reason: 'failover', candidates: cand('p3') });
      expect(stale).toMatchObject({ status: 'stale', proxy: 'p2', ver: 2 });
      let r = await w.store.renew({ ...base('i2'), exclusive: true, accounts: [{ account: 'alice', ack: 1 }] });
      expect(r.status === 'ok' && r.accounts[0]).toMatchObject({ held: true, proxy: 'p2', ver: 2, state: 'moving' });
      r = await w.store.renew({ ...base('i2'), exclusive: true, accounts: [{ account: 'alice', ack: 2 }] });
      expect(r.status === 'ok' && r.accounts[0]).toMatchObject({ held: true, state: 'ready' });
      // p1 is quarantined for other accounts after the move.
      expect((await w.store.acquire({ ...base('i3'), account: 'bob', exclusive: true, candidates: cand('p1') })).status).toBe('none');
    });

    it('a barrier closes after the TTL even if a holder never acknowledges (its lease ran out)', async () => {
      await settled();
      await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2') });
      await w.store.acquire({ ...base('i2'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2') });
      await w.store.move({ ...base('i1'), account: 'alice', exclusive: true, fromVer: 1, reason: 'manual', candidates: cand('p2') });
      await w.pass(ttl + 10);
      const r = await w.store.renew({ ...base('i1'), exclusive: true, accounts: [{ account: 'alice', ack: 2 }] });
      // i1's own lease ran out too (no renewal in between): it is told so.
      expect(r.status === 'ok' && r.accounts[0]).toMatchObject({ held: false });
      const again = await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2') });
      expect(again).toMatchObject({ status: 'ok', proxy: 'p2', state: 'ready' });
    });

    it('a lease not renewed within the TTL is gone; a move only picks proxies every holder’s pool has', async () => {
      await settled();
      await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2', 'p3') });
      await w.store.acquire({ ...base('i2'), account: 'alice', exclusive: true, candidates: cand('p1', 'p3') });
      const m = await w.store.move({ ...base('i1'), account: 'alice', exclusive: true, fromVer: 1, reason: 'manual', candidates: cand('p2', 'p3') });
      expect(m).toMatchObject({ status: 'ok', proxy: 'p3' });
      await w.pass(ttl + 10);
      const r = await w.store.renew({ ...base('i2'), exclusive: true, accounts: [{ account: 'alice', ack: 2 }] });
      expect(r.status === 'ok' && r.accounts[0]).toMatchObject({ account: 'alice', held: false });
    });

    it('an emptied store is a new epoch: renewals say so, acquisitions wait TTL + margin', async () => {
      await settled();
      await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1') });
      await w.wipe();
      const r = await w.store.renew({ ...base('i1'), exclusive: true, accounts: [{ account: 'alice', ack: 1 }] });
      expect(r.status).toBe('epoch');
      expect(r.epoch).not.toBe(epoch);
      const a = await w.store.acquire({ ...base('i2'), account: 'bob', exclusive: true, candidates: cand('p1') });
      expect(a.status).toBe('settling');
    });

    it('health: a cooldown for the fleet, one probe holder, up again', async () => {
      await settled();
      await w.store.down('p1', 5000, 'refused');
      let h = await w.store.health(['p1', 'p2']);
      expect(h.proxies.p1!.down - h.now).toBeGreaterThan(4000);
      expect(h.proxies.p1!.error).toBe('refused');
      expect(h.proxies.p2).toBeUndefined();
      expect((await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1', 'p2') })).status === 'ok' && true).toBe(true);
      expect(await w.store.claimProbe('p1', 'i1', 1000)).toBe(true);
      expect(await w.store.claimProbe('p1', 'i2', 1000)).toBe(false);
      await w.store.up('p1');
      h = await w.store.health(['p1']);
      expect(h.proxies.p1!.down).toBe(0);
      expect(await w.store.claimProbe('p1', 'i2', 1000)).toBe(true);
      const poll = await w.store.poll();
      expect(poll.hv).toBeGreaterThanOrEqual(2);
    });

    it('gateway sessions: one per account on a shared slot, the same for every instance and after a restart; a move mints the next', async () => {
      await settled();
      const gw = (id: string, minted = 1): Candidate => ({ key: 'g1', url: 'http://user-country-us:***@gw.example:7000', session: { id, minted } });
      // Two accounts on one gateway slot: no ownership, each keeps the session it proposed.
      const a1 = await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: [gw('sa', 11)] });
      const b1 = await w.store.acquire({ ...base('i2'), account: 'bob', exclusive: true, candidates: [gw('sb', 12)] });
      expect(a1).toMatchObject({ status: 'ok', proxy: 'g1', ver: 1, session: { id: 'sa', minted: 11 } });
      expect(b1).toMatchObject({ status: 'ok', proxy: 'g1', session: { id: 'sb', minted: 12 } });
      // A second instance of alice proposing its own session gets alice's.
      expect(await w.store.acquire({ ...base('i3'), account: 'alice', exclusive: true, candidates: [gw('zz')] })).toMatchObject({ status: 'ok', ver: 1, session: { id: 'sa', minted: 11 } });
      // Every holder gone, then a restarted process (a new instance, a new proposal): the same session.
      await w.store.release({ ...base('i1'), account: 'alice', exclusive: true });
      await w.store.release({ ...base('i3'), account: 'alice', exclusive: true });
      expect(await w.store.acquire({ ...base('i4'), account: 'alice', exclusive: true, candidates: [gw('yy')] })).toMatchObject({ status: 'ok', ver: 1, session: { id: 'sa' } });
      // A move to the same slot with the same session goes nowhere; with a new one it is a move.
      expect((await w.store.move({ ...base('i4'), account: 'alice', exclusive: true, fromVer: 1, reason: 'lifetime', candidates: [gw('sa')] })).status).toBe('none');
      const moved = await w.store.move({ ...base('i4'), account: 'alice', exclusive: true, fromVer: 1, reason: 'lifetime', candidates: [gw('s2', 21)] });
      expect(moved).toMatchObject({ status: 'ok', proxy: 'g1', ver: 2, reason: 'lifetime', session: { id: 's2', minted: 21 } });
      // Another process seeing the same (its lifetime timer) makes no second move: stale, with the winner's session.
      await w.store.acquire({ ...base('i5'), account: 'alice', exclusive: true, candidates: [gw('xx')] });
      expect(await w.store.move({ ...base('i5'), account: 'alice', exclusive: true, fromVer: 1, reason: 'lifetime', candidates: [gw('s3')] })).toMatchObject({ status: 'stale', ver: 2, session: { id: 's2' } });
      const r = await w.store.renew({ ...base('i5'), exclusive: true, accounts: [{ account: 'alice', ack: 2 }] });
      expect(r.status === 'ok' && r.accounts[0]).toMatchObject({ held: true, ver: 2, session: { id: 's2' } });
      // The gateway down (health per slot): no session on it is taken; a plain proxy of the pool is.
      await w.store.down('g1', 5000, 'refused');
      const c = await w.store.acquire({ ...base('i6'), account: 'carol', exclusive: true, candidates: [gw('sc'), ...cand('p9')] });
      expect(c).toMatchObject({ status: 'ok', proxy: 'p9' });
      expect((c as { session?: unknown }).session).toBeUndefined();
      const snap = await w.store.snapshot();
      expect(snap.accounts.find((x) => x.account === 'alice')).toMatchObject({ proxy: 'g1', session: { id: 's2' } });
      // No owner record for a session: the slot shows no account.
      expect(snap.proxies.find((x) => x.key === 'g1')?.owner).toBeUndefined();
    });

    it('stats are summed over processes; the snapshot shows accounts, holders, proxies, instances', async () => {
      await settled();
      await w.store.hello({ instance: 'i1', host: 'h', pid: 1, fp: 'f1', started: 0 }, { ttl, margin });
      await w.store.acquire({ ...base('i1'), account: 'alice', exclusive: true, candidates: cand('p1') });
      const row = { account: 'alice', key: 'p1', url: 'http://user:***@p1.example:8080', requests: 2, failures: 1, bytesSent: 100, bytesReceived: 1000 };
      await w.store.addStats([row]);
      await w.store.addStats([{ ...row, requests: 3, failures: 0 }]);
      const s = await w.store.snapshot();
      expect(s.stats).toEqual([{ ...row, requests: 5, failures: 1, bytesSent: 200, bytesReceived: 2000 }]);
      expect(s.accounts).toEqual([expect.objectContaining({ account: 'alice', proxy: 'p1', ver: 1, holders: [expect.objectContaining({ instance: 'i1', ack: 1 })] })]);
      expect(s.proxies).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'p1', owner: 'alice', url: row.url })]));
      expect(s.instances.map((i) => i.instance)).toContain('i1');
    });
  });
}

suite('MemoryStore', async () => {
  let now = 1_000_000;
  const store = new MemoryStore(() => now);
  return {
    store,
    pass: async (ms) => {
      now += ms;
    },
    wipe: async () => store.wipe(),
  };
});

let redis: RedisServer | undefined;
afterAll(async () => {
  await redis?.close();
});
suite(
  'RedisStore on redis-server',
  async () => {
    redis = await startRedis();
    const store = new RedisStore({ url: redis.url, prefix: `t${process.pid}`, timeoutMs: 2000 });
    await store.connect();
    return {
      store,
      // The server's clock: real time has to pass (short: the TTL here is 600 ms).
      pass: (ms) => new Promise((r) => setTimeout(r, ms)),
      wipe: async () => void (await redis!.command('FLUSHALL')),
    };
  },
  noRedis,
);
