/**
 * Faults on a real fleet (worker processes, a real redis-server, mock
 * proxies): a paused process (SIGSTOP past its lease) sends nothing through
 * the proxy it lost, shown by the proxy's and the echo server's logs; a proxy
 * killed moves every process's accounts off it; Redis stopped for 5 s and
 * restarted empty: no crash, nothing direct, no shared proxy, and the time
 * to recover. Figures are printed with a [fleet] prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsDist } from '../ecosystem/support/run.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, egressOverlaps, handovers, seen, startWorld, until, type World, type WorkerMessage } from './support.js';

const ttl = 2000;
const margin = 400;

describe.skipIf(noRedis || needsDist)('fleet faults (real redis-server)', () => {
  let world: World;
  const workers: Worker[] = [];
  const start = (accounts: object, use: string[], prefix: string): Worker => {
    const w = new Worker({ accounts, use, echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: ttl, prefix }, gapMs: 25 });
    workers.push(w);
    return w;
  };
  const firsts = async (w: Worker, accounts: string[]): Promise<void> => {
    for (const a of accounts) await w.waitFor((m) => m.type === 'first' && m.account === a, 15_000);
  };
  beforeAll(async () => {
    world = await startWorld(9);
  }, 30_000);
  afterAll(async () => {
    for (const w of workers) if (!w.exited) w.kill('SIGCONT');
    await Promise.allSettled(workers.map((w) => w.stop()));
    await world?.close();
  }, 40_000);

  it('SIGSTOP past the lease TTL: another account takes the proxy after the quarantine; the resumed process sends nothing through it', async () => {
    const u = world.urls;
    const [X, Z, W] = [0, 1, 2];
    const accounts = { alice: [u[X], u[Z]], bob: [u[W], u[X]] };
    const p1 = start(accounts, ['alice'], 'sigstop');
    await firsts(p1, ['alice']);
    const p2 = start(accounts, ['bob'], 'sigstop');
    await firsts(p2, ['bob']);
    expect((await p1.ask('current')).current).toEqual({ alice: expect.stringContaining(`:${world.proxies[X]!.port}`) });

    const stoppedAt = Date.now();
    p1.kill('SIGSTOP');
    // bob may take X only once alice's lease ran out and its quarantine passed.
    const took = await until(async () => {
      const r = await p2.ask('rotate', { account: 'bob' }).catch(() => undefined);
      return r && String(r.to).includes(`:${world.proxies[X]!.port}`) ? Date.now() : undefined;
    }, 15_000, 'bob to take proxy X');
    const handover = took - stoppedAt;
    await until(() => (seen(world.echo.timeline, took).filter((s) => s.account === 'bob' && s.ip === world.egress[X]).length > 5 ? true : undefined), 10_000, 'bob through X');
    // P1's tunnels through X, from before the pause: their bytes must not grow after the resume.
    const before = world.proxies[X]!.log.filter((e) => e.openedAt < stoppedAt).map((e) => ({ e, bytesIn: e.bytesIn }));
    const resumedAt = Date.now();
    p1.kill('SIGCONT');
    const lost = await p1.waitFor((m) => m.type === 'event' && m.event === 'lease-lost', 10_000);
    const back = await p1.waitFor((m) => m.type === 'ok' && m.account === 'alice' && (m.sent as number) > resumedAt, 15_000);
    await until(() => (seen(world.echo.timeline, resumedAt).filter((s) => s.account === 'bob').length > 20 ? true : undefined), 10_000, 'more traffic');
    console.log(`[fleet] SIGSTOP: bob took alice's proxy ${handover} ms after the pause (TTL ${ttl}, margin ${margin}); alice back on ${String(back.ip)} ${Number(back.at) - resumedAt} ms after SIGCONT`);
    expect(handover).toBeGreaterThanOrEqual(ttl - ttl / 3);
    expect(lost.account).toBe('alice');
    // The proxy's log: nothing more written through P1's old tunnels after the resume.
    for (const { e, bytesIn } of before) expect(e.bytesIn, `tunnel ${e.id} through X grew after SIGCONT`).toBe(bytesIn);
    // The echo server's log: no alice request through X once bob had it, and alice now elsewhere.
    const after = seen(world.echo.timeline, took);
    expect(after.filter((s) => s.account === 'alice' && s.ip === world.egress[X])).toEqual([]);
    expect(back.ip).toBe(world.egress[Z]);
    expect(handovers(seen(world.echo.timeline, stoppedAt - 5000)).filter((h) => h.gapMs < 2 * margin)).toEqual([]);
    await p1.stop();
    await p2.stop();
  }, 60_000);

  it('a proxy killed: every process moves its accounts off it; failed requests counted fleet-wide', async () => {
    const u = world.urls;
    const accounts = { dave: [u[3], u[4], u[5]], erin: [u[4], u[5], u[6]] };
    const ws = [start(accounts, ['dave', 'erin'], 'kill'), start(accounts, ['dave', 'erin'], 'kill'), start(accounts, ['dave'], 'kill')];
    for (const w of ws) await firsts(w, w === ws[2] ? ['dave'] : ['dave', 'erin']);
    const cur = (await ws[0]!.ask('current')).current as Record<string, string>;
    const victim = world.urls.findIndex((x) => cur.dave!.endsWith(`:${new URL(x).port}`));
    const killedAt = Date.now();
    const marks = ws.map((w) => w.messages.length);
    await world.proxies[victim]!.close();
    // Every process: dave leaves the dead proxy.
    const moved = await Promise.all(ws.map((w, i) => w.waitFor((m) => m.type === 'ok' && m.account === 'dave' && m.ip !== world.egress[victim], 15_000, marks[i])));
    const lastMove = Math.max(...moved.map((m) => Number(m.at)));
    const failures = ws.flatMap((w, i) => w.messages.slice(marks[i]).filter((m: WorkerMessage) => m.type === 'fail' && Number(m.at) <= lastMove));
    const firstFailure = Math.min(...failures.map((f) => Number(f.at)), lastMove);
    console.log(`[fleet] proxy killed: ${failures.length} failed requests fleet-wide (${[...new Set(failures.map((f) => String(f.code)))].join(', ') || 'none'}) between the first failure and the last process moving (${lastMove - firstFailure} ms; ${lastMove - killedAt} ms after the kill)`);
    expect(new Set(moved.map((m) => m.ip)).size).toBe(1); // the same new egress in every process
    const s = seen(world.echo.timeline, killedAt);
    expect(egressOverlaps(s)).toEqual([]);
    expect(s.some((r) => r.ip === '127.0.0.1')).toBe(false);
    await Promise.all(ws.map((w) => w.stop()));
  }, 60_000);

  it('Redis stopped for 5 s under load, restarted empty: no crash, nothing direct, no shared proxy; recovery time', async () => {
    const u = world.urls;
    const accounts = { f1: [u[6], u[7]], f2: [u[7], u[8]], f3: [u[8], u[6]] };
    const ws = [start(accounts, ['f1', 'f2', 'f3'], 'outage'), start(accounts, ['f1', 'f2', 'f3'], 'outage')];
    for (const w of ws) await firsts(w, ['f1', 'f2', 'f3']);
    const marks = ws.map((w) => w.messages.length);
    const stoppedAt = Date.now();
    await world.redis.stop();
    await new Promise((r) => setTimeout(r, 5000)); // the outage under test lasts 5 s
    await world.redis.start(); // no persistence: empty
    const restartedAt = Date.now();
    const recovered = await Promise.all(
      ws.flatMap((w, i) => ['f1', 'f2', 'f3'].map((a) => w.waitFor((m) => m.type === 'ok' && m.account === a && Number(m.at) > restartedAt, 20_000, marks[i]))),
    );
    const recovery = Math.max(...recovered.map((m) => Number(m.at))) - restartedAt;
    const during = ws.flatMap((w, i) => w.messages.slice(marks[i]));
    const lastOkBeforeStop = Math.max(...during.filter((m) => m.type === 'ok' && Number(m.at) < restartedAt).map((m) => Number(m.at)));
    const codes = [...new Set(during.filter((m) => m.type === 'fail').map((m) => String(m.code)))];
    console.log(`[fleet] Redis down 5 s, back empty: traffic ran ${lastOkBeforeStop - stoppedAt} ms into the outage (leases held), every account served again ${recovery} ms after the restart (epoch rule: TTL + margin = ${ttl + margin} ms); failures: ${codes.join(', ')}`);
    for (const w of ws) expect(w.exited).toBe(false);
    expect(during.some((m) => m.type === 'event' && m.event === 'store-down')).toBe(true);
    expect(during.some((m) => m.type === 'event' && m.event === 'store-up')).toBe(true);
    for (const c of codes) expect(['SP_ERR_PROXY_UNAVAILABLE', 'SP_ERR_STORE_UNAVAILABLE']).toContain(c);
    expect(lastOkBeforeStop - stoppedAt).toBeLessThan(ttl); // fail closed at the deadline
    const s = seen(world.echo.timeline, stoppedAt - 2000);
    expect(s.some((r) => r.ip === '127.0.0.1')).toBe(false);
    expect(egressOverlaps(s)).toEqual([]);
    for (const h of handovers(s)) expect(h.gapMs, JSON.stringify(h)).toBeGreaterThanOrEqual(2 * margin);
    await Promise.all(ws.map((w) => w.stop()));
  }, 60_000);
});
