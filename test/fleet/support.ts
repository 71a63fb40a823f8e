/**
 * A loopback fleet for tests: a real redis-server, an echo server, mock
 * proxies each leaving from its own 127.0.0.x (so the echo server's timeline
 * says which egress a request took), and worker processes
 * (fixtures/fleet-worker.mjs) started with fork and driven over IPC.
 * Analyses of the timeline check the fleet invariants.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { startEchoServer, startMockProxy, type EchoServer, type EchoTimelineEntry, type MockProxy } from '../../src/testing/index.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';

const workerFile = fileURLToPath(new URL('./fixtures/fleet-worker.mjs', import.meta.url));

/** The echo server and the mock proxies, without a store (a Cluster or Sentinel test brings its own). */
export interface Network {
  echo: EchoServer;
  proxies: MockProxy[];
  /** Egress IP of proxy i. */
  egress: string[];
  /** Proxy URL of proxy i, with its password. */
  urls: string[];
  passwords: string[];
  close(): Promise<void>;
}

export interface World extends Network {
  redis: RedisServer;
}

export async function startWorld(n: number, options: { redisPassword?: string } = {}): Promise<World> {
  const redis = await startRedis({ password: options.redisPassword });
  const network = await startNetwork(n);
  return {
    ...network,
    redis,
    async close() {
      await network.close();
      await redis.close();
    },
  };
}

export async function startNetwork(n: number): Promise<Network> {
  const echo = await startEchoServer();
  const proxies: MockProxy[] = [];
  const egress: string[] = [];
  const passwords: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = `127.0.${Math.floor(i / 200) + 1}.${(i % 200) + 10}`;
    const password = `pw-${i}-Secr3t-${process.pid}`;
    proxies.push(await startMockProxy({ egressIp: ip, auth: { username: `user${i}`, password } }));
    egress.push(ip);
    passwords.push(password);
  }
  return {
    echo,
    proxies,
    egress,
    passwords,
    urls: proxies.map((p) => p.url),
    async close() {
      await Promise.allSettled([echo.close(), ...proxies.map((p) => p.close())]);
    },
  };
}

export interface WorkerMessage {
  type: string;
  id?: number;
  account?: string;
  at?: number;
  [k: string]: unknown;
}

export interface WorkerOptions {
  /** The fixture to fork. @default fixtures/fleet-worker.mjs */
  file?: string;
  /** More environment variables. */
  env?: NodeJS.ProcessEnv;
  /** Collect stderr (of the process and of descendants that inherit it) in `stderr` instead of passing it through. */
  captureStderr?: boolean;
}

export class Worker {
  readonly messages: WorkerMessage[] = [];
  readonly child: ChildProcess;
  /** What the process (and descendants sharing its stderr) wrote there, with captureStderr. */
  stderr = '';
  private nextId = 1;
  private readonly listeners = new Set<() => void>();
  exited = false;

  constructor(config: object, options: WorkerOptions = {}) {
    this.child = fork(options.file ?? workerFile, [], {
      env: { PATH: process.env.PATH, ...options.env, FLEET_WORKER: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', options.captureStderr ? 'pipe' : 'inherit', 'ipc'],
      execArgv: [],
    });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.child.on('message', (m) => {
      this.messages.push(m as WorkerMessage);
      for (const l of [...this.listeners]) l();
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const l of [...this.listeners]) l();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first message (from `since`) matching, or rejects after `ms`. */
  waitFor(pred: (m: WorkerMessage) => boolean, ms = 10_000, since = 0): Promise<WorkerMessage> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.messages.slice(since).find(pred);
        if (found) {
          cleanup();
          resolve(found);
          return true;
        }
        if (this.exited) {
          cleanup();
          reject(new Error(`worker ${this.pid} exited`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`worker ${this.pid}: no matching message within ${ms} ms`));
      }, ms);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = (): void => void check();
      this.listeners.add(listener);
      check();
    });
  }

  /** A command and its answer. */
  async ask(cmd: string, extra: object = {}, ms = 10_000): Promise<WorkerMessage> {
    const id = this.nextId++;
    this.child.send({ cmd, id, ...extra });
    const reply = await this.waitFor((m) => m.id === id, ms);
    if (reply.type === 'error') throw new Error(`worker ${this.pid} ${cmd}: ${String(reply.message)} (${String(reply.code)})`);
    return reply;
  }

  async stop(): Promise<WorkerMessage | undefined> {
    if (this.exited) return undefined;
    const r = await this.ask('stop', {}, 15_000).catch(() => undefined);
    if (!this.exited) await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
    return r;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child.kill(signal);
  }
}

