/**
 * The egress watch: every active account's egress IP re-checked on an
 * interval, through the account's own route (as verifyEgress asks), so an IP
 * that changes under a sticky session — an idle timeout, a residential
 * device going offline — never goes unnoticed, and two accounts found on one
 * IP are reported (`sameIpAs`).
 *
 * Cost and shape: off by default; one small request per account per
 * interval at most (one endpoint, the one that answered last); each account
 * on its own random phase, so a fleet of accounts does not probe in lockstep;
 * the next check is due one interval after the previous one started, so a
 * change is seen within one interval plus the probe's own time. Only
 * accounts that have routed traffic (or were verified) are checked: a probe
 * through a residential gateway is billed traffic, and stats() reports the
 * requests and bytes the watch used.
 *
 * This file decides what an observation means (a change within the same
 * session, a shared IP); the manager acts on it (event, quarantine, rotate).
 */
import { ConfigError } from '../errors.js';
import type { ProxyInfo } from '../proxy/endpoint.js';

export type WatchAction = 'event' | 'quarantine' | 'rotate';

export interface WatchEgressOptions {
  /** How often each active account's egress is re-checked (ms). */
  interval: number;
  /**
   * On a change within a sticky session: `event` reports it (`egress-change`); `quarantine` also
   * stops the account's traffic (EgressChangedError) until `verifyEgress(account, { accept: true })`
   * or `rotate()`; `rotate` moves the account to a new session (or proxy) and verifies it.
   * @default 'event'
   */
  onChange?: WatchAction;
}

export interface WatchEgressConfig extends WatchEgressOptions {
  /** Per account: other settings, or `false` to leave an account unwatched. */
  accounts?: Record<string, Partial<WatchEgressOptions> | false>;
}

/** `egress-change`: `from` → `to` within one session; `sameIpAs`: other accounts seen on `to`. */
export interface EgressChangeEvent {
  readonly account: string;
  readonly from: string;
  readonly to: string;
  readonly proxy: ProxyInfo;
  readonly sameIpAs?: string[];
  /** What the watch (or the verification) did about it. */
  readonly action: WatchAction | 'new-session';
}

export interface WatchStats {
  /** Checks run, probe requests sent (one per check), and how many failed (no endpoint answered). */
  checks: number;
  requests: number;
  failures: number;
  /** Changes within a session, and shared IPs, found. */
  changes: number;
  sameIp: number;
  /** What the probes carried through the proxies (billed traffic on residential plans). */
  bytesSent: number;
  bytesReceived: number;
}

interface Baseline {
  ip: string;
  /** The identity of the proxy (session) the IP was seen through: a new session starts a new baseline. */
  identity: string;
  endpoint: string | undefined;
}

export interface WatchDeps {
  /** The identity of the account's active proxy now (undefined: the account is gone). */
  identity(account: string): string | undefined;
  /** Runs one check (probe, observe, act). */
  check(account: string): Promise<void>;
}

export interface Observation {
  /** A change within the same session, if any. */
  readonly change?: { from: string; to: string };
  /** Other accounts whose current session is on this IP. */
  readonly sameIpAs: string[];
}

const MAX_TIMEOUT = 2 ** 31 - 1;

export function checkWatchOptions(o: unknown, path = 'watchEgress'): WatchEgressConfig | undefined {
  if (o === undefined || o === false) return undefined;
  const fail = (why: string): never => {
    throw new ConfigError(`${path}${why}`);
  };
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail(': expected { interval, onChange }');
  const c = o as Record<string, unknown>;
  const one = (v: Record<string, unknown>, at: string, partial: boolean): void => {
    if (!(partial && v.interval === undefined) && !(typeof v.interval === 'number' && Number.isFinite(v.interval) && v.interval > 0 && v.interval <= MAX_TIMEOUT)) fail(`${at}.interval: expected a positive number of milliseconds`);
    if (v.onChange !== undefined && !['event', 'quarantine', 'rotate'].includes(v.onChange as string)) fail(`${at}.onChange: expected "event", "quarantine" or "rotate"`);
  };
  one(c, '', false);
  if (c.accounts !== undefined) {
    if (c.accounts === null || typeof c.accounts !== 'object' || Array.isArray(c.accounts)) fail('.accounts: expected an object of account names');
    for (const [name, v] of Object.entries(c.accounts as Record<string, unknown>)) {
      if (v === false) continue;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`.accounts.${name}: expected { interval?, onChange? } or false`);
      one(v as Record<string, unknown>, `.accounts.${name}`, true);
    }
  }
  return c as unknown as WatchEgressConfig;
}

