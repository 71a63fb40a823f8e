/**
 * The fleet side of routing: leases, fences and moves agreed through the
 * store (store/), so that the invariants hold across processes:
 *
 * - **one proxy, one account**: an account's proxy is leased in the store
 *   by the instances using it; a lease is renewed every TTL/3, and each
 *   process keeps a local deadline (monotonic clock: the renewal's *send*
 *   time + TTL − margin). Past it, the account's new requests fail with
 *   ProxyUnavailableError and its tunnels refuse writes (guard/lease-fence)
 *   until a renewal succeeds; a renewal that finds the lease gone cuts the
 *   account's connections on that proxy before anything else is sent.
 * - **one account, one egress**: a move (rotate, failover) is one script
 *   in the store; every process using the account switches and
 *   acknowledges, and the account's new connections wait until all have
 *   (or their leases ran out), bounded by the TTL.
 * - **sticky**: the store keeps the account → proxy assignment; a restarted
 *   process gets it back.
 * - **shared health**: a cooldown is written to the store and announced;
 *   one instance probes for the fleet.
 *
 * Nothing here is on the request path while leases hold: the gate and the
 * fence compare a number with `performance.now()`.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ProxyUnavailableError, StoreUnavailableError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { HealthRegistry } from '../health/health-registry.js';
import type { TrafficStats } from '../health/traffic-stats.js';
import { fence } from '../guard/lease-fence.js';
import { configFingerprint, fleetKey, fleetUrl, sessionOf } from '../store/identity.js';
import type { Assignment, Candidate, FleetMessage, FleetSnapshot, FleetStore, InstanceInfo, MoveReply, StatsRow } from '../store/types.js';
import type { StoredSession } from '../gateways/sessions.js';
import type { AccountPool, AccountPools } from './account-pools.js';
import type { MoveReason } from './rotation.js';
import { choose, type Candidate as StrategyCandidate, type RotationStrategy } from './strategies.js';

export interface FleetOptions {
  readonly store: FleetStore;
  readonly ttl: number;
  readonly margin: number;
  readonly exclusive: boolean;
  readonly strategy: RotationStrategy;
  /** How often the store's versions are polled (ms): the backstop for lost pub/sub messages. @default 500 */
  readonly pollMs?: number;
  /** How often traffic counters are added to the store (ms). @default 2000 */
  readonly statsMs?: number;
  /** The configuration fingerprint to register (option `store.fingerprint`; a child gets its parent's). @default computed from the pools */
  readonly fingerprint?: string;
}

export interface StoreStateEvent {
  readonly store: string;
  /** store-down: what failed. */
  readonly error?: string;
  /** store-up: how long it was down (ms). */
  readonly downMs?: number;
  /** The store's epoch changed (it was emptied or restarted without persistence): leases start over. */
  readonly epochChanged?: boolean;
}

export interface LeaseEvent {
  readonly account: string;
  readonly proxy: string;
  /** `lost`: the store no longer has this process's lease (expired while paused or cut off); its connections were cut. */
  readonly status: 'lost';
}

export interface FleetMismatchEvent {
  /** Instances whose account/pool configuration differs from this process's. */
  readonly instances: ReadonlyArray<{ readonly instance: string; readonly host: string; readonly pid: number; readonly fp: string }>;
  readonly fingerprint: string;
}

export interface FleetDeps {
  readonly accounts: AccountPools;
  readonly health: HealthRegistry;
  readonly traffic: TrafficStats;
  /** Failover applies to this pool (rotation's rule). */
  readonly failoverOn: (pool: AccountPool) => boolean;
  /**
   * Switches the account's active proxy here (to `entry` in place of pool entry `index`, for a
   * gateway session the fleet has the account on) and retires the old one's connections (drain;
   * or cut with closeExisting). `announce: false`: a first lease on the entry the process was on.
   */
  readonly adopt: (account: string, index: number, reason: MoveReason, closeExisting: boolean, entry: ProxyEndpoint | undefined, announce: boolean) => void;
  /** The account's sessions on its gateways (gateways/sessions.ts): the fleet agrees on them. */
  readonly sessions: {
    of(entry: ProxyEndpoint): StoredSession | undefined;
    fresh(entry: ProxyEndpoint): StoredSession | undefined;
    adopt(entry: ProxyEndpoint, session: StoredSession): ProxyEndpoint | undefined;
  };
  /** Drops the account's pools on `proxy` at once (a lost lease). */
  readonly cut: (account: string, proxy: ProxyEndpoint) => void;
  readonly storeState: (state: 'down' | 'up', event: StoreStateEvent) => void;
  readonly lease: (event: LeaseEvent) => void;
  readonly mismatch: (event: FleetMismatchEvent) => void;
}

