/**
 * The fleet through Redis Sentinel (a primary, a replica, one sentinel;
 * test/support/redis-sentinel.ts), with two worker processes and mock
 * proxies whose egress addresses the echo server records. Three failovers,
 * each checked on the echo server's timeline (nothing direct, no egress
 * serving two accounts, no account on two egresses at once):
 *
 * 1. SENTINEL FAILOVER with the replica in sync: the client follows the new
 *    primary, the epoch stays, the leases go on renewing; a new acquisition
 *    waits TTL + margin (the server's run id changed).
 * 2. The primary crashes while its replica is empty (it lost every write):
 *    a new epoch; no lease is granted until TTL + margin after it, when
 *    every lease the store forgot has run out locally; then the accounts
 *    start over.
 * 3. The primary crashes while its replica lacks the last writes (a move):
 *    the epoch is kept; the moved account's processes find an older version
 *    than theirs, drop the lease, and after TTL + margin take the proxy the
 *    store has.
 *
 * Heavy: Node 20 only (SESSION_PROXY_FLEET_HEAVY=1 runs it anywhere).
 * Figures are printed with a [fleet] prefix.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis.js';
import { resolveStore } from '../../src/store/index.js';
import { needsDist } from '../ecosystem/support/run.js';
import { SessionProxyManager } from '../../src/index.js';
import { noRedis, redisCommand } from '../support/redis-server.js';
import { startSentinelSet, type DataNode, type SentinelSet } from '../support/redis-sentinel.js';
import { Worker, egressOverlaps, handovers, seen, startNetwork, until, type Network, type Seen, type WorkerMessage } from './support.js';

const heavy = process.env.SESSION_PROXY_FLEET_HEAVY === '1' || process.versions.node.startsWith('20.');
const ttl = 3000;
const margin = 600; // store/index.ts leaseMargin(3000)
const prefix = 'sn';

describe.skipIf(noRedis || needsDist || !heavy)('fleet through Redis Sentinel (primary, replica, sentinel; failovers)', () => {
  let set: SentinelSet;
  let net: Network;
  let probe: RedisStore;
  const workers: Worker[] = [];
  const names = ['alice', 'bob', 'carol'];
  beforeAll(async () => {
    const t0 = Date.now();
    set = await startSentinelSet('fleet');
    net = await startNetwork(9);
    console.log(`[fleet] sentinel: primary, replica and sentinel ready in ${Date.now() - t0} ms`);
    const u = net.urls;
    const accounts = { alice: [u[0], u[1], u[2]], bob: [u[0], u[1], u[3]], carol: [u[4], u[5], u[6]] };
    const config = (use: string[]): object => ({ accounts, use, echo: net.echo.httpUrl, store: { sentinel: set.sentinel, leaseTtl: ttl, prefix }, gapMs: 25 });
    workers.push(new Worker(config(['alice', 'bob'])), new Worker(config(['alice', 'bob', 'carol'])));
    for (const w of workers) for (const a of w === workers[0] ? ['alice', 'bob'] : names) await w.waitFor((m) => m.type === 'first' && m.account === a, 15_000);
    // An observer of the store through the same Sentinel client the workers use.
    probe = new RedisStore({ target: resolveStore({ sentinel: set.sentinel }).target, prefix, timeoutMs: 3000 });
    await probe.connect();
  }, 40_000);
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await probe?.close();
    await net?.close();
    await set?.close();
  }, 40_000);

  const events = (from: number, event: string): WorkerMessage[] => workers.flatMap((w) => w.messages.filter((m) => m.type === 'event' && m.event === event && Number(m.at) >= from));
  const epoch = async (node: DataNode): Promise<{ id: string; at: number }> => {
    const [id, at] = (await node.command('HMGET', `{${prefix}}:epoch`, 'id', 'at')) as [string | null, string | null];
    return { id: id ?? '', at: Number(at) };
  };
  /** Every account serving again (through both processes where both use it) after `t`. */
  const allServing = (t: number, ms = 15_000): Promise<true> =>
    until(() => {
      const ok = workers.flatMap((w) => w.messages.filter((m) => m.type === 'ok' && Number(m.at) > t).map((m) => `${w.pid}/${String(m.account)}`));
      return ok.includes(`${workers[0]!.pid}/alice`) && ok.includes(`${workers[0]!.pid}/bob`) && names.every((a) => ok.includes(`${workers[1]!.pid}/${a}`)) ? true : undefined;
    }, ms, 'every account serving');
  /** The fleet invariants on the timeline, and the longest pause of each account's traffic. */
  const invariants = (s: readonly Seen[]): Record<string, number> => {
    expect(s.some((r) => r.ip === '127.0.0.1'), 'a request went direct').toBe(false);
    expect(egressOverlaps(s)).toEqual([]);
    for (const h of handovers(s)) expect(h.gapMs, JSON.stringify(h)).toBeGreaterThanOrEqual(2 * margin);
    const pause: Record<string, number> = {};
    for (const a of names) {
      const times = s.filter((r) => r.account === a).map((r) => r.at);
      pause[a] = Math.max(0, ...times.slice(1).map((t, i) => t - times[i]!));
    }
    return pause;
  };

  it('installed with a default proxy and tunnelSockets on: the connections to the sentinel, the primary and the replica go direct (plumbing)', async () => {
    const manager = new SessionProxyManager({ proxy: net.urls[8]!, accounts: { dave: [net.urls[7]!] }, noProxy: [], tunnelSockets: true, store: { sentinel: set.sentinel, leaseTtl: ttl, prefix } }).install();
    try {
      const res = await until(() => manager.withProxy('dave', () => fetch(`${net.echo.httpUrl}/ip`).then((r) => r.text())).catch(() => undefined), 10_000, 'dave served');
      expect(res).toBe(net.egress[7]);
      // Outside any scope the default proxy carries what the process sends (the hook is on).
      expect(await until(() => fetch(`${net.echo.httpUrl}/ip`).then((r) => r.text()).catch(() => undefined), 10_000, 'default served')).toBe(net.egress[8]);
      const ports = [set.sentinelPort, ...set.nodes.map((n) => n.port)];
      const lists = await Promise.all(ports.map((p) => redisCommand(p, ['CLIENT', 'LIST']) as Promise<string>));
      const addrs = lists.join('\n').split('\n').filter((l) => l.includes('addr=')).map((l) => /addr=([\d.]+):/.exec(l)?.[1]);
      expect(addrs.length).toBeGreaterThan(4);
      expect(new Set(addrs)).toEqual(new Set(['127.0.0.1']));
      for (const p of net.proxies) expect(p.log.filter((e) => ports.includes(Number(e.targetPort)))).toEqual([]);
    } finally {
      await manager.uninstall();
    }
  }, 20_000);

  it('SENTINEL FAILOVER, replica in sync: the client follows the new primary, the epoch stays, leases go on; new acquisitions wait TTL + margin', async () => {
    await until(() => (seen(net.echo.timeline, Date.now() - 1000).length > 30 ? true : undefined), 10_000, 'traffic');
    const before = await epoch(await set.primary());
    const current = (await workers[1]!.ask('current')).current as Record<string, string>;
    await set.synced();
    const t0 = Date.now();
    const { primary, ms } = await set.failover();
    expect((await epoch(primary)).id).toBe(before.id); // the replica had it
    // A new acquisition on the new primary: the server's run id differs from the epoch's, so it settles.
    const zed = await probe.acquire({ instance: 'probe', ttl, margin, epoch: before.id, newEpoch: randomUUID(), account: 'zed', exclusive: true, candidates: [{ key: 'zed-proxy', url: 'http://zed.example:1' }] });
    expect(zed.status).toBe('settling');
    expect(zed.status === 'settling' && zed.retryIn).toBeGreaterThan(0);
    expect(zed.status === 'settling' && zed.retryIn).toBeLessThanOrEqual(ttl + margin);
    // Serving for longer than a lease after the switch: the renewals reached the new primary.
    await allServing(Date.now() + ttl);
    const end = Date.now() + 500;
    await until(() => (Date.now() > end ? true : undefined), 2000, 'traffic after the failover');
    const s = seen(net.echo.timeline, t0 - 1000);
    const pause = invariants(s);
    // The leases went on: no account lost its lease or changed its egress.
    expect(events(t0, 'lease-lost')).toEqual([]);
    expect(events(t0, 'store-up').filter((e) => e.epochChanged)).toEqual([]);
    expect((await workers[1]!.ask('current')).current).toEqual(current);
    for (const a of names) expect(new Set(s.filter((r) => r.account === a).map((r) => r.ip)).size, a).toBe(1);
    console.log(`[fleet] sentinel: graceful failover ${ms} ms (SENTINEL FAILOVER → the sentinel names the replica, role:master); epoch kept, 0 leases lost; longest pause of an account's traffic ${Math.max(...Object.values(pause))} ms; ${events(t0, 'store-down').length} store-down events; a new acquisition right after: settling, retry in ${zed.status === 'settling' ? zed.retryIn : '?'} ms`);
  }, 30_000);

  it('the primary crashes with an empty replica: a new epoch, no lease granted for TTL + margin after it, then every account starts over', async () => {
    const before = await epoch(await set.primary());
    const t0 = Date.now();
    const { primary, ms } = await set.crash((replica) => replica.command('FLUSHALL').then(() => undefined));
    // The first script on the empty primary creates the new epoch.
    const after = await until(async () => ((await epoch(primary)).id ? epoch(primary) : undefined), 10_000, 'a new epoch').catch(async (err: Error) => {
      const recent = workers.map((w) => w.messages.filter((m) => Number(m.at) >= t0 && m.type !== 'ok').slice(-8));
      throw new Error(`${err.message}; epochs ${JSON.stringify(await Promise.all(set.nodes.map((n) => epoch(n))))}; recent ${JSON.stringify(recent)}`);
    });
    expect(after.id).not.toBe(before.id);
    const resumed = await allServing(after.at + ttl + margin).then(() => Date.now());
    // Every process learned the new epoch.
    await until(() => (workers.every((w) => w.messages.some((m) => m.type === 'event' && m.event === 'store-up' && m.epochChanged && Number(m.at) >= t0)) ? true : undefined), 5000, 'store-up with epochChanged in both processes');
    const s = seen(net.echo.timeline, t0 - 1000);
    invariants(s);
    // The epoch rule: old leases end by their local deadlines (≤ TTL − margin after the last renewal, which
    // was before the new epoch); nothing is granted until TTL + margin after the new epoch. In between: silence.
    const quiet = s.filter((r) => r.at > after.at + ttl - margin + 100 && r.at < after.at + ttl + margin - 50);
    expect(quiet, 'requests between the old leases’ end and the new epoch’s first grant').toEqual([]);
    const firstGrant = Math.min(...s.filter((r) => r.at >= after.at + ttl - margin + 100).map((r) => r.at));
    expect(firstGrant).toBeGreaterThanOrEqual(after.at + ttl + margin - 50);
    console.log(`[fleet] sentinel: crash with an empty replica: promoted in ${ms} ms; new epoch; first request on a new lease ${firstGrant - after.at} ms after the new epoch (TTL + margin = ${ttl + margin}); every account serving ${resumed - t0} ms after the crash`);
  }, 30_000);

  it('the primary crashes with a replica that lost a move: the epoch is kept; the account drops the newer lease and, after TTL + margin, takes the proxy the store has', async () => {
    await set.synced();
    const replica = await set.replica();
    // What the replica has now: every key of the fleet (hashes and sets).
    const snapshot = new Map<string, { type: string; items: string[] }>();
    for (const k of (await replica.command('KEYS', `{${prefix}}:*`)) as string[]) {
      const type = (await replica.command('TYPE', k)) as string;
      snapshot.set(k, { type, items: (await replica.command(type === 'hash' ? 'HGETALL' : 'SMEMBERS', k)) as string[] });
    }
    const was = ((await workers[0]!.ask('current')).current as Record<string, string>).alice;
    const r = await workers[0]!.ask('rotate', { account: 'alice' });
    await until(async () => (((await workers[1]!.ask('current')).current as Record<string, string>).alice === r.to ? true : undefined), 5000, 'process b to follow the move');
    const epochBefore = await epoch(await set.primary());
    const t0 = Date.now();
    // The replica loses every write since the snapshot (the move among them), as an asynchronous replica may.
    const { primary, ms } = await set.crash(async (node) => {
      await node.command('FLUSHALL');
      for (const [k, { type, items }] of snapshot) await node.command(type === 'hash' ? 'HSET' : 'SADD', k, ...items);
    });
    expect((await epoch(primary)).id).toBe(epochBefore.id);
    await allServing(Date.now());
    await until(async () => {
      const c = await Promise.all(workers.map(async (w) => ((await w.ask('current')).current as Record<string, string>).alice));
      return c.every((x) => x === was) ? true : undefined;
    }, 10_000, 'alice back on the proxy the store has, in both processes');
    const wasIp = net.egress[net.urls.findIndex((u) => u.replace(/:[^:@/]*@/, ':***@') === was)]!;
    await until(() => (seen(net.echo.timeline, t0).some((x) => x.account === 'alice' && x.ip === wasIp) ? true : undefined), 5000, 'alice through the store’s proxy');
    const lost = events(t0, 'lease-lost').filter((e) => e.account === 'alice');
    expect(lost.length).toBeGreaterThanOrEqual(1);
    const s = seen(net.echo.timeline, t0 - 2000);
    invariants(s);
    const alice = s.filter((x) => x.account === 'alice');
    const firstBack = alice.find((x) => x.at > t0 && x.ip === wasIp)!;
    const lastNew = alice.filter((x) => x.ip !== wasIp && x.at < firstBack.at).at(-1)!;
    // No account on two egresses at once: the newer egress stopped a full 2 × margin before the older one came back.
    expect(firstBack.at - lastNew.at).toBeGreaterThanOrEqual(2 * margin);
    console.log(`[fleet] sentinel: crash with a replica that lost a move: promoted in ${ms} ms; epoch kept; alice's processes dropped the lease (${lost.length} lease-lost), back on the store's proxy after a ${firstBack.at - lastNew.at} ms gap (≥ 2 × margin; the settle is TTL + margin = ${ttl + margin} ms after the failover)`);
  }, 40_000);
});