export class EgressWatch {
  private readonly baselines = new Map<string, Baseline>();
  private readonly active = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly counters: WatchStats = { checks: 0, requests: 0, failures: 0, changes: 0, sameIp: 0, bytesSent: 0, bytesReceived: 0 };
  private running = false;

  constructor(private readonly config: WatchEgressConfig | undefined, private readonly deps: WatchDeps, private readonly random: () => number = Math.random) {}

  /** The settings for one account; undefined: not watched. */
  optionsFor(account: string): Required<WatchEgressOptions> | undefined {
    if (!this.config) return undefined;
    const own = this.config.accounts?.[account];
    if (own === false) return undefined;
    return { interval: own?.interval ?? this.config.interval, onChange: own?.onChange ?? this.config.onChange ?? 'event' };
  }

  /** The account routed traffic: from now on it is checked (if watched). */
  touch(account: string): void {
    if (this.active.has(account)) return;
    this.active.add(account);
    if (this.running) this.schedule(account, true);
  }

  /** The IP last seen for the account, and the endpoint that answered. */
  baseline(account: string): { ip: string; endpoint: string | undefined } | undefined {
    return this.baselines.get(account);
  }

  /**
   * Records what a check or a verification saw. A different IP through the same session is a
   * change (`accept` takes it as the new normal without one); other accounts whose current session
   * was last seen on this IP share it.
   */
  observe(account: string, ip: string, identity: string, endpoint: string | undefined, o: { accept?: boolean } = {}): Observation {
    const before = this.baselines.get(account);
    const change = before && before.identity === identity && before.ip !== ip && !o.accept ? { from: before.ip, to: ip } : undefined;
    this.baselines.set(account, { ip, identity, endpoint });
    const sameIpAs: string[] = [];
    for (const [other, b] of this.baselines) {
      if (other !== account && b.ip === ip && this.deps.identity(other) === b.identity) sameIpAs.push(other);
    }
    if (change) this.counters.changes++;
    if (sameIpAs.length) this.counters.sameIp++;
    this.touch(account);
    return change ? { change, sameIpAs } : { sameIpAs };
  }

  /** A probe's cost, counted when its connection closed. */
  probed(ok: boolean, bytesSent: number, bytesReceived: number): void {
    this.counters.requests++;
    if (!ok) this.counters.failures++;
    this.counters.bytesSent += bytesSent;
    this.counters.bytesReceived += bytesReceived;
  }

  stats(): WatchStats {
    return { ...this.counters };
  }

  forget(account: string): void {
    this.baselines.delete(account);
    this.active.delete(account);
    clearTimeout(this.timers.get(account));
    this.timers.delete(account);
  }

  start(): void {
    if (!this.config) return;
    this.running = true;
    for (const account of this.active) this.schedule(account, true);
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(account: string, first: boolean, delay?: number): void {
    const o = this.optionsFor(account);
    if (!o || !this.running) return;
    clearTimeout(this.timers.get(account));
    // Each account on its own phase: the first check somewhere within the first interval.
    const wait = delay ?? (first ? this.random() * o.interval : o.interval);
    const timer = setTimeout(() => void this.tick(account, o.interval), wait);
    timer.unref();
    this.timers.set(account, timer);
  }

  private async tick(account: string, interval: number): Promise<void> {
    this.timers.delete(account);
    if (!this.running || this.deps.identity(account) === undefined) return;
    const started = Date.now();
    this.counters.checks++;
    try {
      await this.deps.check(account);
    } catch {
      // A failed check is counted by probed(); the next one runs on schedule.
    }
    // Due one interval after this one started.
    if (this.running && this.active.has(account)) this.schedule(account, false, Math.max(0, interval - (Date.now() - started)));
  }
}
