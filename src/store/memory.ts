/**
 * The in-process store: the lease protocol's reference semantics in plain
 * TypeScript (the Redis scripts in store/scripts.ts do the same on the
 * server). One process, one clock; `store: 'memory:'` selects it (an app's
 * fleet code paths without Redis), and the protocol tests run against it and
 * against a real redis-server alike. Without any `store` option the manager
 * keeps its in-process state as before and none of this runs.
 */
import type {
  AcquireReply,
  AcquireRequest,
  Assignment,
  Candidate,
  FleetMessage,
  FleetSnapshot,
  FleetStore,
  HealthReply,
  InstanceInfo,
  LeaseTiming,
  MoveReply,
  MoveRequest,
  PollReply,
  ReleaseRequest,
  RenewReply,
  RenewRequest,
  SessionRecord,
  StatsRow,
} from './types.js';

interface ProxyRec {
  owner?: string;
  until: number;
  url?: string;
  down: number;
  error?: string;
  probe?: string;
  probeUntil: number;
}

interface Holder {
  expiry: number;
  ack: number;
  pool?: readonly string[];
}

interface AccountRec {
  proxy?: string;
  ver: number;
  state: 'ready' | 'moving';
  barrierUntil: number;
  reason?: string;
  /** On a gateway slot: the account's session there. */
  session?: SessionRecord;
  holders: Map<string, Holder>;
}

export class MemoryStore implements FleetStore {
  readonly kind = 'memory' as const;
  readonly where = 'memory:';
  private epoch: { id: string; at: number } | undefined;
  private av = 0;
  private hv = 0;
  private readonly accounts = new Map<string, AccountRec>();
  private readonly proxies = new Map<string, ProxyRec>();
  private readonly instances = new Map<string, InstanceInfo & { seen: number }>();
  private readonly stats = new Map<string, StatsRow>();
  private readonly listeners = new Set<(m: FleetMessage) => void>();

  /** @param clock the store's clock (tests pass a fake one) */
  constructor(private readonly clock: () => number = Date.now) {}

  async connect(): Promise<void> {}
  async close(): Promise<void> {
    this.listeners.clear();
  }
  onState(): void {}
  async subscribe(listener: (m: FleetMessage) => void): Promise<void> {
    this.listeners.add(listener);
  }

  /** Forgets everything, as a Redis restarted without persistence does (tests). */
  wipe(): void {
    this.epoch = undefined;
    this.accounts.clear();
    this.proxies.clear();
    this.instances.clear();
    this.stats.clear();
  }

  async hello(info: InstanceInfo, t: LeaseTiming): Promise<InstanceInfo[]> {
    const now = this.clock();
    this.instances.set(info.instance, { ...info, seen: now });
    for (const [id, i] of this.instances) if (i.seen < now - 3 * t.ttl) this.instances.delete(id);
    return [...this.instances.values()].filter((i) => i.instance !== info.instance);
  }

  async acquire(r: AcquireRequest): Promise<AcquireReply> {
    const now = this.clock();
    const e = this.epochFor(r.newEpoch, now);
    const settle = e.at + r.ttl + r.margin - now;
    if (settle > 0) return { status: 'settling', epoch: e.id, now, retryIn: settle };
    const a = this.account(r.account);
    this.prune(a, now);
    const keys = r.candidates.map((c) => c.key);
    if (a.proxy !== undefined && a.holders.size > 0 && !a.holders.has(r.instance)) {
      if (!keys.includes(a.proxy)) return { status: 'mismatch', epoch: e.id, now, proxy: a.proxy };
    }
    if (a.proxy === undefined || a.holders.size === 0) {
      // Nobody uses the account: keep its sticky proxy (and its session on a gateway) if it is still free and up, else pick.
      const sticky = a.proxy !== undefined ? r.candidates.find((c) => c.key === a.proxy) : undefined;
      const order = sticky ? [{ ...sticky, session: a.session ?? sticky.session }, ...r.candidates.filter((c) => c !== sticky)] : r.candidates;
      const chosen = this.pick(order, r.account, r.exclusive, r.margin, now);
      if (!chosen) return { status: 'none', epoch: e.id, now };
      if (chosen.key !== a.proxy) {
        a.proxy = chosen.key;
        a.ver++;
        a.reason = 'acquire';
        this.av++;
      }
      a.session = chosen.session;
      a.state = 'ready';
      this.claim(chosen, r.account, r.exclusive, now + r.ttl);
    }
    this.extend(a, r.account, r.exclusive, now + r.ttl);
    const held = a.holders.get(r.instance);
    a.holders.set(r.instance, { expiry: now + r.ttl, ack: held ? held.ack : a.ver, pool: keys });
    return { status: 'ok', epoch: e.id, now, ...this.assignment(r.account, a) };
  }

