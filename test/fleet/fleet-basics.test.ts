/**
 * A small fleet on a real redis-server: two processes share accounts over
 * mock proxies. Both processes put a shared account on one egress, two
 * accounts never share one, a restart gets every account back on its
 * egress, a rotation in one process moves the account in the other, and no
 * password is anywhere in Redis (the whole keyspace scanned).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsDist, root, run } from '../ecosystem/support/run.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, egressOverlaps, expectOneEgressPerAccount, handovers, seen, startWorld, until, type World } from './support.js';

const ttl = 2000;
const margin = 400; // store/index.ts leaseMargin(2000)

describe.skipIf(noRedis || needsDist)('fleet basics (2 processes, real redis-server)', () => {
  let world: World;
  const workers: Worker[] = [];
  let config: (use: string[]) => object;
  beforeAll(async () => {
    world = await startWorld(6);
    const u = world.urls;
    // Overlapping pools: exclusivity has to be decided fleet-wide.
    const accounts = { alice: [u[0], u[1], u[2]], bob: [u[0], u[1], u[3]], carol: [u[1], u[4], u[5]] };
    config = (use) => ({ accounts, use, echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: ttl, prefix: 'basics' }, gapMs: 25 });
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await world?.close();
  }, 30_000);

  it('shared accounts leave through one egress in both processes; no egress serves two accounts', async () => {
    const a = new Worker(config(['alice', 'bob']));
    const b = new Worker(config(['alice', 'bob', 'carol']));
    workers.push(a, b);
    for (const w of [a, b]) for (const account of ['alice', 'bob']) await w.waitFor((m) => m.type === 'first' && m.account === account, 15_000);
    await b.waitFor((m) => m.type === 'first' && m.account === 'carol', 15_000);
    await expectOneEgressPerAccount(a, b, world.echo);
  }, 40_000);

  it('rotate() in one process moves the account in the other (a barrier); no overlap on the timeline', async () => {
    const [a, b] = workers as [Worker, Worker];
    const before = (await a.ask('current')).current as Record<string, string>;
    const from = Date.now();
    const r = await a.ask('rotate', { account: 'alice' });
    expect(r.to).not.toBe(before.alice);
    const moved = await until(async () => {
      const c = (await b.ask('current')).current as Record<string, string>;
      return c.alice === r.to ? c : undefined;
    }, 5000, 'process b to follow the move');
    expect(moved.alice).toBe(r.to);
    // The first request through the new egress in each process, and what came before it.
    const newIp = world.egress[world.urls.findIndex((u) => u.replace(/:[^:@/]*@/, ':***@') === r.to)];
    await until(() => (seen(world.echo.timeline, from).filter((x) => x.account === 'alice' && x.ip === newIp).length > 10 ? true : undefined), 10_000, 'alice on the new egress');
    const s = seen(world.echo.timeline, from - 2000);
    const overlaps = egressOverlaps(s);
    console.log(`[fleet] rotate→first request on the new egress: ${Number(r.ms)} ms for rotate(); overlaps ${JSON.stringify(overlaps)}`);
    expect(overlaps).toEqual([]);
    for (const h of handovers(s)) expect(h.gapMs, JSON.stringify(h)).toBeGreaterThanOrEqual(margin);
  }, 30_000);

  it('a process killed and restarted with the same configuration gets every account back on its egress', async () => {
    const b = workers[1]!;
    const before = (await b.ask('current')).current as Record<string, string>;
    b.kill('SIGKILL');
    await until(() => (b.exited ? true : undefined), 5000, 'exit');
    const c = new Worker(config(['alice', 'bob', 'carol']));
    workers[1] = c;
    for (const account of ['alice', 'bob', 'carol']) await c.waitFor((m) => m.type === 'first' && m.account === account, 15_000);
    const after = (await c.ask('current')).current as Record<string, string>;
    expect(after).toEqual(before);
  }, 30_000);

  it('stats({ fleet: true }) and `session-proxy fleet` show each account with its proxy, holders and traffic summed over the fleet', async () => {
    const a = workers[0]!;
    const fromWorker = (await a.ask('fleet-stats')).stats as { accounts: Array<{ account: string; proxy: string; holders: unknown[]; requests: number }>; fingerprints: string[] };
    const alice = fromWorker.accounts.find((x) => x.account === 'alice')!;
    // The two running processes, and the one killed before until its lease runs out.
    expect(alice.holders.length).toBeGreaterThanOrEqual(2);
    expect(alice.requests).toBeGreaterThan(10);
    expect(alice.proxy).toContain(':***@');
    expect(fromWorker.fingerprints.length).toBe(1);
    const cli = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', world.redis.url, '--prefix', 'basics', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    const stats = JSON.parse(cli.stdout) as { accounts: Array<{ account: string; proxy: string; holders: Array<{ pid: number; leaseLeftMs: number }> }> };
    const cliAlice = stats.accounts.find((x) => x.account === 'alice')!;
    expect(cliAlice.proxy).toBe(alice.proxy);
    expect(cliAlice.holders.map((h) => h.pid)).toEqual(expect.arrayContaining(workers.map((w) => w.pid)));
    for (const h of cliAlice.holders) expect(h.leaseLeftMs).toBeGreaterThan(0);
    const text = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', world.redis.url, '--prefix', 'basics']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ACCOUNT\s+PROXY\s+STATE\s+HOLDERS/);
    expect(text.stdout).toContain('one configuration in the fleet');
    for (const pw of world.passwords) expect(text.stdout).not.toContain(pw);
  }, 30_000);

  it('nothing secret in Redis: the whole keyspace scanned, no proxy password in any key or value', async () => {
    const keys = (await world.redis.command('KEYS', '*')) as string[];
    expect(keys.length).toBeGreaterThan(5);
    const texts: string[] = [...keys];
    for (const k of keys) {
      const type = (await world.redis.command('TYPE', k)) as string;
      if (type === 'hash') texts.push(...((await world.redis.command('HGETALL', k)) as string[]));
      else if (type === 'set') texts.push(...((await world.redis.command('SMEMBERS', k)) as string[]));
      else if (type === 'string') texts.push(String(await world.redis.command('GET', k)));
    }
    const all = texts.join('\n');
    for (const pw of world.passwords) expect(all.includes(pw), `password of a proxy found in Redis`).toBe(false);
    expect(all).toContain(':***@'); // the redacted URLs the CLI shows
  });
});
