/**
 * A proxy's identity in the fleet: the same in every process that configures
 * the same proxy, and free of secrets. `ProxyEndpoint.identityKey` cannot
 * serve: it includes a per-process salted digest of the password (equal
 * within one process, different in the next). A hash of the password would
 * be worse — written to a shared store it exposes the password to offline
 * guessing — so the fleet key is a hash of what is not secret: protocol,
 * host, port, username. Two entries that differ only in their password are
 * one identity to the fleet: the conservative direction (they are one exit
 * IP at most once).
 *
 * A rotating gateway's session endpoints share one fleet key, the gateway's
 * (its slot: vendor, host, port, base username, country, city — never the
 * session id, wherever the vendor carries it, nor the password): the store
 * keeps which session each account is on (routing/fleet.ts), so processes
 * agree on it, and health is per gateway fleet-wide as it is locally.
 */
import { createHash } from 'node:crypto';
import type { ProxyEndpoint } from '../proxy/endpoint.js';

const keys = new WeakMap<ProxyEndpoint, string>();

/** 32 hex characters (128 bits of SHA-256): collisions are not a concern at fleet sizes. */
export function fleetKey(proxy: ProxyEndpoint): string {
  const cached = keys.get(proxy);
  if (cached) return cached;
  const what = proxy.gateway ? ['session-proxy.fleet.gateway.v1', proxy.gateway.slot] : ['session-proxy.fleet.v1', proxy.protocol, proxy.host, proxy.port, proxy.username ?? null];
  const key = createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 32);
  keys.set(proxy, key);
  return key;
}

/** The gateway session an endpoint carries (undefined: a plain proxy, or a sessionless gateway entry). */
export function sessionOf(proxy: ProxyEndpoint): string | undefined {
  return proxy.gateway?.session;
}

/** What the fleet shows of a proxy: the redacted URL (no password, ever); a gateway's sessionless form. */
export function fleetUrl(proxy: ProxyEndpoint): string {
  return proxy.gateway?.slotUrl || proxy.url;
}

/**
 * The configuration fingerprint: the accounts and the fleet keys of their
 * pools, in order, and the exclusivity rule. Processes whose fingerprints
 * differ are reported (event + CLI); leases stay correct because every
 * process only takes proxies its own pool has, and a move only picks proxies
 * every live holder of the account has. (A gateway's fleet key has no
 * session in it: processes proposing different sessions still agree.)
 */
export function configFingerprint(pools: Iterable<{ name: string; proxies: readonly ProxyEndpoint[] }>, exclusive: boolean): string {
  const rows = [...pools].map((p) => [p.name, p.proxies.map((e) => fleetKey(e))] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return createHash('sha256').update(JSON.stringify([exclusive, rows])).digest('hex').slice(0, 16);
}