interface Lease {
  readonly account: string;
  epoch: string;
  ver: number;
  /** What the lease is on: the proxy's fleet key, with `/session` on a gateway (leaseId). */
  key: string;
  proxy: ProxyEndpoint;
  /** performance.now() before which the lease holds here. */
  deadline: number;
  /** false while a move's barrier is open. */
  ready: boolean;
  /** Proxies moved away from, with the deadline their in-flight connections may write until (the drain window). */
  readonly old: Map<string, number>;
  /** performance.now() of the last failover attempt (-Infinity: none). */
  failoverAt: number;
  /** Tunnels opened for the account, by the fleet key they go through. */
  readonly sockets: Map<string, Set<Socket>>;
}

/**
 * The store's connections do not keep the process alive (plumbing kBackground): while the app
 * waits on the store (a request at the gate, rotate()), this does, as the request itself would.
 */
function holdOpen<T>(p: Promise<T>): Promise<T> {
  const handle = setInterval(() => undefined, 2 ** 30);
  return p.finally(() => clearInterval(handle));
}

/** A bound on a wait, that does not itself keep the process alive. */
const sleepUnref = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)).unref());

/** What a lease or a tunnel is on: the fleet key, and on a gateway the session (each session is its own exit). */
function leaseId(key: string, session: string | undefined): string {
  return session === undefined ? key : `${key}/${session}`;
}

const endpointLeaseId = (p: ProxyEndpoint): string => leaseId(fleetKey(p), sessionOf(p));

const MOVE_REASONS: ReadonlySet<string> = new Set<MoveReason>(['manual', 'failover', 'session-failed', 'lifetime', 'egress-change', 'same-ip']);

export class FleetLeases {
  readonly instance = randomUUID();
  readonly fingerprint: string;
  private epoch = '';
  private readonly leases = new Map<string, Lease>();
  private readonly acquiring = new Map<string, Promise<void>>();
  private readonly moving = new Map<string, Promise<ProxyEndpoint>>();
  /** Instances already reported with another configuration fingerprint. */
  private readonly mismatched = new Set<string>();
  /** Accounts a renewal is wanted for soon (an acknowledgement, a message), coalesced. */
  private readonly renewQueue = new Set<string>();
  private renewQueued = false;
  /** Barrier waiters per account. */
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private down: { since: number } | undefined;
  private epochChanged = false;
  private av = -1;
  private hv = -1;
  /** Cooldowns and recoveries that came from the fleet (not reported back). */
  private readonly fromFleet = new Set<string>();
  private readonly reporting = new Set<string>();
  private readonly sent = new Map<string, { requests: number; failures: number; bytesSent: number; bytesReceived: number }>();
  private closed = false;
  private started = false;
  /** Settles when the store first answered (or failed to): the first requests wait for it, bounded by their gate. */
  private connected: Promise<void> = Promise.resolve();
  /** Requests waiting out a new epoch's settle time (ended early by close()). */
  private readonly settleWaits = new Set<() => void>();

  constructor(private readonly o: FleetOptions, private readonly deps: FleetDeps) {
    this.fingerprint = o.fingerprint ?? configFingerprint(deps.accounts.all(), o.exclusive);
  }

  get store(): FleetStore {
    return this.o.store;
  }