  async renew(r: RenewRequest): Promise<RenewReply> {
    const now = this.clock();
    const e = this.epochFor(r.newEpoch, now);
    if (e.id !== r.epoch) return { status: 'epoch', epoch: e.id, now, retryIn: Math.max(0, e.at + r.ttl + r.margin - now) };
    const i = this.instances.get(r.instance);
    if (i) i.seen = now;
    const out: Array<({ held: true } & Assignment) | { account: string; held: false }> = [];
    for (const { account, ack } of r.accounts) {
      const a = this.accounts.get(account);
      if (a) this.prune(a, now);
      const h = a?.holders.get(r.instance);
      if (!a || !h || a.proxy === undefined) {
        out.push({ account, held: false });
        continue;
      }
      h.expiry = now + r.ttl;
      if (ack > h.ack) h.ack = Math.min(ack, a.ver);
      this.extend(a, account, r.exclusive, now + r.ttl);
      this.settle(account, a, now);
      out.push({ held: true, ...this.assignment(account, a) });
    }
    return { status: 'ok', epoch: e.id, now, accounts: out };
  }

  async move(r: MoveRequest): Promise<MoveReply> {
    const now = this.clock();
    const e = this.epochFor(r.newEpoch, now);
    if (e.id !== r.epoch) return { status: 'epoch', epoch: e.id, now, retryIn: Math.max(0, e.at + r.ttl + r.margin - now) };
    const settle = e.at + r.ttl + r.margin - now;
    if (settle > 0) return { status: 'settling', epoch: e.id, now, retryIn: settle };
    const a = this.accounts.get(r.account);
    if (a) this.prune(a, now);
    const h = a?.holders.get(r.instance);
    if (!a || !h || a.proxy === undefined) return { status: 'lost', epoch: e.id, now };
    if (a.ver !== r.fromVer) return { status: 'stale', epoch: e.id, now, ...this.assignment(r.account, a) };
    // Only proxies every live holder's pool has (a rolling deploy may differ).
    const pools = [...a.holders.values()].map((x) => x.pool).filter((x): x is readonly string[] => x !== undefined);
    // The current proxy only with another session (a new session on the same gateway).
    const elsewhere = (c: Candidate): boolean => c.key !== a.proxy || (c.session !== undefined && c.session.id !== a.session?.id);
    const order = r.candidates.filter((c) => elsewhere(c) && pools.every((pool) => pool.includes(c.key)));
    const chosen = this.pick(order, r.account, r.exclusive, r.margin, now);
    if (!chosen) return { status: 'none', epoch: e.id, now };
    this.extend(a, r.account, r.exclusive, now + r.ttl);
    this.claim(chosen, r.account, r.exclusive, now + r.ttl);
    a.proxy = chosen.key;
    a.session = chosen.session;
    a.ver++;
    a.reason = r.reason;
    h.ack = a.ver;
    h.expiry = now + r.ttl;
    a.barrierUntil = now + r.ttl;
    a.state = a.holders.size > 1 ? 'moving' : 'ready';
    this.av++;
    this.publish({ t: 'move', a: r.account, v: a.ver });
    return { status: 'ok', epoch: e.id, now, ...this.assignment(r.account, a) };
  }

  async release(r: ReleaseRequest): Promise<void> {
    const now = this.clock();
    const a = this.accounts.get(r.account);
    if (!a || !a.holders.delete(r.instance)) return;
    this.prune(a, now);
    this.extend(a, r.account, r.exclusive, now + r.ttl);
    this.settle(r.account, a, now);
  }

  async down(key: string, durationMs: number, error: string | undefined): Promise<void> {
    const p = this.proxy(key);
    p.down = Math.max(p.down, this.clock() + durationMs);
    p.error = error;
    this.hv++;
    this.publish({ t: 'health', k: key });
  }

  async up(key: string): Promise<void> {
    const p = this.proxy(key);
    p.down = 0;
    p.probe = undefined;
    p.probeUntil = 0;
    this.hv++;
    this.publish({ t: 'health', k: key });
  }

  async claimProbe(key: string, instance: string, leaseMs: number): Promise<boolean> {
    const now = this.clock();
    const p = this.proxy(key);
    if (p.probe !== undefined && p.probe !== instance && p.probeUntil > now) return false;
    p.probe = instance;
    p.probeUntil = now + leaseMs;
    return true;
  }

