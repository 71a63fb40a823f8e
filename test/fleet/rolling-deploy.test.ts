/**
 * A rolling deploy (real redis-server): two processes whose pools for one
 * account differ. The second is told once (`fleet-mismatch`), and it never
 * puts the account on a second egress: while the account is on a proxy its
 * pool lacks, it refuses the account's requests; after a move to a proxy both
 * pools have, it joins — one egress for the account throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsDist } from '../ecosystem/support/run.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, seen, startWorld, until, type World } from './support.js';

describe.skipIf(noRedis || needsDist)('fleet: processes with different pools (rolling deploy)', () => {
  let world: World;
  const workers: Worker[] = [];
  beforeAll(async () => {
    world = await startWorld(4);
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await world?.close();
  }, 30_000);

  it('mismatch reported once; the account never on two egresses; the newer process joins once both pools agree', async () => {
    const u = world.urls;
    const config = (pool: string[]) => ({ accounts: { alice: pool }, use: ['alice'], echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: 2000, prefix: 'deploy' }, gapMs: 40 });
    const old = new Worker(config([u[0]!, u[1]!, u[2]!]));
    workers.push(old);
    await old.waitFor((m) => m.type === 'first', 15_000);
    const from = Date.now();
    const next = new Worker(config([u[3]!, u[1]!, u[2]!]));
    workers.push(next);
    await next.waitFor((m) => m.type === 'event' && m.event === 'fleet-mismatch', 10_000);
    // alice is on u0, which the new process does not have: its requests are refused, none leaves.
    await next.waitFor((m) => m.type === 'fail', 10_000);
    expect(next.messages.some((m) => m.type === 'ok')).toBe(false);
    const fail = next.messages.find((m) => m.type === 'fail')!;
    expect(fail.code).toBe('SP_ERR_PROXY_UNAVAILABLE');

    // A move in the old process goes to a proxy both have; the new process joins it.
    const r = await old.ask('rotate', { account: 'alice' });
    const rotatedAt = Date.now();
    expect([u[1], u[2]].map((x) => x!.replace(/:[^:@/]*@/, ':***@'))).toContain(r.to);
    const joined = await next.waitFor((m) => m.type === 'ok', 15_000);
    // Requests both processes created after the join (one in flight at the move may finish on the old egress).
    const created = (): Array<{ ip: unknown; pid: number }> => [old, next].flatMap((w) => w.messages.filter((m) => m.type === 'ok' && Number(m.sent) >= Number(joined.sent)).map((m) => ({ ip: m.ip, pid: w.pid })));
    await until(() => (new Set(created().map((x) => x.pid)).size === 2 ? true : undefined), 10_000, 'both processes after the join');
    const s = seen(world.echo.timeline, from);
    const egress = world.egress[u.findIndex((x) => x.replace(/:[^:@/]*@/, ':***@') === r.to)];
    expect(joined.ip).toBe(egress);
    // Never two egresses at once: nothing through u3 (only the new pool has it); after the move only the new egress.
    expect(s.some((x) => x.ip === world.egress[3])).toBe(false);
    expect(new Set(created().map((x) => x.ip))).toEqual(new Set([egress]));
    const mismatches = next.messages.filter((m) => m.type === 'event' && m.event === 'fleet-mismatch');
    expect(mismatches).toHaveLength(1);
    const stats = (await old.ask('fleet-stats')).stats as { fingerprints: string[] };
    expect(stats.fingerprints).toHaveLength(2);
    console.log(`[fleet] rolling deploy: new process refused ${next.messages.filter((m) => m.type === 'fail').length} requests while alice was on a proxy its pool lacks, joined ${Number(joined.sent) - rotatedAt} ms after the move; 1 mismatch event`);
  }, 60_000);
});
