/**
 * Which exit address each session leaves from, as a residential gateway
 * does it: a new session gets an address no live session holds (while there
 * are any), keeps it until its lifetime or an idle gap ends it, and then moves
 * to a different one. A connection without a session gets the next address
 * round-robin (a new IP per connection).
 */
import type { MockGatewaySession } from './types.js';

export class Bindings {
  private readonly table = new Map<string, MockGatewaySession>();
  private readonly dead = new Set<string>();
  private cursor = 0;

  constructor(private readonly ips: readonly string[], private readonly lifetimeMs: number | undefined, private readonly idleMs: number | undefined) {
    if (ips.length === 0) throw new TypeError('egressIps must name at least one address');
  }

  all(): MockGatewaySession[] {
    return [...this.table.values()];
  }

  get(id: string): MockGatewaySession | undefined {
    return this.table.get(id);
  }

  isDead(id: string): boolean {
    return this.dead.has(id);
  }

  kill(id: string): void {
    this.dead.add(id);
  }

  /** The address a new connection of `session` leaves from (binding, renewing, or round-robin without one). */
  connect(session: string | undefined, requestedLifetimeMs: number | undefined, now = Date.now()): string {
    if (session === undefined) return this.next(undefined);
    let s = this.table.get(session);
    if (!s) {
      s = { id: session, egressIp: this.free(undefined), since: now, lastUsed: now, connections: 0, changes: 0 };
      this.table.set(session, s);
    } else {
      const lifetime = requestedLifetimeMs ?? s.requestedLifetimeMs ?? this.lifetimeMs;
      const expired = lifetime !== undefined && now - s.since >= lifetime;
      const idle = this.idleMs !== undefined && now - s.lastUsed >= this.idleMs;
      if (expired || idle) this.move(s, now);
    }
    if (requestedLifetimeMs !== undefined) s.requestedLifetimeMs = requestedLifetimeMs;
    s.lastUsed = now;
    s.connections++;
    return s.egressIp;
  }

  flip(id: string, now = Date.now()): string {
    const s = this.require(id);
    this.move(s, now);
    return s.egressIp;
  }

  collide(a: string, b: string, now = Date.now()): void {
    const first = this.require(a);
    const second = this.table.get(b) ?? { id: b, egressIp: first.egressIp, since: now, lastUsed: now, connections: 0, changes: -1 };
    this.table.set(b, second);
    if (second.egressIp !== first.egressIp || second.changes < 0) second.changes++;
    second.egressIp = first.egressIp;
    second.since = now;
  }

  private require(id: string): MockGatewaySession {
    const s = this.table.get(id);
    if (!s) throw new Error(`mock gateway: no session "${id}" (sessions: ${[...this.table.keys()].join(', ') || 'none'})`);
    return s;
  }

  private move(s: MockGatewaySession, now: number): void {
    s.egressIp = this.free(s.egressIp);
    s.since = now;
    s.changes++;
  }

  /** An address no other live session holds (and not `not`), else the least shared one other than `not`. */
  private free(not: string | undefined): string {
    const holders = new Map<string, number>(this.ips.map((ip) => [ip, 0]));
    for (const s of this.table.values()) holders.set(s.egressIp, (holders.get(s.egressIp) ?? 0) + 1);
    const candidates = this.ips.filter((ip) => ip !== not || this.ips.length === 1);
    const least = Math.min(...candidates.map((ip) => holders.get(ip)!));
    const pick = candidates.filter((ip) => holders.get(ip) === least);
    const ip = pick[this.cursor % pick.length]!;
    this.cursor++;
    return ip;
  }

  private next(not: string | undefined): string {
    const ip = this.ips[this.cursor % this.ips.length]!;
    this.cursor++;
    return ip === not && this.ips.length > 1 ? this.next(not) : ip;
  }
}
