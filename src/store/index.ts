/**
 * The `store` option: where the state several processes must agree on
 * lives. `'redis://host:port/db'` (or `rediss://`, or `{ url, prefix,
 * leaseTtl }`) makes the process one of a fleet; `'memory:'` is the
 * in-process store with the same protocol (one process). Without the option
 * nothing of this runs.
 */
import { ConfigError } from '../errors.js';
import { redactUrl } from '../proxy/redact.js';
import { MemoryStore } from './memory.js';
import { REDIS_PACKAGE_HINT, RedisStore, redisAvailable } from './redis.js';
import type { FleetStore } from './types.js';
import { summarizeFleet, type FleetStats } from './summary.js';

export interface StoreOptions {
  /**
   * `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), or
   * `memory:` (in-process).
   */
  url: string;
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
  readonly url: string;
  readonly prefix: string;
  readonly ttl: number;
  /** Local deadlines end `margin` before the lease; quarantine and the epoch rule add it after. */
  readonly margin: number;
  /** Option `store.fingerprint`, when given. */
  readonly fingerprint?: string;
}

export function resolveStore(spec: StoreSpec): ResolvedStore {
  const o: StoreOptions = typeof spec === 'string' ? { url: spec } : spec;
  const ttl = o.leaseTtl ?? DEFAULT_LEASE_TTL;
  const r = { url: o.url, prefix: o.prefix ?? DEFAULT_PREFIX, ttl, margin: leaseMargin(ttl) };
  return o.fingerprint === undefined ? r : { ...r, fingerprint: o.fingerprint };
}

/** A fifth of the TTL, at least 100 ms, at most 3 s: clock-rate differences, bytes in flight, a slow event loop. */
export function leaseMargin(ttl: number): number {
  return Math.min(3000, Math.max(100, Math.round(ttl / 5)));
}

export function isMemoryUrl(url: string): boolean {
  return /^memory:/i.test(url);
}

/** Throws ConfigError when the store needs a client that is not installed (checked when the manager is built). */
export function checkStoreClient(r: ResolvedStore, available: () => boolean = redisAvailable): void {
  if (isMemoryUrl(r.url)) return;
  if (!available()) throw new ConfigError(`store ${redactUrl(r.url)}: the Redis client is not installed: ${REDIS_PACKAGE_HINT}`);
}

export function createStore(r: ResolvedStore, timeoutMs = Math.max(250, Math.min(2000, Math.round(r.ttl / 4)))): FleetStore {
  if (isMemoryUrl(r.url)) return new MemoryStore();
  return new RedisStore({ url: r.url, prefix: r.prefix, timeoutMs });
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
export type * from './types.js';
export type * from './summary.js';
