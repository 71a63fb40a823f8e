/**
 * Node children and Workers started by a fleet process join the fleet through
 * the same store, with no code of their own: a fleet parent (real
 * redis-server with a password) starts, in alice's scope, a Node child
 * (child_process.spawn), a worker_threads Worker and a cluster.fork() worker,
 * each running app code that only makes requests (fixtures/fleet-child.mjs).
 * From the echo server: they leave from alice's egress, move with the
 * parent's rotate('alice') without alice ever showing two egresses at once,
 * and keep alice's lease and egress when the parent is paused past its lease
 * or killed. From the store: each is a holder of alice's lease, and all run
 * one configuration (a route child's pool is a part of its parent's, not a
 * mismatch). The Redis password stays in the configuration file.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readFleet, type FleetStats } from '../../src/index.js';
import { needsDist, root, run } from '../ecosystem/support/run.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, egressChanges, egressOverlaps, startWorld, until, type World, type WorkerMessage } from './support.js';

const parentFile = fileURLToPath(new URL('./fixtures/fleet-parent.mjs', import.meta.url));
const ttl = 2000;
const prefix = 'kids';
const redisPassword = `redisPw-${process.pid}-S3cr3t`;
const kinds = ['child', 'worker', 'cluster'] as const;
type Kind = 'parent' | (typeof kinds)[number];

interface Req {
  at: number;
  ip: string;
  account: string;
  pid: number;
  kind: Kind;
}

describe.skipIf(noRedis || needsDist)('fleet children: a Node child, a Worker and a cluster worker of a fleet process join its fleet', () => {
  let world: World;
  let parent: Worker;
  const pids: Partial<Record<Kind, number>> = {};
  const ipOf = (redacted: string): string => world.egress[world.urls.findIndex((u) => u.replace(/:[^:@/]*@/, ':***@') === redacted)]!;
  const requests = (from = 0): Req[] =>
    world.echo.timeline
      .filter((t) => t.at >= from)
      .map((t) => {
        const q = new URL(t.path, 'http://x').searchParams;
        return { at: t.at, ip: t.ip, account: q.get('a') ?? '', pid: Number(q.get('p')), kind: (q.get('k') ?? '') as Kind };
      })
      .filter((r) => r.account !== '')
      .sort((a, b) => a.at - b.at);
  const from = (kind: Kind, m: WorkerMessage): boolean => (kind === 'parent' ? m.from === undefined : m.from === kind);
  const fleet = (): Promise<FleetStats> => readFleet({ url: world.redis.url, prefix });
  const holderPids = (s: FleetStats, account: string): number[] => (s.accounts.find((a) => a.account === account)?.holders ?? []).map((h) => h.pid!).sort();
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  afterAll(async () => {
    await parent?.stop();
    for (const pid of [pids.child, pids.cluster]) if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    await world?.close();
  }, 30_000);

  it('started in alice’s scope, each leaves from alice’s egress and holds alice’s lease in the store', async () => {
    world = await startWorld(5, { redisPassword });
    const u = world.urls;
    const store = { url: world.redis.url, leaseTtl: ttl, prefix };
    // SESSION_PROXY_STORE as an operator would set it: children must not inherit it (the password is in it).
    parent = new Worker(
      { accounts: { alice: [u[0], u[1], u[4]], bob: [u[2], u[3]] }, store, echo: world.echo.httpUrl },
      { file: parentFile, env: { SESSION_PROXY_STORE: world.redis.url, DEBUG: 'session-proxy*' }, captureStderr: true },
    );
    for (const account of ['alice', 'bob']) await parent.waitFor((m) => m.type === 'first' && m.account === account && !m.from, 15_000);
    // A rotation first: the Worker's and cluster worker's copies of alice's pool then start at its second proxy.
    await parent.ask('rotate', { account: 'alice' });
    for (const kind of kinds) {
      pids[kind] = Number((await parent.ask('start', { kind })).pid);
      await parent.waitFor((m) => m.type === 'first' && from(kind, m), 20_000);
    }
    pids.parent = parent.pid;
    const hello = (kind: Kind): WorkerMessage => parent.messages.find((m) => m.type === 'hello' && from(kind, m))!;
    for (const kind of kinds) {
      // The store reached each one, with the parent's prefix and TTL.
      expect(hello(kind).store, kind).toMatchObject({ prefix, leaseTtl: ttl });
      expect(hello(kind).storeHasUrl, kind).toBe(true);
    }

    const t = Date.now();
    const current = (await parent.ask('current')).current as { alice: string; bob: string };
    await until(() => (kinds.every((k) => requests(t).filter((r) => r.kind === k).length >= 10) ? true : undefined), 10_000, 'requests from every child');
    const s = requests(t);
    for (const kind of ['parent', ...kinds] as const) {
      const ips = new Set(s.filter((r) => r.kind === kind && r.account === 'alice').map((r) => r.ip));
      expect([...ips], kind).toEqual([ipOf(current.alice)]);
    }
    expect(new Set(s.filter((r) => r.account === 'bob').map((r) => r.ip))).toEqual(new Set([ipOf(current.bob)]));
    expect(s.some((r) => r.ip === '127.0.0.1')).toBe(false);

    // The store: alice held by the parent and its Worker (one pid, two instances), the child and the cluster worker; bob by the parent alone.
    const stats = (await parent.ask('fleet-stats')).stats as FleetStats;
    expect(holderPids(stats, 'alice')).toEqual([parent.pid, parent.pid, pids.child!, pids.cluster!].sort());
    expect(holderPids(stats, 'bob')).toEqual([parent.pid]);
    expect(stats.accounts.find((a) => a.account === 'alice')!.proxy).toBe(current.alice);
    console.log(`[fleet] children: alice held by ${stats.accounts.find((a) => a.account === 'alice')!.holders.length} instances (parent, Worker, child ${pids.child}, cluster worker ${pids.cluster}), all on ${ipOf(current.alice)}`);
  }, 60_000);

  it('one configuration in the fleet: no fleet-mismatch in any of them, the CLI says so and exits 0', async () => {
    const stats = await fleet();
    expect(stats.instances.length).toBe(4);
    // A route child configures alice alone, the Worker and cluster worker alice's pool from its second proxy on:
    // parts of the parent's configuration, not another one.
    expect(stats.fingerprints).toHaveLength(1);
    const mismatches = parent.messages.filter((m) => m.type === 'event' && m.event === 'fleet-mismatch');
    expect(mismatches.map((m) => `${String(m.from ?? 'parent')}: ${JSON.stringify(m.instances)}`)).toEqual([]);
    const cli = await run([`${root}/dist/cli.mjs`, 'fleet', '--store', world.redis.url, '--prefix', prefix]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect(cli.stdout).toContain('one configuration in the fleet');
    expect(cli.stdout + cli.stderr).not.toContain(redisPassword);
  });

  it('rotate(alice) in the parent moves the child, the Worker and the cluster worker; alice never on two egresses at once', async () => {
    const t = Date.now();
    const moves: Array<{ to: string; at: number; ms: number }> = [];
    for (let i = 0; i < 2; i++) {
      const r = await parent.ask('rotate', { account: 'alice' });
      moves.push({ to: ipOf(String(r.to)), at: Number(r.at), ms: Number(r.ms) });
      // Every process on the new egress before the next move.
      await until(() => (kinds.every((k) => requests(Number(r.at)).filter((x) => x.kind === k && x.ip === moves.at(-1)!.to).length >= 5) ? true : undefined), 10_000, 'every child on the new egress');
    }
    // Three proxies: two moves go to two egresses alice has not been on in the window (a move back would look like a lag).
    expect(new Set(moves.map((m) => m.to)).size).toBe(2);
    const s = requests(t - 1000).filter((r) => r.account === 'alice');
    // Each move changed alice's egress once on the merged timeline of all four processes: none lagged behind on the old one.
    expect(egressChanges(s).get('alice')).toBe(moves.length);
    expect(egressOverlaps(s, 5000)).toEqual([]);
    for (const [i, m] of moves.entries()) {
      const firstNew = s.find((r) => r.ip === m.to && r.at >= m.at - m.ms)!;
      const lastOld = s.filter((r) => r.at < firstNew.at).at(-1)!;
      const perKind = kinds.map((k) => `${k} +${s.find((r) => r.kind === k && r.ip === m.to && r.at >= m.at - m.ms)!.at - (m.at - m.ms)} ms`).join(', ');
      console.log(`[fleet] children: move ${i + 1}: rotate() ${m.ms} ms; last request on the old egress → first on the new ${firstNew.at - lastOld.at} ms (${lastOld.kind} → ${firstNew.kind}); first on the new egress after rotate(): ${perKind}`);
      expect(lastOld.ip).not.toBe(m.to);
    }
  }, 40_000);

  it('the Redis password stays in the configuration file: not in a spawned program’s environment, not on stderr (DEBUG on)', async () => {
    const leaks = (env: Record<string, string>): string[] => Object.entries(env).filter(([, v]) => v.includes(redisPassword) || v.includes(encodeURIComponent(redisPassword))).map(([k]) => k);
    const env = Object.fromEntries(String((await parent.ask('env')).env).split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env.SESSION_PROXY_CONFIG_REF).toMatch(/^\//);
    expect(env.SESSION_PROXY_STORE).toBeUndefined();
    expect(leaks(env)).toEqual([]);
    // The children's own environments (the Worker's is the env it was given).
    for (const kind of kinds) {
      const own = parent.messages.find((m) => m.type === 'hello' && from(kind, m))!.env as Record<string, string>;
      expect(own.SESSION_PROXY_ACCOUNT, kind).toBe('alice');
      expect(leaks(own), kind).toEqual([]);
    }
    expect(parent.stderr).toContain('session-proxy:route alice');
    expect(parent.stderr).not.toContain(redisPassword);
  });

  it('the parent paused past its lease: the children keep alice’s lease and egress; resumed, the parent finds its lease lost and rejoins alice there', async () => {
    const aliceIp = ipOf(((await parent.ask('current')).current as { alice: string }).alice);
    const mark = parent.messages.length;
    const tStop = Date.now();
    parent.kill('SIGSTOP');
    // The store drops the parent's two holder entries (its own and its Worker's) when their leases run out.
    const held = await until(async () => {
      const pids2 = holderPids(await fleet(), 'alice');
      return pids2.includes(parent.pid) ? undefined : pids2;
    }, 4 * ttl, 'the paused parent’s leases to run out');
    expect(held).toEqual([pids.child!, pids.cluster!].sort());
    const bob = (await fleet()).accounts.find((a) => a.account === 'bob')!;
    expect(bob.holders).toEqual([]);
    const tCont = Date.now();
    parent.kill('SIGCONT');
    const lost = await parent.waitFor((m) => m.type === 'event' && m.event === 'lease-lost' && m.account === 'alice' && !m.from, 10_000, mark);
    await until(() => (requests(tCont).filter((r) => r.kind === 'parent' && r.account === 'alice').length >= 5 ? true : undefined), 10_000, 'the parent’s alice requests again');
    const paused = requests(tStop).filter((r) => r.at < tCont);
    // While the parent was stopped: the child and the cluster worker went on, on alice's egress; nothing of the parent.
    for (const kind of ['child', 'cluster'] as const) expect(paused.filter((r) => r.kind === kind).length, kind).toBeGreaterThan(10);
    const parentWhilePaused = paused.filter((r) => r.kind === 'parent' || r.kind === 'worker');
    expect(parentWhilePaused.every((r) => r.at - tStop < 200), JSON.stringify(parentWhilePaused.map((r) => r.at - tStop))).toBe(true);
    const s = requests(tStop).filter((r) => r.account === 'alice');
    expect(new Set(s.map((r) => r.ip))).toEqual(new Set([aliceIp]));
    // The children outside the paused process never failed; the parent and its Worker failed closed until they had a lease again.
    const failed = parent.messages.slice(mark).filter((m) => m.type === 'fail');
    expect(failed.filter((m) => m.from === 'child' || m.from === 'cluster')).toEqual([]);
    expect([...new Set(failed.map((m) => String(m.code)))].filter((c) => c !== 'SP_ERR_PROXY_UNAVAILABLE')).toEqual([]);
    expect(holderPids(await fleet(), 'alice')).toEqual([parent.pid, parent.pid, pids.child!, pids.cluster!].sort());
    console.log(
      `[fleet] children: parent stopped ${tCont - tStop} ms; child and cluster worker sent ${paused.length - parentWhilePaused.length} requests meanwhile on ${aliceIp}; lease-lost in the parent ${Number(lost.at) - tCont} ms after SIGCONT; the parent and its Worker then failed closed ${failed.length} times until they rejoined`,
    );
  }, 40_000);

  it('the parent killed: the child outlives it and keeps alice’s lease and egress alone', async () => {
    const aliceIp = ipOf(((await parent.ask('current')).current as { alice: string }).alice);
    const tKill = Date.now();
    parent.kill('SIGKILL');
    await until(() => (parent.exited ? true : undefined), 5000, 'the parent to exit');
    // The Worker dies with the parent; the cluster worker exits when its primary's channel closes; their entries and the parent's run out.
    const held = await until(async () => {
      const h = holderPids(await fleet(), 'alice');
      return h.length === 1 ? h : undefined;
    }, 4 * ttl, 'alice held by the child alone');
    expect(held).toEqual([pids.child]);
    await until(() => (!alive(pids.cluster!) ? true : undefined), 5000, 'the cluster worker to exit');
    const tAlone = Date.now();
    await until(() => (requests(tAlone).filter((r) => r.kind === 'child').length >= 10 ? true : undefined), 10_000, 'the child’s requests after the parent died');
    const s = requests(tKill);
    expect(new Set(s.filter((r) => r.account === 'alice').map((r) => r.ip))).toEqual(new Set([aliceIp]));
    // Nobody else on alice's egress; the child renews its lease alone.
    expect(s.filter((r) => r.ip === aliceIp && r.account !== 'alice')).toEqual([]);
    const after = (await fleet()).accounts.find((a) => a.account === 'alice')!;
    expect(after.holders.map((h) => h.pid)).toEqual([pids.child]);
    expect(after.holders[0]!.leaseLeftMs).toBeGreaterThan(0);
    console.log(`[fleet] children: parent killed; alice held by the child alone ${tAlone - tKill} ms later, ${requests(tKill).filter((r) => r.kind === 'child').length} child requests since, all on ${aliceIp}`);
    process.kill(pids.child!, 'SIGTERM');
    await until(() => (!alive(pids.child!) ? true : undefined), 5000, 'the child to exit');
  }, 40_000);
});