  /** Connects (in the background: requests wait at the gate, bounded) and starts the timers. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.o.store.onState((state, error) => (state === 'down' ? this.markDown(error) : this.markUp()));
    const connecting = this.o.store.connect();
    this.connected = connecting.catch(() => undefined);
    void connecting
      .then(() => this.o.store.subscribe((m) => this.onMessage(m)))
      .then(() => this.hello())
      .catch((err: Error) => this.markDown(err));
    this.every(Math.max(100, Math.floor(this.o.ttl / 3)), () => void this.renewAll().catch(() => undefined));
    this.every(this.o.pollMs ?? 500, () => void this.poll().catch(() => undefined));
    this.every(this.o.statsMs ?? 2000, () => void this.flushStats().catch(() => undefined));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    for (const end of [...this.settleWaits]) end();
    if (!this.down) {
      await this.flushStats().catch(() => undefined);
      await Promise.allSettled(
        [...this.leases.values()].filter((l) => l.epoch === this.epoch).map((l) => this.o.store.release({ ...this.call(), account: l.account, exclusive: this.o.exclusive })),
      );
    }
    this.leases.clear();
    await this.o.store.close();
  }

  // --- the request path ---------------------------------------------------------

  /** Resolves when the account may open a tunnel; undefined (no wait) while its lease holds. */
  gate(account: string): Promise<void> | undefined {
    const l = this.leases.get(account);
    if (l && l.ready && l.epoch === this.epoch && performance.now() < l.deadline) return undefined;
    return holdOpen(this.ensure(account));
  }

  /** Why the account's next request must fail now (decided synchronously, before anything is sent). */
  unavailable(account: string): Error | undefined {
    const l = this.leases.get(account);
    if (!l) return this.down && !this.acquiring.has(account) ? this.storeError(account, 'the account has no lease yet') : undefined;
    if (performance.now() < l.deadline) return undefined;
    if (l.epoch !== this.epoch) {
      // Leased under a store epoch that is gone: start over in the background (requests fail meanwhile).
      if (!this.acquiring.has(account)) void this.ensure(account).catch(() => undefined);
    } else this.renewSoon(account);
    return new ProxyUnavailableError(`the account's fleet lease was not renewed in time (${this.down ? `store ${this.o.store.where} unreachable` : 'renewal pending'}): its traffic stops until it is`, { account, proxy: l.proxy });
  }

  /** The proxy the account leaves through now, per the fleet (the opener re-reads it after the gate). */
  current(account: string): ProxyEndpoint | undefined {
    return this.leases.get(account)?.proxy;
  }

  /** Every tunnel of the account: fenced by its lease, cut if the lease is lost. */
  track(account: string, proxy: ProxyEndpoint, socket: Socket): void {
    const key = endpointLeaseId(proxy);
    fence(socket, () => this.writeRefusal(account, key, proxy));
    const l = this.leases.get(account);
    if (!l) return;
    let set = l.sockets.get(key);
    if (!set) l.sockets.set(key, (set = new Set()));
    set.add(socket);
    socket.once('close', () => set.delete(socket));
  }

  private writeRefusal(account: string, key: string, proxy: ProxyEndpoint): Error | undefined {
    const l = this.leases.get(account);
    const now = performance.now();
    if (l && l.key === key && now < l.deadline) return undefined;
    const drain = l?.old.get(key);
    if (drain !== undefined && now < drain) return undefined;
    return new ProxyUnavailableError('write refused: the account no longer holds its fleet lease on this proxy (deadline passed or lease lost); nothing more is sent through it', { account, proxy });
  }

  private async ensure(account: string): Promise<void> {
    const give = performance.now() + this.o.ttl + 3 * this.o.margin;
    for (;;) {
      if (this.closed) throw new ProxyUnavailableError('the fleet coordinator is closed (manager uninstalled)', { account });
      let l = this.leases.get(account);
      if (l && l.epoch !== this.epoch && performance.now() >= l.deadline) {
        // Leased under a store epoch that is gone: nothing to renew, start over.
        this.lost(account, l, false);
        l = undefined;
      }
      if (!l) {
        await this.acquireOnce(account, give);
        continue;
      }
      if (performance.now() >= l.deadline) {
        await this.renew([account]);
        const again = this.leases.get(account);
        if (again && performance.now() >= again.deadline) throw this.unavailable(account) ?? this.storeError(account, 'lease not renewed');
        continue;
      }
      if (!l.ready) {
        if (performance.now() >= give) throw new ProxyUnavailableError(`the account's move did not complete within the lease TTL (${this.o.ttl} ms)`, { account, proxy: l.proxy });
        await this.barrier(account, give);
        continue;
      }
      return;
    }
  }

  private acquireOnce(account: string, give: number): Promise<void> {
    let p = this.acquiring.get(account);
    if (!p) {
      p = this.acquire(account, give).finally(() => this.acquiring.delete(account));
      this.acquiring.set(account, p);
    }
    return p;
  }

