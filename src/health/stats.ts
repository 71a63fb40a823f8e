/** `manager.stats()`: plain data, per proxy (redacted) and per account. */
import type { ProxyEndpoint, ProxyInfo } from '../proxy/endpoint.js';
import type { AccountPools } from '../routing/account-pools.js';
import type { ProxyHealth, ProxyStatus } from './proxy-health.js';
import { emptyCounters, type TrafficCounters } from './traffic-stats.js';

export interface ProxyStats extends TrafficCounters {
  readonly proxy: ProxyInfo;
  readonly status: ProxyStatus;
  /** Accounts whose active proxy this is. */
  readonly accounts: string[];
}

export interface AccountStats extends TrafficCounters {
  readonly account: string;
  readonly active: ProxyInfo;
}

export interface ManagerStats {
  readonly proxies: ProxyStats[];
  readonly accounts: AccountStats[];
}

function add(into: TrafficCounters, c: TrafficCounters): void {
  into.requests += c.requests;
  into.failures += c.failures;
  into.openConnections += c.openConnections;
  into.bytesSent += c.bytesSent;
  into.bytesReceived += c.bytesReceived;
  if (c.lastLatencyMs !== undefined) into.lastLatencyMs = c.lastLatencyMs;
}

export function buildStats(rows: Array<{ account: string; proxyKey: string } & TrafficCounters>, pools: AccountPools, health: (p: ProxyEndpoint) => ProxyHealth): ManagerStats {
  const proxies = new Map<string, ProxyEndpoint>();
  for (const pool of pools.all()) for (const p of pool.proxies) proxies.set(p.identityKey, p);
  const perProxy = new Map<string, TrafficCounters>();
  const perAccount = new Map<string, TrafficCounters>();
  for (const row of rows) {
    if (!perProxy.has(row.proxyKey)) perProxy.set(row.proxyKey, emptyCounters());
    if (!perAccount.has(row.account)) perAccount.set(row.account, emptyCounters());
    add(perProxy.get(row.proxyKey)!, row);
    add(perAccount.get(row.account)!, row);
  }
  return {
    proxies: [...proxies.values()].map((p) => ({
      ...(perProxy.get(p.identityKey) ?? emptyCounters()),
      proxy: p.info(),
      status: health(p).status,
      accounts: pools.holders(p.identityKey),
    })),
    accounts: [...pools.all()].map((pool) => ({
      ...(perAccount.get(pool.name) ?? emptyCounters()),
      account: pool.name,
      active: pool.proxies[pool.active].info(),
    })),
  };
}
