/**
 * Accounts and their proxy pools. An account is sticky: all its traffic uses
 * its active proxy until rotate() (or failover) moves it on. The default pool
 * (option `proxy`) is the reserved account `default`.
 */
import { ConfigError, UnknownAccountError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { Target } from './route.js';
import { ruleLabel } from './rules.js';

export const DEFAULT_ACCOUNT = 'default';

export interface AccountPool {
  readonly name: string;
  /** Replaced (never mutated) when a gateway entry moves to a new session: see replace(). */
  proxies: readonly ProxyEndpoint[];
  active: number;
}

const addressOf = (host: string, port: number): string => `${host.toLowerCase()}:${port}`;

export class AccountPools {
  private readonly pools = new Map<string, AccountPool>();
  /** How many configured proxies listen at each `host:port`: asked on every request, so a lookup, not a walk. */
  private readonly addresses = new Map<string, number>();

  has(account: string): boolean {
    return this.pools.has(account);
  }

  get(account: string): AccountPool | undefined {
    return this.pools.get(account);
  }

  /** @throws UnknownAccountError */
  require(account: string): AccountPool {
    const pool = this.pools.get(account);
    if (!pool) {
      const known = [...this.pools.keys()].map((n) => `"${n}"`).join(', ') || 'none';
      throw new UnknownAccountError(`unknown account "${account}" (configured: ${known})`);
    }
    return pool;
  }

  active(account: string): ProxyEndpoint {
    const pool = this.require(account);
    return pool.proxies[pool.active];
  }

  set(account: string, proxies: readonly ProxyEndpoint[]): AccountPool {
    if (proxies.length === 0) throw new ConfigError(`account "${account}" has an empty proxy pool`);
    this.delete(account);
    const pool: AccountPool = { name: account, proxies, active: 0 };
    this.pools.set(account, pool);
    for (const p of proxies) this.count(p, 1);
    return pool;
  }

  delete(account: string): AccountPool | undefined {
    const pool = this.pools.get(account);
    if (!pool) return undefined;
    this.pools.delete(account);
    for (const p of pool.proxies) this.count(p, -1);
    return pool;
  }

  /** Is a configured proxy (of any account) listening at this address? */
  isProxyAddress(target: Target): boolean {
    return this.addresses.has(addressOf(target.host, target.port));
  }

  private count(p: ProxyEndpoint, delta: number): void {
    const key = addressOf(p.host, p.port);
    const n = (this.addresses.get(key) ?? 0) + delta;
    if (n > 0) this.addresses.set(key, n);
    else this.addresses.delete(key);
  }

  /** Swaps one entry of a pool (a gateway's new session: same host and port, another identity). */
  replace(account: string, index: number, endpoint: ProxyEndpoint): void {
    const pool = this.require(account);
    const old = pool.proxies[index];
    if (!old) throw new RangeError(`account "${account}" has no pool entry ${index}`);
    this.count(old, -1);
    this.count(endpoint, 1);
    pool.proxies = pool.proxies.map((p, i) => (i === index ? endpoint : p));
  }

  names(): string[] {
    return [...this.pools.keys()];
  }

  all(): IterableIterator<AccountPool> {
    return this.pools.values();
  }

  /** Accounts whose active proxy has this identity. */
  holders(identityKey: string): string[] {
    const out: string[] = [];
    for (const pool of this.pools.values()) if (pool.proxies[pool.active].identityKey === identityKey) out.push(pool.name);
    return out;
  }

  /** Accounts whose active proxy shares this health key (every session of one gateway does). */
  healthHolders(healthKey: string): string[] {
    const out: string[] = [];
    for (const pool of this.pools.values()) if (pool.proxies[pool.active].healthKey === healthKey) out.push(pool.name);
    return out;
  }

  /**
   * Exclusivity: give every account an active proxy no other account holds.
   * Accounts are served in configuration order; one left with nothing free
   * is a configuration that forces sharing.
   */
  assignExclusive(): void {
    const taken = new Map<string, string>();
    for (const pool of this.pools.values()) {
      const free = pool.proxies.findIndex((p) => !taken.has(p.identityKey));
      if (free === -1) {
        const holders = [...new Set(pool.proxies.map((p) => taken.get(p.identityKey)!))];
        // A rule's proxy is a pool in exclusivity too (routing/rules.ts): name the rule, not its pool key.
        if ([pool.name, ...holders].some((n) => ruleLabel(n) !== undefined)) {
          const named = (n: string): string => ruleLabel(n) ?? (n === DEFAULT_ACCOUNT ? 'the default pool (option `proxy`)' : `account "${n}"`);
          throw new ConfigError(`${named(pool.name)} and ${holders.map(named).join(', ')} would have to share a proxy (exclusive: true); a rule's proxy is a pool like an account's: give it a proxy of its own, or set exclusive: false`);
        }
        const others = holders.map((n) => `"${n}"`).join(', ');
        throw new ConfigError(`accounts "${pool.name}" and ${others} would have to share a proxy (exclusive: true); give each account its own proxy, or set exclusive: false`);
      }
      pool.active = free;
      taken.set(pool.proxies[free].identityKey, pool.name);
    }
  }

  /**
   * A configured proxy listening at target that is not `owner`'s active one
   * (a connection there would leave through someone else's proxy); `owner`
   * undefined: any configured proxy.
   */
  proxyAt(target: Target, owner: string | undefined): { proxy: ProxyEndpoint; pool: string } | undefined {
    if (!this.isProxyAddress(target)) return undefined;
    const host = target.host.toLowerCase();
    const at = (p: ProxyEndpoint): boolean => p.host === host && p.port === target.port;
    const pool = owner === undefined ? undefined : this.pools.get(owner);
    // The account's own active proxy is its legitimate way out, whatever else listens there.
    if (pool && at(pool.proxies[pool.active])) return undefined;
    for (const other of this.pools.values()) {
      const found = other.proxies.find(at);
      if (found) return { proxy: found, pool: other.name };
    }
    return undefined;
  }
}
