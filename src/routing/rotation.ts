/**
 * Which proxy an account uses, and when it moves: stickiness, the
 * per-connection balance, failover off a proxy in cooldown, the rotation
 * strategies, exclusivity (two accounts never hold one proxy identity), and
 * the fail-fast answer when a whole pool is down.
 */
import { ProxyUnavailableError } from '../errors.js';
import type { ProxyEndpoint, ProxyInfo } from '../proxy/endpoint.js';
import type { HealthRegistry } from '../health/health-registry.js';
import type { TrafficStats } from '../health/traffic-stats.js';
import type { AccountPool, AccountPools } from './account-pools.js';
import { choose, type Candidate, type RotationStrategy } from './strategies.js';

export interface RotationOptions {
  readonly strategy: RotationStrategy;
  readonly balance: 'sticky' | 'per-connection';
  readonly exclusive: boolean;
  /** undefined: on for pools of 2+. */
  readonly failover: boolean | undefined;
}

/** What a move did to the account's open connections on the proxy it left. */
export interface RetireCounts {
  /** Cut at once by `closeExisting`. */
  readonly closed: number;
  /** Idle, closed at once. */
  readonly drained: number;
  /** Busy: they close when their request or stream completes, or are cut after `drainTimeout`. */
  readonly draining: number;
}

/**
 * Why an account moved: `manual` rotate(), `failover` off a proxy in cooldown; on a gateway (a new
 * session): `session-failed` (its exit failed while the gateway works), `lifetime` (shortly before the
 * vendor ends it), `egress-change` (the watch saw its IP change), `same-ip` (it shared an IP with another account).
 */
export type MoveReason = 'manual' | 'failover' | 'session-failed' | 'lifetime' | 'egress-change' | 'same-ip';

export interface MoveEvent extends RetireCounts {
  readonly account: string;
  readonly from: ProxyInfo;
  readonly to: ProxyInfo;
  readonly reason: MoveReason;
}

export interface RotationDeps {
  readonly accounts: AccountPools;
  readonly health: HealthRegistry;
  readonly traffic: TrafficStats;
  /** Moves the account's connections off `from`: drains them, or cuts them at once with closeExisting. */
  readonly retire: (account: string, from: ProxyEndpoint, closeExisting: boolean) => RetireCounts;
  readonly moved: (event: MoveEvent) => void;
  /** A new session for a sticky gateway entry (src/gateways/sessions.ts); undefined for any other proxy. */
  readonly renew?: (from: ProxyEndpoint) => ProxyEndpoint | undefined;
}

export class Rotation {
  private readonly cursor = new Map<string, number>();

  constructor(private readonly o: RotationOptions, private readonly deps: RotationDeps) {}

  failoverOn(pool: AccountPool): boolean {
    return this.o.failover ?? pool.proxies.length > 1;
  }

  /** The proxy an account's next connection uses: its active one, or (per-connection balance) the next healthy one. */
  select(account: string): ProxyEndpoint {
    const pool = this.deps.accounts.require(account);
    if (this.o.balance !== 'per-connection' || pool.proxies.length === 1) return pool.proxies[pool.active];
    const start = this.cursor.get(account) ?? pool.active;
    for (let i = 1; i <= pool.proxies.length; i++) {
      const index = (start + i) % pool.proxies.length;
      if (this.deps.health.of(pool.proxies[index]).available) {
        this.cursor.set(account, index);
        return pool.proxies[index];
      }
    }
    return pool.proxies[pool.active];
  }

  /** ProxyUnavailableError when failover applies and `proxy` is down (the whole pool is, or the account would have moved). */
  unavailable(account: string, proxy: ProxyEndpoint): Error | undefined {
    const pool = this.deps.accounts.require(account);
    if (!this.failoverOn(pool) || this.deps.health.of(proxy).available) return undefined;
    return new ProxyUnavailableError(`every proxy of the pool is down: ${this.describe(pool)}`, { account });
  }

  /**
   * Manual rotate(): ProxyUnavailableError when there is nowhere to go (a
   * one-proxy pool, or every other proxy held by another account or down),
   * never a silent stay on the same proxy.
   */
  rotate(account: string, closeExisting: boolean, reason: MoveReason = 'manual'): ProxyEndpoint {
    const pool = this.deps.accounts.require(account);
    // On a gateway, rotating is a new session on the same URL (the gateway picks the IP).
    const minted = this.renewSession(account, reason, closeExisting);
    if (minted) return minted;
    if (this.nextIndex(pool) === undefined) {
      const why = pool.proxies.length === 1 ? `the pool has one proxy, ${pool.proxies[0]}` : `no other proxy of the pool is available: ${this.describe(pool)}`;
      throw new ProxyUnavailableError(`cannot rotate: ${why}`, { account });
    }
    return this.move(account, reason, closeExisting);
  }