/** A request seen by the echo server, with its account and process (from the path). */
export interface Seen {
  at: number;
  ip: string;
  account: string;
  pid: number;
  /** The process's sequence number for the account's requests (`s` in the path), when given. */
  seq?: number;
}

export function seen(timeline: readonly EchoTimelineEntry[], from = 0): Seen[] {
  const out: Seen[] = [];
  for (const t of timeline) {
    if (t.at < from) continue;
    const q = new URL(t.path, 'http://x').searchParams;
    const account = q.get('a');
    if (account) out.push({ at: t.at, ip: t.ip, account, pid: Number(q.get('p')), ...(q.has('s') ? { seq: Number(q.get('s')) } : {}) });
  }
  return out.sort((a, b) => a.at - b.at);
}

export interface Handover {
  ip: string;
  from: string;
  to: string;
  /** From the last request of `from` to the first of `to` on the egress. */
  gapMs: number;
  lastFrom: Seen;
  firstTo: Seen;
}

/**
 * One egress, one account: on each egress IP, the time between the last
 * request of one account and the first of the next one (a handover). The
 * protocol keeps it above 2 × margin (the releasing process's deadline ends
 * a margin before its lease, the quarantine a margin after).
 */
export function handovers(s: readonly Seen[]): Handover[] {
  const last = new Map<string, Seen>();
  const out: Handover[] = [];
  for (const r of s) {
    const prev = last.get(r.ip);
    if (prev && prev.account !== r.account) out.push({ ip: r.ip, from: prev.account, to: r.account, gapMs: r.at - prev.at, lastFrom: prev, firstTo: r });
    last.set(r.ip, r);
  }
  return out;
}

/**
 * One account, one egress: for each account, requests that arrived through
 * an egress it had already left, after a request through its new one (a
 * drained in-flight request, or a violation when later than the drain window).
 */
export function egressOverlaps(s: readonly Seen[], windowMs = 1000): Array<{ account: string; ip: string; afterMs: number }> {
  const byAccount = new Map<string, Seen[]>();
  for (const r of s) byAccount.set(r.account, [...(byAccount.get(r.account) ?? []), r]);
  const out: Array<{ account: string; ip: string; afterMs: number }> = [];
  for (const [account, list] of byAccount) {
    for (let i = 1; i < list.length; i++) {
      const left = list[i - 1]!.ip;
      if (list[i]!.ip === left) continue;
      // A switch at list[i]: the first request through the egress it left, if within windowMs, overlaps.
      const t = list[i]!.at;
      const back = list.slice(i + 1).find((x) => x.ip === left);
      if (back && back.at - t <= windowMs) out.push({ account, ip: left, afterMs: back.at - t });
    }
  }
  return out;
}

/**
 * How many times each account's egress changed on the timeline. Every change
 * must be a move (rotate or failover): an account that showed two egresses
 * at once (or an old one again after a new one, as a drained request
 * arriving late would) changes more often than it moved.
 */
export function egressChanges(s: readonly Seen[]): Map<string, number> {
  const last = new Map<string, string>();
  const out = new Map<string, number>();
  for (const r of s) {
    const prev = last.get(r.account);
    if (prev !== undefined && prev !== r.ip) out.set(r.account, (out.get(r.account) ?? 0) + 1);
    last.set(r.account, r.ip);
  }
  return out;
}

/** Polls `check` every 50 ms until it returns a value, at most `ms`. */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Processes a (alice, bob) and b (alice, bob, carol), all serving: the shared
 * accounts are on one proxy in both, the three accounts on three proxies, and
 * the echo server's timeline agrees (one egress for alice, no egress passed
 * between accounts, nothing direct).
 */
export async function expectOneEgressPerAccount(a: Worker, b: Worker, echo: EchoServer): Promise<void> {
  const ca = (await a.ask('current')).current as Record<string, string>;
  const cb = (await b.ask('current')).current as Record<string, string>;
  expect(ca.alice).toBe(cb.alice);
  expect(ca.bob).toBe(cb.bob);
  expect(new Set([cb.alice, cb.bob, cb.carol]).size).toBe(3);
  // Let traffic flow, then check the echo server's timeline.
  const from = Date.now();
  await until(() => (seen(echo.timeline, from).length > 60 ? true : undefined), 10_000, 'traffic');
  const s = seen(echo.timeline, from);
  expect(new Set(s.filter((r) => r.account === 'alice').map((r) => r.ip)).size).toBe(1);
  expect(handovers(s)).toEqual([]);
  expect(s.some((r) => r.ip === '127.0.0.1')).toBe(false); // nothing direct
}
