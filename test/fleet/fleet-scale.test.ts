/**
 * The fleet under load: P processes × A accounts (overlapping between
 * processes) over N mock proxies with distinct egress addresses, running
 * concurrently with rotations and proxies killed (failovers). From the echo
 * server's timeline: no egress ever serves two accounts in overlapping time,
 * and no account ever shows two egresses in overlapping time. Heavy: it runs
 * once, on Node 20 (SESSION_PROXY_FLEET_HEAVY=1 runs it anywhere);
 * SESSION_PROXY_FLEET_SCALE=PxAxN sets the size (default 4x25x120).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { needsDist } from '../ecosystem/support/run.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, egressChanges, handovers, seen, startWorld, until, type World } from './support.js';

const heavy = process.env.SESSION_PROXY_FLEET_HEAVY === '1' || process.versions.node.startsWith('20.');
const [P, A, N] = (process.env.SESSION_PROXY_FLEET_SCALE ?? '4x25x120').split('x').map(Number) as [number, number, number];
const ttl = 2000;
const margin = 400;
const runMs = 8000;

describe.skipIf(noRedis || needsDist || !heavy)(`fleet at scale: ${P} processes × ${A} accounts over ${N} proxies`, () => {
  let world: World | undefined;
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await world?.close();
  }, 60_000);

  it('no egress serves two accounts, no account two egresses, in overlapping time (rotations and failovers under load)', async () => {
    world = await startWorld(N);
    const u = world.urls;
    // Accounts: enough that each process uses A of them and neighbours overlap; pools of 6 sharing three proxies with the next account.
    const total = Math.min(Math.floor(N / 3), Math.ceil((A * P) / 2));
    const names = Array.from({ length: total }, (_, j) => `acct${j}`);
    const accounts = Object.fromEntries(names.map((n, j) => [n, [0, 1, 2, 3, 4, 5].map((k) => u[(3 * j + k) % N]!)]));
    const uses = Array.from({ length: P }, (_, p) => Array.from({ length: A }, (_, k) => names[(p * Math.floor(total / P) + k) % total]!));
    for (const use of uses) workers.push(new Worker({ accounts, use, echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: ttl, prefix: 'scale' }, gapMs: 120 }));
    for (const [i, w] of workers.entries()) for (const a of new Set(uses[i])) await w.waitFor((m) => m.type === 'first' && m.account === a, 30_000);
    const t0 = Date.now();
    console.log(`[fleet] scale: ${P} processes × ${A} accounts (${total} distinct, each in ${((P * A) / total).toFixed(1)} processes on average) over ${N} proxies; all serving after start`);

    // Rotations from random processes, and two proxies killed, for runMs.
    const rotations: Array<{ account: string; at: number; to: string; ms: number }> = [];
    let rotateFailures = 0;
    const killed: number[] = [];
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const killAt = [runMs / 3, (2 * runMs) / 3];
    while (Date.now() - t0 < runMs) {
      const p = rnd(P);
      const account = uses[p]![rnd(A)]!;
      const r = await workers[p]!.ask('rotate', { account }).catch(() => undefined);
      if (r) rotations.push({ account, at: Number(Date.now()), to: String(r.to), ms: Number(r.ms) });
      else rotateFailures++;
      if (killAt.length && Date.now() - t0 >= killAt[0]!) {
        killAt.shift();
        const current = (await workers[0]!.ask('current')).current as Record<string, string>;
        const victim = u.findIndex((x) => Object.values(current)[0]!.endsWith(`:${new URL(x).port}`));
        killed.push(victim);
        await world.proxies[victim]!.close();
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    // Settle: every account serving again somewhere after the last move.
    const end = Date.now();
    await until(() => {
      const s = seen(world!.echo.timeline, end);
      return names.every((n) => s.some((x) => x.account === n)) ? true : undefined;
    }, 15_000, 'every account serving after the run');
    const s = seen(world.echo.timeline, t0 - 5000);

    // Barrier: from rotate() returning to the account's first request through its new egress.
    const barrier = rotations
      .map((r) => {
        const ip = world!.egress[u.findIndex((x) => x.replace(/:[^:@/]*@/, ':***@') === r.to)];
        const first = s.find((x) => x.account === r.account && x.ip === ip && x.at >= r.at - r.ms);
        return first ? first.at - (r.at - r.ms) : undefined;
      })
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    const failoverEvents = workers.flatMap((w) => w.messages.filter((m) => m.type === 'event' && m.event === 'rotate' && m.reason === 'failover'));
    const failed = workers.flatMap((w) => w.messages.filter((m) => m.type === 'fail' && Number(m.at) >= t0));
    const ok = workers.flatMap((w) => w.messages.filter((m) => m.type === 'ok' && Number(m.at) >= t0));
    const hand = handovers(s);
    const q = (xs: number[], f: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * f))] ?? NaN;
    console.log(
      `[fleet] scale: ${ok.length} requests ok, ${failed.length} failed (${[...new Set(failed.map((f) => String(f.code)))].join(', ')}); ` +
        `${rotations.length} rotations (${rotateFailures} refused: nowhere free), barrier rotate→first request on the new egress p50 ${q(barrier, 0.5)} ms, p95 ${q(barrier, 0.95)} ms, max ${barrier.at(-1)} ms; ` +
        `${killed.length} proxies killed, ${failoverEvents.length} failover moves seen by processes; ` +
        `${hand.length} handovers of an egress between accounts, min gap ${Math.min(...hand.map((h) => h.gapMs))} ms`,
    );
    // Moves per account: the rotations, and the failover moves (each process reports the same one: distinct by target).
    const moves = new Map<string, number>();
    for (const r of rotations) moves.set(r.account, (moves.get(r.account) ?? 0) + 1);
    const failovers = new Set(failoverEvents.map((e) => `${String(e.account)}>${String(e.to)}@${Math.round(Number(e.at) / 3000)}`));
    for (const f of failovers) moves.set(f.split('>')[0]!, (moves.get(f.split('>')[0]!) ?? 0) + 1);
    const changes = egressChanges(s);
    const excess = [...changes].filter(([a, n]) => n > (moves.get(a) ?? 0)).map(([a, n]) => ({ account: a, changes: n, moves: moves.get(a) ?? 0 }));
    console.log(`[fleet] scale: egress changes ${[...changes.values()].reduce((a, b) => a + b, 0)} for ${rotations.length + failovers.size} moves; accounts that changed egress more often than they moved: ${excess.length}`);
    expect(s.some((r) => r.ip === '127.0.0.1')).toBe(false);
    expect(excess).toEqual([]);
    for (const h of hand) expect(h.gapMs, JSON.stringify(h)).toBeGreaterThanOrEqual(2 * margin);
    for (const w of workers) expect(w.exited).toBe(false);
    expect(rotations.length).toBeGreaterThan(5);
  }, 120_000);
});
