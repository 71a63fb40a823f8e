import type { ConnectionOptions } from 'node:tls';
import type { ProxyInput, ProxyProtocol } from './proxy/endpoint.js';
import type { RotationStrategy } from './routing/strategies.js';
import type { HealthOptions } from './health/proxy-health.js';
import type { HealthCheckOptions } from './health/health-registry.js';
import type { StoreOptions } from './store/index.js';

/** One proxy, or a pool of them (the first is active; rotate() and failover move on). */
export type ProxySpec = ProxyInput | readonly ProxyInput[];

export interface SessionProxyOptions {
  /**
   * The default pool: traffic outside any `withProxy` scope leaves through it
   * (the reserved account `default`).
   * @example 'http://user:pass@10.0.0.5:8080'
   */
  proxy?: ProxySpec;
  /**
   * One proxy or pool per account.
   * @example { alice: 'socks5h://a:pw@10.0.0.6:1080', bob: ['http://10.0.0.7:3128', 'http://10.0.0.8:3128'] }
   */
  accounts?: Record<string, ProxySpec>;
  /**
   * Targets that go direct. A given list replaces the loopback default;
   * `[]` routes loopback too. Outside scopes, the operator's env NO_PROXY
   * also applies; inside account scopes it does not.
   * @default ['localhost', '127.0.0.0/8', '::1']
   */
  noProxy?: string | readonly string[];
  /**
   * Never send traffic direct when a proxy was due: such requests fail with
   * LeakBlockedError. `false` lets them go direct with a `leak` event.
   * @default true
   */
  strict?: boolean;
  /**
   * Refuse traffic outside any scope when no default proxy is set.
   * @default false
   */
  requireScope?: boolean;
  /**
   * Export the default proxy as HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY
   * (both cases) while installed.
   * @default true
   */
  env?: boolean;
  /**
   * Scheme for vendor `host:port` proxies.
   * @default 'http'
   */
  defaultProtocol?: ProxyProtocol;
  /**
   * TLS options for connections to *targets* opened by the fetch/undici
   * layer (the http layer uses each request's own options), e.g. `{ ca }`.
   */
  requestTls?: ConnectionOptions;
  /**
   * Tunnel connections the HTTP layers do not see (an app's own undici
   * Agent/Pool — ccxt —, http2, grpc-js, raw net/tls) through the scope's
   * proxy. `false` refuses them per `strict`.
   * @default true
   */
  tunnelSockets?: boolean;

  /**
   * Which proxy an account moves to on rotate() and failover.
   * @default 'round-robin'
   */
  strategy?: RotationStrategy;
  /**
   * `sticky`: an account uses its active proxy until rotate()/failover (an
   * exchange sees one IP per account). `per-connection`: each new
   * connection picks the next healthy proxy of the pool (scraping).
   * @default 'sticky'
   */
  balance?: 'sticky' | 'per-connection';
  /**
   * Two accounts never hold the same proxy identity at once; rotation and
   * failover skip proxies another account holds. A configuration that
   * forces sharing fails with ConfigError.
   * @default true when accounts are configured
   */
  exclusive?: boolean;
  /**
   * Move an account off a failing proxy automatically.
   * @default true for pools of 2+, false for a single proxy
   */
  failover?: boolean;
  /** When a proxy goes into cooldown. @default { threshold: 3, windowMs: 30000, cooldownMs: 5000, maxCooldownMs: 300000 } */
  health?: HealthOptions;
  /** Periodic probes of every proxy. Off by default. */
  healthCheck?: HealthCheckOptions;
  /** IP-echo endpoints for verifyEgress/verifyAll. @default DEFAULT_EGRESS_ENDPOINTS */
  egressEndpoints?: readonly string[];
  /** Verify each account's egress before its first connection. @default false */
  verifyOnStart?: boolean;
  /** Verify again after each rotation or failover. @default false */
  verifyOnRotate?: boolean;
  /** Re-verify every account this often (ms). */
  verifyEvery?: number;
  /** `quarantine` stops an account's traffic after a failed verification until one succeeds. @default 'error' */
  onMismatch?: 'error' | 'quarantine';
  /**
   * Connection pools of an (account, proxy) unused this long are closed and
   * dropped (ms). Keep it above the longest gap between an account's
   * requests: below it, each request pays a new tunnel and TLS handshake.
   * @default 300000
   */
  idleTimeout?: number;
  /**
   * How long a connection drained off an account's old proxy by rotate() or
   * failover may keep running its in-flight request or stream (an SSE feed,
   * a gRPC server stream, a long download) before it is cut with
   * DrainTimeoutError (ms). Idle connections close at once; `0` cuts busy
   * ones at once too.
   * @default 30000
   */
  drainTimeout?: number;
  /**
   * Share leases, assignments, health and stats with the other processes of
   * a fleet through Redis (node-redis, `npm install redis`): one proxy
   * identity is held by at most one account fleet-wide, an account leaves
   * through one proxy in every process, assignments survive restarts, a
   * proxy down in one process is down for all. `'memory:'`: the same
   * protocol in-process. Also config key `store` and env
   * `SESSION_PROXY_STORE`. Unset: every process decides alone (nothing
   * changes).
   * @example 'redis://127.0.0.1:6379/0'
   * @example { url: 'rediss://redis.internal:6380', prefix: 'bots', leaseTtl: 15000 }
   */
  store?: string | StoreOptions;
}
