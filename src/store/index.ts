/**
 * The `store` option: where the state several processes must agree on
 * lives. `'redis://host:port/db'` (or `rediss://`), a Redis Cluster
 * (`'redis+cluster://h1:p1,h2:p2'` or `{ cluster: [URLs] }`), a Sentinel
 * set (`'redis+sentinel://s1:p1,s2:p2/name'` or `{ sentinel: { name, nodes } }`),
 * each with `prefix` and `leaseTtl` in the object form, make the process one
 * of a fleet; `'memory:'` is the in-process store with the same protocol
 * (one process). Without the option nothing of this runs.
 */
import { ConfigError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { REDIS_PACKAGE_HINT, RedisStore, redisAvailable } from './redis.js';
import { StoreSpecError, describeTarget, parseStoreTarget, type StoreTarget } from './target.js';
import type { FleetStore } from './types.js';
import { summarizeFleet, type FleetStats } from './summary.js';

/** A Redis Sentinel set: the primary the sentinels monitor under `name`. */
export interface StoreSentinelOptions {
  /** The primary's name, as in the sentinels' `sentinel monitor <name> …`. */
  name: string;
  /**
   * Some of the sentinels: `redis://host:port` (`rediss://` for TLS to the
   * sentinels and the data nodes alike). Credentials written here
   * (`redis://user:password@host:port`, once or alike in every URL) are the
   * primary's and replicas', never sent to the sentinels.
   * @example ['redis://10.0.0.5:26379', 'redis://10.0.0.6:26379', 'redis://10.0.0.7:26379']
   */
  nodes: string[];
  /**
   * The database on the primary.
   * @default 0
   */
  database?: number;
}

export interface StoreOptions {
  /**
   * One Redis: `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS);
   * a Cluster: `redis+cluster://[user:password@]h1:p1,h2:p2` (`rediss+cluster://`);
   * a Sentinel set: `redis+sentinel://[user:password@]s1:p1,s2:p2/name[/db]`
   * (`rediss+sentinel://`); or `memory:` (in-process). One of `url`,
   * `cluster` and `sentinel`.
   */
  url?: string;
  /**
   * A Redis Cluster: some of its nodes (`redis://[user:password@]host:port`,
   * `rediss://…`); the client discovers the others and logs in to every
   * node with the credentials written here (once, or alike in every URL).
   * The fleet's keys share one hash slot (see `prefix`).
   * @example ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000', 'redis://10.0.0.3:7000']
   */
  cluster?: string[];
  /** A Redis Sentinel set: the primary's name and some of the sentinels. */
  sentinel?: StoreSentinelOptions;
  /**
   * Key prefix shared by the processes of one fleet; it is also the hash
   * tag (`{prefix}`) that keeps the fleet's keys in one Redis Cluster slot.
   * @default 'session-proxy'
   */
  prefix?: string;
  /**
   * Lease time to live (ms). A process that cannot renew stops its
   * accounts' traffic before it ends; a proxy released or rotated away from
   * waits this long (plus a margin) before another account may take it.
   * @default 15000
   */
  leaseTtl?: number;
  /**
   * The configuration fingerprint this process registers in the fleet:
   * what `fleet-mismatch` and `session-proxy fleet` compare to find
   * processes running another configuration (a rolling deploy). Set it to
   * name a configuration yourself (a release id) when processes configure
   * different parts of it on purpose. A child process, Worker or
   * `cluster.fork()` worker of a fleet process is handed its parent's: its
   * configuration is a part of the parent's (a route child has one
   * account's pool; every copy starts each pool at the parent's active
   * proxy), not another one.
   * @default a hash of the accounts and the fleet keys of their pools
   */
  fingerprint?: string;
}

export type StoreSpec = string | StoreOptions;

export const STORE_ENV = 'SESSION_PROXY_STORE';
export const DEFAULT_PREFIX = 'session-proxy';
export const DEFAULT_LEASE_TTL = 15_000;
/** The lease TTL may not go below this: renewals run every TTL/3. */
export const MIN_LEASE_TTL = 500;

export interface ResolvedStore {
  readonly target: StoreTarget;
  /** The location as shown (URL form, credentials masked). */
  readonly where: string;
  readonly prefix: string;
  readonly ttl: number;
  /** Local deadlines end `margin` before the lease; quarantine and the epoch rule add it after. */
  readonly margin: number;
  /** Option `store.fingerprint`, when given. */
  readonly fingerprint?: string;
}

/** @throws ConfigError naming the key when the location cannot be used (the value never shown) */
export function resolveStore(spec: StoreSpec): ResolvedStore {
  const o: StoreOptions = typeof spec === 'string' ? { url: spec } : spec;
  let target: StoreTarget;
  try {
    target = parseStoreTarget(typeof spec === 'string' ? spec : o);
  } catch (err) {
    if (err instanceof StoreSpecError) throw new ConfigError(err.message);
    throw err;
  }
  const ttl = o.leaseTtl ?? DEFAULT_LEASE_TTL;
  const r = { target, where: describeTarget(target), prefix: o.prefix ?? DEFAULT_PREFIX, ttl, margin: leaseMargin(ttl) };
  return o.fingerprint === undefined ? r : { ...r, fingerprint: o.fingerprint };
}

/** A fifth of the TTL, at least 100 ms, at most 3 s: clock-rate differences, bytes in flight, a slow event loop. */
export function leaseMargin(ttl: number): number {
  return Math.min(3000, Math.max(100, Math.round(ttl / 5)));
}

/** Throws ConfigError when the store needs a client that is not installed (checked when the manager is built). */
export function checkStoreClient(r: ResolvedStore, available: () => boolean = redisAvailable): void {
  if (r.target.kind === 'memory') return;
  if (!available()) throw new ConfigError(`store ${r.where}: the Redis client is not installed: ${REDIS_PACKAGE_HINT}`);
}

export function createStore(r: ResolvedStore, timeoutMs = Math.max(250, Math.min(2000, Math.round(r.ttl / 4)))): FleetStore {
  if (r.target.kind === 'memory') return new MemoryStore();
  return new RedisStore({ target: r.target, prefix: r.prefix, timeoutMs });
}

/**
 * The fleet as the store has it, for `session-proxy fleet` and monitoring:
 * accounts, their proxies (redacted), holders, lease time left, health,
 * traffic, configuration fingerprints. Connects, reads, disconnects.
 * @throws ConfigError when node-redis is not installed
 */
export async function readFleet(spec: StoreSpec, options: { timeoutMs?: number } = {}): Promise<FleetStats> {
  const r = resolveStore(spec);
  checkStoreClient(r);
  const store = createStore(r, options.timeoutMs ?? 5000);
  try {
    await withTimeout(store.connect(), options.timeoutMs ?? 5000, `store ${store.where} did not accept a connection`);
    return summarizeFleet(await store.snapshot());
  } finally {
    await store.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

export { MemoryStore } from './memory.js';
export { RedisStore } from './redis.js';
export { fleetKey, configFingerprint } from './identity.js';
export { describeTarget, parseStoreTarget, type StoreTarget } from './target.js';
export type * from './types.js';
export type * from './summary.js';
