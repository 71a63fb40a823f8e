/**
 * Rotating gateways in a fleet (real redis-server, the mock gateway): an
 * account on a gateway used by two processes is on ONE session — one exit
 * IP — in both, although each process proposes its own; two accounts on the
 * same gateway URL keep two sessions; rotate() in one process moves both to
 * the next session; a restarted process gets the account's session back;
 * the gateway's password is nowhere in Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needsDist } from '../ecosystem/support/run.js';
import { startMockGateway, type MockGateway } from '../../src/testing/index.js';
import { readFleet } from '../../src/store/index.js';
import { noRedis } from '../support/redis-server.js';
import { Worker, egressOverlaps, seen, startWorld, until, type World } from './support.js';

const ttl = 2000;
const EGRESS = Array.from({ length: 8 }, (_, i) => `127.0.0.${60 + i}`);
const PASSWORD = 'gw-Secr3t-pw';

describe.skipIf(noRedis || needsDist)('fleet: gateway sessions agreed through the store (2 processes, real redis-server)', () => {
  let world: World;
  let gw: MockGateway;
  const workers: Worker[] = [];
  let config: (use: string[]) => object;
  const sessionOf = (url: string): string => /sessid-([a-z0-9]+)/.exec(decodeURIComponent(url))?.[1] ?? `none in ${url}`;
  beforeAll(async () => {
    world = await startWorld(0);
    gw = await startMockGateway({ vendor: 'oxylabs', egressIps: EGRESS, auth: { username: 'customer-acme', password: PASSWORD } });
    const gateway = { url: gw.urlFor('http', { username: 'customer-acme', password: PASSWORD }), gateway: 'oxylabs', country: 'de' };
    config = (use) => ({ accounts: { alice: gateway, bob: gateway }, use, echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: ttl, prefix: 'gateways' }, gapMs: 25 });
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await gw?.close();
    await world?.close();
  }, 30_000);

  it('one session per account in both processes (each proposed its own), one exit IP each; two accounts, two sessions', async () => {
    const a = new Worker(config(['alice', 'bob']));
    const b = new Worker(config(['alice', 'bob']));
    workers.push(a, b);
    for (const w of [a, b]) for (const account of ['alice', 'bob']) await w.waitFor((m) => m.type === 'first' && m.account === account, 15_000);
    const ca = (await a.ask('current')).current as Record<string, string>;
    const cb = (await b.ask('current')).current as Record<string, string>;
    expect(sessionOf(cb.alice!)).toBe(sessionOf(ca.alice!));
    expect(sessionOf(cb.bob!)).toBe(sessionOf(ca.bob!));
    expect(sessionOf(ca.alice!)).not.toBe(sessionOf(ca.bob!));
    expect(ca.alice).not.toContain(PASSWORD);

    const from = Date.now();
    await until(() => (seen(world.echo.timeline, from).filter((r) => r.account === 'alice').length > 30 ? true : undefined), 10_000, 'traffic');
    const s = seen(world.echo.timeline, from);
    const ips = (account: string): Set<string> => new Set(s.filter((r) => r.account === account).map((r) => r.ip));
    expect(new Set(s.filter((r) => r.account === 'alice').map((r) => r.pid)).size).toBe(2); // both processes sent
    expect([...ips('alice')]).toHaveLength(1);
    expect([...ips('bob')]).toHaveLength(1);
    expect([...ips('alice')][0]).not.toBe([...ips('bob')][0]);
    expect(s.some((r) => !EGRESS.includes(r.ip))).toBe(false); // nothing direct
    // What the gateway received: only the two agreed sessions, from both processes (each minted others it never used).
    const used = new Set(gw.log.filter((e) => e.session !== undefined).map((e) => e.session));
    expect(used).toEqual(new Set([sessionOf(ca.alice!), sessionOf(ca.bob!)]));
    console.log(`[fleet gateways] alice session ${sessionOf(ca.alice!)} → ${[...ips('alice')][0]}, bob ${sessionOf(ca.bob!)} → ${[...ips('bob')][0]}; ${s.length} requests from 2 processes, ${used.size} sessions at the gateway`);
  }, 40_000);

  it('rotate() in one process: both on the next session; no request of alice on two exits in overlapping time', async () => {
    const [a, b] = workers as [Worker, Worker];
    const before = sessionOf(((await a.ask('current')).current as Record<string, string>).alice!);
    const from = Date.now();
    const r = await a.ask('rotate', { account: 'alice' });
    const next = sessionOf(String(r.to));
    expect(next).not.toBe(before);
    await until(async () => (sessionOf(((await b.ask('current')).current as Record<string, string>).alice!) === next ? true : undefined), 3 * ttl, 'the other process on the new session');
    const at = Date.now();
    // Requests created once both processes are on the new session (those in flight at the move may finish on the old one).
    const after = (): Array<{ ip: unknown; pid: number }> => [a, b].flatMap((w) => w.messages.filter((m) => m.type === 'ok' && m.account === 'alice' && Number(m.sent) >= at).map((m) => ({ ip: m.ip, pid: w.pid })));
    await until(() => (new Set(after().map((x) => x.pid)).size === 2 && after().length > 20 ? true : undefined), 10_000, 'traffic of both processes after the move');
    const s = seen(world.echo.timeline, from);
    const exitOf = gw.session(next)!.egressIp;
    expect(new Set(after().map((x) => x.ip))).toEqual(new Set([exitOf]));
    expect(egressOverlaps(s.filter((x) => x.account === 'alice'), 500)).toEqual([]);
    console.log(`[fleet gateways] rotate in one process: alice ${before} → ${next} (${exitOf}) in both, move ${String(r.ms)} ms`);
  }, 40_000);

  it('a process restarted with the same configuration: the account is back on its session', async () => {
    const current = sessionOf(((await workers[0]!.ask('current')).current as Record<string, string>).alice!);
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    const c = new Worker(config(['alice']));
    workers.push(c);
    await c.waitFor((m) => m.type === 'first' && m.account === 'alice', 15_000);
    expect(sessionOf(((await c.ask('current')).current as Record<string, string>).alice!)).toBe(current);
  }, 40_000);

  it('a session lifetime ending: one move for the fleet (the timers of both processes fire), both on each next session', async () => {
    const soax = await startMockGateway({ vendor: 'soax', egressIps: EGRESS });
    try {
      const gateway = { url: soax.urlFor('http', { username: 'package-123456', password: PASSWORD }), gateway: 'soax', lifetime: '3s' };
      const cfg = { accounts: { carol: gateway }, use: ['carol'], echo: world.echo.httpUrl, store: { url: world.redis.url, leaseTtl: ttl, prefix: 'lifetime' }, gapMs: 25 };
      const pair = [new Worker(cfg), new Worker(cfg)];
      workers.push(...pair);
      for (const w of pair) await w.waitFor((m) => m.type === 'first' && m.account === 'carol', 15_000);
      const from = Date.now();
      // Two lifetimes (3 s, renewed 300 ms early): at least two moves.
      const moves = (w: Worker): number => w.messages.filter((m) => m.type === 'event' && m.event === 'rotate' && m.reason === 'lifetime').length;
      await until(() => (pair.every((w) => moves(w) >= 2) ? true : undefined), 12_000, 'two lifetime moves in both processes');
      const s = seen(world.echo.timeline, from).filter((r) => r.account === 'carol');
      await Promise.all(pair.map((w) => w.stop()));
      const carol = (await readFleet({ url: world.redis.url, prefix: 'lifetime' })).accounts.find((x) => x.account === 'carol')!;
      const sessions = new Set(soax.log.filter((e) => e.session !== undefined).map((e) => e.session));
      const story = (): string => JSON.stringify({ carol, events: pair.map((w) => w.messages.filter((m) => m.type === 'event')), log: soax.log.map((e) => [e.session, e.openedAt - from, e.status]) });
      // No session outside the store's assignments: had each process moved on its own, there would be one per timer.
      expect(sessions.size, story()).toBeLessThanOrEqual(carol.version);
      for (const w of pair) expect(moves(w), story()).toBeLessThanOrEqual(carol.version - 1);
      // One move per lifetime (renewed 300 ms early: every 2.7 s), not one per process.
      const started = Math.min(...pair.map((w) => Number(w.messages.find((m) => m.type === 'first')!.at)));
      expect(carol.version - 1, story()).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 2700) + 1);
      expect(new Set(s.map((r) => r.pid)).size).toBe(2);
      expect(egressOverlaps(s, 500)).toEqual([]);
      console.log(`[fleet gateways] lifetime 3 s over ${Date.now() - from} ms: ${carol.version - 1} moves in the store, ${sessions.size} sessions at the gateway, lifetime rotate events ${pair.map(moves).join(' / ')} (the process that lost the race adopts the winner's session)`);
    } finally {
      await soax.close();
    }
  }, 40_000);

  it('nothing secret in Redis: the gateway password is in no key or value', async () => {
    const keys = (await world.redis.command('KEYS', '*')) as string[];
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(k).not.toContain(PASSWORD);
      const type = String(await world.redis.command('TYPE', k));
      const value = type === 'hash' ? await world.redis.command('HGETALL', k) : type === 'set' ? await world.redis.command('SMEMBERS', k) : type === 'string' ? await world.redis.command('GET', k) : [];
      expect(JSON.stringify(value)).not.toContain(PASSWORD);
    }
  });
});