  async health(keys: readonly string[]): Promise<HealthReply> {
    const now = this.clock();
    const proxies: Record<string, { down: number; error?: string; probe?: string }> = {};
    for (const k of keys) {
      const p = this.proxies.get(k);
      if (p) proxies[k] = { down: p.down, error: p.error, probe: p.probeUntil > now ? p.probe : undefined };
    }
    return { now, proxies };
  }

  async poll(): Promise<PollReply> {
    return { epoch: this.epoch?.id ?? '', av: this.av, hv: this.hv, now: this.clock() };
  }

  async addStats(rows: readonly StatsRow[]): Promise<void> {
    for (const r of rows) {
      const k = `${r.account}\0${r.key}`;
      const s = this.stats.get(k) ?? { account: r.account, key: r.key, url: r.url, requests: 0, failures: 0, bytesSent: 0, bytesReceived: 0 };
      this.stats.set(k, { ...s, requests: s.requests + r.requests, failures: s.failures + r.failures, bytesSent: s.bytesSent + r.bytesSent, bytesReceived: s.bytesReceived + r.bytesReceived });
    }
  }

  async snapshot(): Promise<FleetSnapshot> {
    const now = this.clock();
    return {
      now,
      epoch: this.epoch?.id ?? '',
      accounts: [...this.accounts]
        .filter(([, a]) => a.proxy !== undefined)
        .map(([name, a]) => ({
          ...this.assignment(name, a),
          barrierUntil: a.barrierUntil,
          holders: [...a.holders].filter(([, h]) => h.expiry > now).map(([instance, h]) => ({ instance, expiry: h.expiry, ack: h.ack })),
        })),
      proxies: [...this.proxies].map(([key, p]) => ({ key, url: p.url, owner: p.owner, until: p.until, down: p.down, error: p.error })),
      instances: [...this.instances.values()],
      stats: [...this.stats.values()],
    };
  }

  // --- the protocol's pieces ---------------------------------------------------

  private epochFor(newEpoch: string, now: number): { id: string; at: number } {
    return (this.epoch ??= { id: newEpoch, at: now });
  }

  private account(name: string): AccountRec {
    let a = this.accounts.get(name);
    if (!a) this.accounts.set(name, (a = { ver: 0, state: 'ready', barrierUntil: 0, holders: new Map() }));
    return a;
  }

  private proxy(key: string): ProxyRec {
    let p = this.proxies.get(key);
    if (!p) this.proxies.set(key, (p = { until: 0, down: 0, probeUntil: 0 }));
    return p;
  }

  private prune(a: AccountRec, now: number): void {
    for (const [id, h] of a.holders) if (h.expiry <= now) a.holders.delete(id);
  }

  /** A proxy `account` may take: up, and (exclusive) owned by nobody, by it, or quarantined long enough; a gateway session: up. */
  private pick(order: readonly Candidate[], account: string, exclusive: boolean, margin: number, now: number): Candidate | undefined {
    return order.find((c) => {
      const p = this.proxies.get(c.key);
      if (!p) return true;
      if (p.down > now) return false;
      return !exclusive || c.session !== undefined || p.owner === undefined || p.owner === account || now >= p.until + margin;
    });
  }

  private claim(c: Candidate, account: string, exclusive: boolean, until: number): void {
    const p = this.proxy(c.key);
    p.url = c.url;
    if (!exclusive || c.session !== undefined) return;
    if (p.owner !== account) p.until = 0;
    p.owner = account;
    p.until = Math.max(p.until, until);
  }

  /** Extends the account's hold on its proxy (a gateway session has none: it is the account's own). */
  private extend(a: AccountRec, account: string, exclusive: boolean, until: number): void {
    if (a.proxy === undefined || a.session !== undefined) return;
    const p = this.proxy(a.proxy);
    if (!exclusive || p.owner === account) p.until = Math.max(p.until, until);
  }

  /** Closes a move's barrier once every live holder acknowledged it, or its time is up. */
  private settle(name: string, a: AccountRec, now: number): void {
    if (a.state !== 'moving') return;
    if (now < a.barrierUntil && [...a.holders.values()].some((h) => h.ack < a.ver)) return;
    a.state = 'ready';
    this.publish({ t: 'ready', a: name, v: a.ver });
  }

  private assignment(account: string, a: AccountRec): Assignment {
    return { account, proxy: a.proxy!, ver: a.ver, state: a.state, reason: a.reason, ...(a.session ? { session: a.session } : {}) };
  }

  private publish(m: FleetMessage): void {
    for (const l of this.listeners) queueMicrotask(() => l(m));
  }
}