  private async acquire(account: string, give: number): Promise<void> {
    const pool = this.deps.accounts.require(account);
    // Right after install the client may still be loading or connecting: wait for it (bounded), not one command's timeout.
    if (!this.epoch && !this.down) await Promise.race([this.connected, sleepUnref(give - performance.now())]);
    for (;;) {
      const sent = performance.now();
      const reply = await this.guarded(account, () => this.o.store.acquire({ ...this.call(), account, exclusive: this.o.exclusive, candidates: this.acquireOrder(pool) }));
      this.learnEpoch(reply.epoch);
      if (reply.status === 'settling') {
        if (performance.now() + reply.retryIn > give) {
          throw new ProxyUnavailableError(`the fleet store ${this.o.store.where} is new or was emptied: no proxy is leased until ${Math.ceil(reply.retryIn)} ms from now (lease TTL + margin), so that no lease the store forgot can overlap`, { account });
        }
        await this.settleWait(reply.retryIn + 5);
        if (this.closed) throw new ProxyUnavailableError('the fleet coordinator is closed (manager uninstalled)', { account });
        continue;
      }
      if (reply.status === 'none') throw new ProxyUnavailableError(`no proxy of the pool is free fleet-wide: each is down or held by another account (or still in its quarantine after a release): ${this.describe(pool)}`, { account });
      if (reply.status === 'mismatch') {
        throw new ProxyUnavailableError('the fleet has this account on a proxy this process’s pool does not have (configuration mismatch between processes); see session-proxy fleet', { account });
      }
      this.apply(account, reply, sent, reply.epoch, false);
      return;
    }
  }

