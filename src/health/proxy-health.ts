/**
 * Health of each proxy identity, shared by every account that uses it:
 * failures in a sliding window, cooldown with exponential backoff (capped),
 * and the latency of recent tunnels. A proxy whose cooldown has expired is
 * not trusted again until a probe succeeds (probe-before-reuse).
 */
import type { ProxyEndpoint } from '../proxy/endpoint.js';

export interface HealthOptions {
  /** Failures within `windowMs` that put a proxy into cooldown. @default 3 */
  threshold?: number;
  /** @default 30_000 */
  windowMs?: number;
  /** First cooldown; doubles on each consecutive one. @default 5_000 */
  cooldownMs?: number;
  /** @default 300_000 */
  maxCooldownMs?: number;
}

export type ProxyStatus = 'up' | 'cooldown' | 'probing';

export class ProxyHealth {
  status: ProxyStatus = 'up';
  private failures: number[] = [];
  private consecutiveCooldowns = 0;
  cooldownUntil = 0;
  lastLatencyMs: number | undefined;
  /** Exponentially weighted latency, for the `healthiest` strategy. */
  latencyEwmaMs: number | undefined;
  totalFailures = 0;
  lastError: string | undefined;

  constructor(readonly proxy: ProxyEndpoint, private readonly o: Required<HealthOptions>) {}

  /** Records a failure; returns true when it put the proxy into cooldown. */
  fail(error: Error, now = Date.now()): boolean {
    this.totalFailures++;
    this.lastError = error.message;
    this.failures = this.failures.filter((t) => now - t < this.o.windowMs);
    this.failures.push(now);
    if (this.status === 'probing') return this.cool(now);
    if (this.status === 'up' && this.failures.length >= this.o.threshold) return this.cool(now);
    return false;
  }

  succeed(latencyMs: number): boolean {
    this.lastLatencyMs = latencyMs;
    this.latencyEwmaMs = this.latencyEwmaMs === undefined ? latencyMs : this.latencyEwmaMs * 0.7 + latencyMs * 0.3;
    const recovered = this.status !== 'up';
    this.status = 'up';
    this.failures = [];
    this.consecutiveCooldowns = 0;
    return recovered;
  }

  /** Usable for new traffic: up, not cooling down, not awaiting its probe. */
  get available(): boolean {
    return this.status === 'up';
  }

  /** Recent failures in the window (for the `healthiest` strategy). */
  recentFailures(now = Date.now()): number {
    return this.failures.filter((t) => now - t < this.o.windowMs).length;
  }

  private cool(now: number): boolean {
    const ms = Math.min(this.o.cooldownMs * 2 ** this.consecutiveCooldowns, this.o.maxCooldownMs);
    this.consecutiveCooldowns++;
    this.status = 'cooldown';
    this.cooldownUntil = now + ms;
    this.failures = [];
    return true;
  }
}

export function healthDefaults(o: HealthOptions = {}): Required<HealthOptions> {
  return { threshold: o.threshold ?? 3, windowMs: o.windowMs ?? 30_000, cooldownMs: o.cooldownMs ?? 5_000, maxCooldownMs: o.maxCooldownMs ?? 300_000 };
}
