/**
 * The fleet as plain data: `stats({ fleet: true })` and `session-proxy
 * fleet` both print this. Built from one store snapshot; proxies are shown
 * by their redacted URL (the store never has more).
 */
import type { FleetSnapshot } from './types.js';

export interface FleetHolder {
  readonly instance: string;
  readonly host?: string;
  readonly pid?: number;
  /** Lease time left (ms, store clock). */
  readonly leaseLeftMs: number;
  /** The holder has acknowledged the account's current assignment. */
  readonly acked: boolean;
}

export interface FleetAccountStats {
  readonly account: string;
  /** Redacted URL of the proxy the fleet has the account on (a gateway's sessionless form). */
  readonly proxy: string;
  /** On a rotating gateway: the account's session there. */
  readonly session?: string;
  readonly version: number;
  readonly state: 'ready' | 'moving';
  readonly holders: FleetHolder[];
  readonly requests: number;
  readonly failures: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

export interface FleetProxyStats {
  readonly proxy: string;
  /** The account holding (or last holding) it. */
  readonly account?: string;
  readonly status: 'up' | 'cooldown';
  readonly cooldownLeftMs: number;
  /** Quarantine left after a release or move (ms), before another account may take it. */
  readonly heldForMs: number;
  readonly error?: string;
  readonly requests: number;
  readonly failures: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

export interface FleetInstance {
  readonly instance: string;
  readonly host: string;
  readonly pid: number;
  readonly fingerprint: string;
  readonly seenMsAgo: number;
}

export interface FleetStats {
  readonly epoch: string;
  readonly accounts: FleetAccountStats[];
  readonly proxies: FleetProxyStats[];
  readonly instances: FleetInstance[];
  /** Configuration fingerprints in use: more than one means processes disagree on accounts or pools. */
  readonly fingerprints: string[];
  readonly totals: { readonly requests: number; readonly failures: number; readonly bytesSent: number; readonly bytesReceived: number };
}

export function summarizeFleet(s: FleetSnapshot): FleetStats {
  const instances = new Map(s.instances.map((i) => [i.instance, i]));
  const url = new Map(s.proxies.map((p) => [p.key, p.url ?? p.key]));
  const zero = () => ({ requests: 0, failures: 0, bytesSent: 0, bytesReceived: 0 });
  const perAccount = new Map<string, ReturnType<typeof zero>>();
  const perProxy = new Map<string, ReturnType<typeof zero>>();
  const totals = zero();
  for (const r of s.stats) {
    for (const [map, k] of [[perAccount, r.account], [perProxy, r.key]] as const) {
      const c = map.get(k) ?? zero();
      c.requests += r.requests;
      c.failures += r.failures;
      c.bytesSent += r.bytesSent;
      c.bytesReceived += r.bytesReceived;
      map.set(k, c);
    }
    totals.requests += r.requests;
    totals.failures += r.failures;
    totals.bytesSent += r.bytesSent;
    totals.bytesReceived += r.bytesReceived;
  }
  return {
    epoch: s.epoch,
    accounts: s.accounts
      .map((a) => ({
        account: a.account,
        proxy: url.get(a.proxy) ?? a.proxy,
        ...(a.session ? { session: a.session.id } : {}),
        version: a.ver,
        state: a.state,
        holders: a.holders.map((h) => ({ instance: h.instance, host: instances.get(h.instance)?.host, pid: instances.get(h.instance)?.pid, leaseLeftMs: Math.max(0, h.expiry - s.now), acked: h.ack >= a.ver })),
        ...(perAccount.get(a.account) ?? zero()),
      }))
      .sort((x, y) => (x.account < y.account ? -1 : 1)),
    proxies: s.proxies
      .map((p) => ({
        proxy: p.url ?? p.key,
        account: p.owner,
        status: p.down > s.now ? ('cooldown' as const) : ('up' as const),
        cooldownLeftMs: Math.max(0, p.down - s.now),
        heldForMs: Math.max(0, p.until - s.now),
        error: p.down > s.now ? p.error : undefined,
        ...(perProxy.get(p.key) ?? zero()),
      }))
      .sort((x, y) => (x.proxy < y.proxy ? -1 : 1)),
    instances: s.instances.map((i) => ({ instance: i.instance, host: i.host, pid: i.pid, fingerprint: i.fp, seenMsAgo: Math.max(0, s.now - (i.seen ?? i.started)) })),
    fingerprints: [...new Set(s.instances.map((i) => i.fp))],
    totals,
  };
}