  /**
   * A request waits here: the timer holds the process open, as the
   * request's socket will (an unref'd one let a process whose only work was
   * that request exit mid-await); close() ends it early.
   */
  private settleWait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const end = (): void => {
        clearTimeout(timer);
        this.settleWaits.delete(end);
        resolve();
      };
      const timer = setTimeout(end, Math.max(0, ms));
      this.settleWaits.add(end);
    });
  }

  private barrier(account: string, give: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let set = this.waiters.get(account);
      if (!set) this.waiters.set(account, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        resolve();
      };
      // Poll too: a `ready` message can be lost.
      const timer = setTimeout(() => {
        set.delete(done);
        void this.renew([account]).catch(() => undefined).finally(resolve);
      }, Math.min(250, Math.max(0, give - performance.now())));
      set.add(done);
    });
  }

  // --- moves ------------------------------------------------------------------

  /**
   * rotate(): one move in the store for the whole fleet. On a gateway
   * session, a new session on the same gateway (as a local rotate()).
   */
  rotate(account: string, closeExisting: boolean, reason: MoveReason = 'manual'): Promise<ProxyEndpoint> {
    return holdOpen(this.rotateOnce(account, closeExisting, reason));
  }

  private async rotateOnce(account: string, closeExisting: boolean, reason: MoveReason): Promise<ProxyEndpoint> {
    await (this.gate(account) ?? Promise.resolve());
    const l = this.leases.get(account)!;
    const pool = this.deps.accounts.require(account);
    const session = this.deps.sessions.fresh(l.proxy);
    const candidates = session ? [this.candidate(l.proxy, session)] : this.moveOrder(pool);
    const reply = await this.move(account, l.ver, reason, candidates, closeExisting);
    switch (reply.status) {
      case 'ok':
      case 'stale':
        return this.leases.get(account)!.proxy;
      case 'none':
        throw new ProxyUnavailableError(`cannot rotate: no other proxy of the pool is free fleet-wide: ${this.describe(pool)}`, { account });
      case 'lost':
        throw new ProxyUnavailableError('cannot rotate: this process no longer holds the account’s lease', { account });
      default:
        throw new ProxyUnavailableError(`cannot rotate: the fleet store ${this.o.store.where} was emptied or restarted; no move for ${Math.ceil(reply.retryIn)} ms`, { account });
    }
  }

  /**
   * A new session for the account's gateway session `expect` (its lifetime
   * ends, its exit failed, its IP changed or is another account's), once for
   * the fleet: the processes that see the same at the same time make one
   * move (the others' are stale). Undefined when the account is no longer on
   * `expect` or it is no sticky session.
   */
  async renewSession(account: string, reason: MoveReason, expect?: ProxyEndpoint): Promise<ProxyEndpoint | undefined> {
    const l = this.leases.get(account);
    if (!l || (expect !== undefined && l.proxy !== expect)) return undefined;
    const session = this.deps.sessions.fresh(l.proxy);
    if (!session) return undefined;
    const reply = await this.move(account, l.ver, reason, [this.candidate(l.proxy, session)], false);
    return reply.status === 'ok' || reply.status === 'stale' ? this.leases.get(account)?.proxy : undefined;
  }

  /**
   * A proxy went into cooldown here (or the fleet said so): tell the store
   * (unless it came from there) and move every account leased on it (on a
   * gateway: on any of its sessions), once for the fleet (a move from an old
   * version is stale: another process moved first).
   */
  failover(proxy: ProxyEndpoint): void {
    const key = fleetKey(proxy);
    const h = this.deps.health.of(proxy);
    if (!this.fromFleet.delete(key) && h.status === 'cooldown') {
      this.reporting.add(key);
      void this.o.store
        .down(key, h.cooldownUntil - Date.now(), h.lastError)
        .catch(() => undefined)
        .finally(() => this.reporting.delete(key));
    }
    for (const l of this.leases.values()) if (fleetKey(l.proxy) === key) this.failoverLease(l, 0);
  }

  /**
   * A request of the account was refused because its proxy is down: its failover found nowhere free
   * then (every other proxy held or in quarantine). Try again, at most once per margin, so the account
   * moves as soon as a proxy comes free rather than when the cooldown ends.
   */
  retryFailover(account: string): void {
    const l = this.leases.get(account);
    if (l) this.failoverLease(l, this.o.margin);
  }

  /** Moves the account off its (down) proxy, once for the fleet; not again within `minGapMs` of the last attempt. */
  private failoverLease(l: Lease, minGapMs: number): void {
    if (this.moving.has(l.account) || performance.now() - l.failoverAt < minGapMs) return;
    const pool = this.deps.accounts.get(l.account);
    if (!pool || !this.deps.failoverOn(pool)) return;
    l.failoverAt = performance.now();
    const p = this.move(l.account, l.ver, 'failover', this.moveOrder(pool), false)
      .then(() => this.leases.get(l.account)?.proxy ?? pool.proxies[pool.active]!)
      .finally(() => this.moving.delete(l.account));
    this.moving.set(l.account, p);
    p.catch(() => undefined);
  }

  /** One move in the store, applied here when it is made (ok) or another process made one first (stale). */
  private async move(account: string, fromVer: number, reason: MoveReason, candidates: Candidate[], closeExisting: boolean): Promise<MoveReply> {
    const sent = performance.now();
    const reply = await this.guarded(account, () => this.o.store.move({ ...this.call(), account, exclusive: this.o.exclusive, fromVer, reason, candidates }));
    if (reply.status === 'ok' || reply.status === 'stale') this.apply(account, reply, sent, reply.epoch, closeExisting, reply.status === 'ok' ? reason : undefined);
    else if (reply.status === 'lost') {
      const l = this.leases.get(account);
      if (l) this.lost(account, l, true);
    } else if (reply.status !== 'none') this.learnEpoch(reply.epoch);
    return reply;
  }

  /** A proxy recovered here (a probe): tell the fleet, unless the news came from it. */
  up(proxy: ProxyEndpoint): void {
    const key = fleetKey(proxy);
    if (this.fromFleet.delete(key)) return;
    void this.o.store.up(key).catch(() => undefined);
  }

  /** The one probe for the fleet: only the instance that claims it probes; the others wait for its result. */
  async claimProbe(proxy: ProxyEndpoint, leaseMs: number): Promise<boolean> {
    try {
      return await this.o.store.claimProbe(fleetKey(proxy), this.instance, leaseMs);
    } catch {
      return true; // store down: probe locally (the result stays local)
    }
  }

  /** A removed or replaced account: release its lease. */
  forget(account: string): void {
    const l = this.leases.get(account);
    if (!l) return;
    this.leases.delete(account);
    void this.o.store.release({ ...this.call(), account, exclusive: this.o.exclusive }).catch(() => undefined);
  }

  // --- applying what the store says -------------------------------------------------

  /** Adopts an assignment (here or another process moved the account) and extends the local deadline from `sent`. */
  private apply(account: string, a: Assignment, sent: number, epoch: string, closeExisting: boolean, reason?: MoveReason): void {
    const pool = this.deps.accounts.get(account);
    if (!pool) return;
    let l = this.leases.get(account);
    const target = leaseId(a.proxy, a.session?.id);
    let ack = false;
    if (!l || l.ver !== a.ver || l.key !== target || l.epoch !== epoch) {
      const index = pool.proxies.findIndex((p) => fleetKey(p) === a.proxy);
      // On a gateway, the session the fleet has the account on replaces the entry's own.
      // (The same session minted elsewhere keeps its endpoint; its lifetime counts from the fleet's mint time.)
      let entry: ProxyEndpoint | undefined;
      const at = index >= 0 ? pool.proxies[index]! : undefined;
      if (at && a.session && (sessionOf(at) !== a.session.id || this.deps.sessions.of(at)?.mintedAt !== a.session.minted)) {
        entry = this.deps.sessions.adopt(at, { id: a.session.id, mintedAt: a.session.minted });
      }
      if (!at || (a.session && sessionOf(entry ?? at) !== a.session.id)) {
        // Not a proxy (or a session) this process can use: the configurations differ.
        if (l) this.lost(account, l, true);
        this.deps.mismatch({ instances: [], fingerprint: this.fingerprint });
        return;
      }
      const proxy = entry ?? at;
      if (l && l.key !== target) l.old.set(l.key, l.deadline);
      const why = reason ?? (a.reason !== undefined && MOVE_REASONS.has(a.reason) ? (a.reason as MoveReason) : 'manual');
      // Announced when the process moves; not when its first lease only swaps its own proposal for the fleet's session.
      if (pool.active !== index || (entry && entry !== at)) this.deps.adopt(account, index, why, closeExisting, entry, l !== undefined || pool.active !== index);
      ack = l !== undefined && l.ver !== a.ver && reason === undefined;
      if (!l) {
        l = { account, epoch, ver: a.ver, key: target, proxy, deadline: 0, ready: false, old: new Map(), failoverAt: -Infinity, sockets: new Map() };
        this.leases.set(account, l);
      } else {
        l.epoch = epoch;
        l.ver = a.ver;
        l.key = target;
        l.proxy = proxy;
      }
    }
    l.deadline = sent + this.o.ttl - this.o.margin;
    l.ready = a.state === 'ready';
    const now = performance.now();
    for (const [key, until] of l.old) if (until <= now) l.old.delete(key);
    if (ack) this.renewSoon(account);
    if (l.ready) for (const w of [...(this.waiters.get(account) ?? [])]) w();
  }

  /** The store no longer has our lease: cut every connection of the account on that proxy, before anything else is sent. */
  private lost(account: string, l: Lease, report: boolean): void {
    if (this.leases.get(account) === l) this.leases.delete(account);
    for (const [key, sockets] of l.sockets) {
      const error = new ProxyUnavailableError('the fleet lease was lost: connection cut before anything more is sent', { account, proxy: l.proxy });
      for (const s of sockets) s.destroy(error);
      if (key === l.key) this.deps.cut(account, l.proxy);
    }
    if (report) this.deps.lease({ account, proxy: l.proxy.url, status: 'lost' });
  }

  private renewSoon(account: string): void {
    this.renewQueue.add(account);
    if (this.renewQueued) return;
    this.renewQueued = true;
    setImmediate(() => {
      this.renewQueued = false;
      const accounts = [...this.renewQueue];
      this.renewQueue.clear();
      void this.renew(accounts).catch(() => undefined);
    });
  }

  private async renewAll(): Promise<void> {
    const accounts = [...this.leases.values()].filter((l) => l.epoch === this.epoch).map((l) => l.account);
    if (accounts.length === 0 && !this.down) return;
    if (accounts.length === 0) return void (await this.poll());
    for (let i = 0; i < accounts.length; i += 1000) await this.renew(accounts.slice(i, i + 1000)).catch(() => undefined);
  }

  private async renew(accounts: readonly string[]): Promise<void> {
    const mine = accounts.map((a) => this.leases.get(a)).filter((l): l is Lease => l !== undefined && l.epoch === this.epoch);
    if (mine.length === 0 || !this.epoch) return;
    const sent = performance.now();
    let reply;
    try {
      reply = await this.o.store.renew({ ...this.call(), exclusive: this.o.exclusive, accounts: mine.map((l) => ({ account: l.account, ack: l.ver })) });
    } catch {
      return; // the store's state listener reports it; deadlines run out on their own
    }
    if (reply.status === 'epoch') {
      this.learnEpoch(reply.epoch);
      return;
    }
    for (const r of reply.accounts) {
      const l = this.leases.get(r.account);
      if (!l || l.epoch !== reply.epoch) continue;
      if (!r.held) this.lost(r.account, l, true);
      // An older version than ours: the store lost the move's write (a failover to a replica behind it).
      // Not a move back: drop the lease and acquire again, after the store's settle time.
      else if (r.ver < l.ver) this.lost(r.account, l, true);
      else this.apply(r.account, r, sent, reply.epoch, false);
    }
  }

  /** A reply named another epoch: the store was emptied (or is new). Leases of the old epoch hold until their deadlines, then start over. */
  private learnEpoch(epoch: string): void {
    if (!epoch || epoch === this.epoch) return;
    const had = this.epoch !== '';
    this.epoch = epoch;
    if (had) {
      this.epochChanged = true;
      if (!this.down) this.deps.storeState('up', { store: this.o.store.where, epochChanged: true });
    }
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    let r;
    try {
      r = await this.o.store.poll();
    } catch {
      return;
    }
    if (r.epoch === '') {
      await this.hello(); // an empty store: start its epoch now (the settle clock runs from here)
      return;
    }
    this.learnEpoch(r.epoch);
    if (r.av !== this.av) {
      this.av = r.av;
      void this.renewAll().catch(() => undefined);
    }
    if (r.hv !== this.hv) {
      this.hv = r.hv;
      void this.refreshHealth().catch(() => undefined);
    }
  }

  private async hello(): Promise<void> {
    const info: InstanceInfo = { instance: this.instance, host: hostname(), pid: process.pid, fp: this.fingerprint, started: Date.now() };
    let others: InstanceInfo[];
    try {
      others = await this.o.store.hello(info, this.o);
    } catch {
      return;
    }
    // Each differing instance once (hello runs again on every reconnect and empty poll).
    const differ = others.filter((o) => o.fp !== this.fingerprint && !this.mismatched.has(o.instance));
    for (const o of differ) this.mismatched.add(o.instance);
    if (differ.length) this.deps.mismatch({ fingerprint: this.fingerprint, instances: differ.map(({ instance, host, pid, fp }) => ({ instance, host, pid, fp })) });
    const r = await this.o.store.poll().catch(() => undefined);
    if (r) this.learnEpoch(r.epoch);
  }

  private onMessage(m: FleetMessage): void {
    if (m.t === 'health') {
      void this.refreshHealth([m.k]).catch(() => undefined);
      return;
    }
    const l = this.leases.get(m.a);
    if (l && m.v !== l.ver) this.renewSoon(m.a);
    else if (l && m.t === 'ready' && !l.ready) this.renewSoon(m.a);
  }

  /** Cooldowns and recoveries announced by other processes, applied here. */
  private async refreshHealth(only?: readonly string[]): Promise<void> {
    const byKey = new Map<string, ProxyEndpoint[]>();
    for (const pool of this.deps.accounts.all()) {
      for (const p of pool.proxies) {
        const k = fleetKey(p);
        if (only && !only.includes(k)) continue;
        const list = byKey.get(k) ?? [];
        if (!list.some((x) => x.identityKey === p.identityKey)) list.push(p);
        byKey.set(k, list);
      }
    }
    if (byKey.size === 0) return;
    let r;
    try {
      r = await this.o.store.health([...byKey.keys()]);
    } catch {
      return;
    }
    for (const [key, proxies] of byKey) {
      const rec = r.proxies[key];
      for (const p of proxies) {
        const h = this.deps.health.of(p);
        if (rec && rec.down > r.now) {
          if (h.available) {
            this.fromFleet.add(key);
            this.deps.health.coolFromFleet(p, Date.now() + (rec.down - r.now), rec.error ?? 'down in another process of the fleet');
          }
        } else if (rec && !h.available && !this.reporting.has(key) && rec.probe === undefined && rec.down === 0) {
          this.fromFleet.add(key);
          this.deps.health.upFromFleet(p);
        }
      }
    }
  }

  // --- stats ---------------------------------------------------------------------

  /** Adds this process's traffic since the last flush to the fleet's counters. */
  async flushStats(): Promise<void> {
    const endpoints = new Map<string, ProxyEndpoint>();
    for (const pool of this.deps.accounts.all()) for (const p of pool.proxies) endpoints.set(p.identityKey, p);
    const rows: StatsRow[] = [];
    const next = new Map(this.sent);
    for (const row of this.deps.traffic.snapshot()) {
      const p = endpoints.get(row.proxyKey);
      if (!p) continue;
      const id = `${row.account}\0${row.proxyKey}`;
      const before = this.sent.get(id) ?? { requests: 0, failures: 0, bytesSent: 0, bytesReceived: 0 };
      const delta = { requests: row.requests - before.requests, failures: row.failures - before.failures, bytesSent: row.bytesSent - before.bytesSent, bytesReceived: row.bytesReceived - before.bytesReceived };
      if (!delta.requests && !delta.failures && !delta.bytesSent && !delta.bytesReceived) continue;
      rows.push({ account: row.account, key: fleetKey(p), url: fleetUrl(p), ...delta });
      next.set(id, { requests: row.requests, failures: row.failures, bytesSent: row.bytesSent, bytesReceived: row.bytesReceived });
    }
    if (rows.length === 0) return;
    await this.o.store.addStats(rows);
    for (const [k, v] of next) this.sent.set(k, v);
  }

  async snapshot(): Promise<FleetSnapshot> {
    await this.flushStats().catch(() => undefined);
    return this.o.store.snapshot();
  }

  // --- helpers ---------------------------------------------------------------------

  private call(): { instance: string; ttl: number; margin: number; epoch: string; newEpoch: string } {
    return { instance: this.instance, ttl: this.o.ttl, margin: this.o.margin, epoch: this.epoch, newEpoch: randomUUID() };
  }

  private async guarded<T>(account: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.storeError(account, (err as Error)?.message ?? String(err), err);
    }
  }

  private storeError(account: string, why: string, cause?: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`the fleet store ${this.o.store.where} is unreachable (${why}): no assignment can be made or renewed, and nothing goes direct or through a shared proxy`, { account, cause });
  }

  private markDown(error?: Error): void {
    if (this.down || this.closed) return;
    this.down = { since: performance.now() };
    this.deps.storeState('down', { store: this.o.store.where, error: error?.message });
  }

  private markUp(): void {
    if (this.closed) return;
    const was = this.down;
    this.down = undefined;
    if (was) this.deps.storeState('up', { store: this.o.store.where, downMs: Math.round(performance.now() - was.since), epochChanged: this.epochChanged || undefined });
    this.epochChanged = false;
    // Messages sent while disconnected are lost: resync.
    void this.hello().then(() => this.renewAll()).then(() => this.refreshHealth()).catch(() => undefined);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.add(t);
  }

  /** A pool entry as the store sees it; a gateway session proposes its id (`session`: a fresh one instead). */
  private candidate(p: ProxyEndpoint, session = this.deps.sessions.of(p)): Candidate {
    return { key: fleetKey(p), url: fleetUrl(p), ...(session ? { session: { id: session.id, minted: session.mintedAt } } : {}) };
  }

  /** First use: the local active proxy first, then the pool in order from it; proxies down here are left out. */
  private acquireOrder(pool: AccountPool): Candidate[] {
    const n = pool.proxies.length;
    const out: Candidate[] = [];
    for (let i = 0; i < n; i++) {
      const p = pool.proxies[(pool.active + i) % n]!;
      if (this.deps.health.of(p).available) out.push(this.candidate(p));
    }
    return out;
  }

  /** A move: every other proxy up here, in the strategy's order; the store takes the first one free fleet-wide. */
  private moveOrder(pool: AccountPool): Candidate[] {
    const current = pool.active;
    let remaining: StrategyCandidate[] = [];
    pool.proxies.forEach((p, index) => {
      if (index === current) return;
      const h = this.deps.health.of(p);
      if (!h.available) return;
      remaining.push({ index, holders: 0, requests: this.deps.traffic.requestsThrough(p.identityKey), recentFailures: h.recentFailures(), latencyMs: h.latencyEwmaMs });
    });
    const out: Candidate[] = [];
    while (remaining.length) {
      const c = choose(this.o.strategy, current, pool.proxies.length, remaining)!;
      out.push(this.candidate(pool.proxies[c.index]!));
      remaining = remaining.filter((x) => x !== c);
    }
    return out;
  }

  private describe(pool: AccountPool): string {
    return pool.proxies.map((p) => `${p} (${this.deps.health.of(p).status})`).join('; ');
  }
}