  /**
   * Moves the account to a new session of its active gateway entry and drains the old session's
   * connections like a rotation. `expect`: only if that is still the active entry (a timer or a
   * failure that raced a rotation does nothing). Undefined when the active entry is no sticky session.
   */
  renewSession(account: string, reason: MoveReason, closeExisting = false, expect?: ProxyEndpoint): ProxyEndpoint | undefined {
    const pool = this.deps.accounts.get(account);
    if (!pool) return undefined;
    const from = pool.proxies[pool.active];
    if (expect !== undefined && from !== expect) return undefined;
    const to = this.deps.renew?.(from);
    if (!to) return undefined;
    // Switch first, synchronously: requests created from now on use the new session.
    this.deps.accounts.replace(account, pool.active, to);
    const counts = this.deps.retire(account, from, closeExisting);
    this.deps.moved({ account, from: from.info(), to: to.info(), reason, ...counts });
    return to;
  }

  /** A proxy (or a whole gateway) went into cooldown: every account holding it with failover on moves, if it can. */
  failover(proxy: ProxyEndpoint): void {
    for (const account of this.deps.accounts.healthHolders(proxy.healthKey)) {
      const pool = this.deps.accounts.get(account)!;
      if (this.failoverOn(pool) && this.nextIndex(pool) !== undefined) this.move(account, 'failover', false);
    }
  }

  /**
   * The fleet moved the account (in this process or another one,
   * routing/fleet.ts): switch to `index` — to `entry` in its place, for a
   * gateway session the fleet agreed on — and retire the old proxy's
   * connections, as a local move does. `announce: false` (the first lease):
   * no rotate event, nothing has used the pool yet.
   */
  adopt(account: string, index: number, reason: MoveReason, closeExisting: boolean, entry?: ProxyEndpoint, announce = true): void {
    const pool = this.deps.accounts.require(account);
    const from = pool.proxies[pool.active];
    if (entry && pool.proxies[index] !== entry) this.deps.accounts.replace(account, index, entry);
    const to = pool.proxies[index];
    if (from === to) return;
    pool.active = index;
    const counts = this.deps.retire(account, from, closeExisting);
    if (announce) this.deps.moved({ account, from: from.info(), to: to.info(), reason, ...counts });
  }

  /** Each proxy with why it is or is not a place to go: `p (active, up); q (up, held by "bob"); r (cooldown, next probe in 850 ms)`. */
  private describe(pool: AccountPool): string {
    return pool.proxies
      .map((p, index) => {
        const h = this.deps.health.of(p);
        const notes: string[] = index === pool.active ? ['active'] : [];
        if (h.status === 'up') notes.push('up');
        else notes.push(`${h.status}, ${h.status === 'probing' ? 'probing now' : `next probe in ${Math.max(0, h.cooldownUntil - Date.now())} ms`}`);
        const holders = this.o.exclusive ? this.deps.accounts.holders(p.identityKey).filter((a) => a !== pool.name) : [];
        if (holders.length) notes.push(`held by ${holders.map((a) => `"${a}"`).join(', ')}`);
        return `${p} (${notes.join(', ')})`;
      })
      .join('; ');
  }

  /** The index `pool` would move to: available, not held by another account (exclusive), chosen by the strategy. */
  private nextIndex(pool: AccountPool): number | undefined {
    const candidates: Candidate[] = [];
    pool.proxies.forEach((p, index) => {
      if (index === pool.active) return;
      const h = this.deps.health.of(p);
      if (!h.available) return;
      const holders = this.deps.accounts.holders(p.identityKey).filter((a) => a !== pool.name);
      if (this.o.exclusive && holders.length) return;
      candidates.push({ index, holders: holders.length, requests: this.deps.traffic.requestsThrough(p.identityKey), recentFailures: h.recentFailures(), latencyMs: h.latencyEwmaMs });
    });
    return choose(this.o.strategy, pool.active, pool.proxies.length, candidates)?.index;
  }

  private move(account: string, reason: MoveReason, closeExisting: boolean): ProxyEndpoint {
    const pool = this.deps.accounts.require(account);
    const from = pool.proxies[pool.active];
    const next = this.nextIndex(pool);
    if (next === undefined) return from;
    // Switch first, synchronously: requests created from now on use the new proxy.
    pool.active = next;
    const to = pool.proxies[next];
    const counts = this.deps.retire(account, from, closeExisting);
    this.deps.moved({ account, from: from.info(), to: to.info(), reason, ...counts });
    return to;
  }
}
