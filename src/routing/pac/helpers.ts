/**
 * The PAC helpers that touch the host, replacing pac-resolver's own:
 *
 * - `myIpAddress()` comes from `os.networkInterfaces()` (the first
 *   non-internal IPv4, else 127.0.0.1). pac-resolver's opens a socket to
 *   8.8.8.8:53 to learn the local address: a connection to a public resolver
 *   that every route would see leave this host directly.
 * - `dnsResolve`, `isResolvable`, `isInNet` look names up with the library's
 *   own lookup (Node's `dns.lookup` as it was when this module loaded, under
 *   no scope: plumbing, no hook routes or re-enters the PAC), and every
 *   lookup is reported on `session-proxy:dns`.
 *
 * They are **synchronous** inside the sandbox: an evaluation runs the
 * script with the names resolved so far; a name not yet known reads as
 * unresolvable and is recorded, the result of that run is discarded, the
 * missing names are looked up on the host, and the script runs again
 * (engine.ts). So no guest code ever waits on a host promise, nothing in
 * the sandbox outlives a call, and a runaway script is interrupted inside
 * one synchronous call.
 */
import dns from 'node:dns';
import { isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { state } from '../../state.js';
import { publish } from '../../diagnostics.js';

/** Captured at load, before any layer wraps it: the PAC's lookups are the library's own. */
const lookup = dns.lookup;

/** How long a looked-up name is remembered (ms), and how many. */
const DNS_TTL_MS = 60_000;
const DNS_CACHE_SIZE = 512;
/** One lookup may take this long before the name counts as unresolvable. */
export const DNS_TIMEOUT_MS = 5_000;

export function myIpAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** Names looked up for the PAC: `null` = unresolvable. Bounded, short-lived. */
export class PacDns {
  private readonly cache = new Map<string, { address: string | null; until: number }>();

  constructor(private readonly label: string) {}

  /** The known answer (`undefined`: not looked up yet). IP literals answer themselves. */
  known(host: string): string | null | undefined {
    if (isIP(host)) return isIPv4(host) ? host : null;
    const hit = this.cache.get(host.toLowerCase());
    if (!hit) return undefined;
    if (hit.until < Date.now()) {
      this.cache.delete(host.toLowerCase());
      return undefined;
    }
    return hit.address;
  }

  /** Looks `hosts` up (IPv4, as PAC's helpers are defined), in parallel, each bounded by DNS_TIMEOUT_MS. */
  async resolve(hosts: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(hosts)].map((h) => this.resolveOne(h)));
  }

  private resolveOne(host: string): Promise<void> {
    publish('dns', () => ({ account: undefined, hostname: host, reason: `${this.label}: dnsResolve/isResolvable/isInNet (a local lookup by session-proxy's PAC helpers)` }));
    return new Promise<void>((resolve) => {
      let done = false;
      const settle = (address: string | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (this.cache.size >= DNS_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(host.toLowerCase(), { address, until: Date.now() + DNS_TTL_MS });
        resolve();
      };
      const timer = setTimeout(() => settle(null), DNS_TIMEOUT_MS);
      timer.unref();
      // Under no scope: nothing about this lookup belongs to an account.
      state.scopes.exit(() => lookup(host, { family: 4 }, (err, address) => settle(err ? null : address)));
    });
  }
}

/** `isInNet(host, pattern, mask)` once `host` is an address (dotted IPv4 pattern and mask). */
export function inNet(address: string | null, pattern: string, mask: string): boolean {
  if (address === null || !isIPv4(address) || !isIPv4(pattern) || !isIPv4(mask)) return false;
  const n = (ip: string): number => ip.split('.').reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
  const m = n(mask);
  return ((n(address) & m) >>> 0) === ((n(pattern) & m) >>> 0);
}
