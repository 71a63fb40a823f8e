import type { ConnectionOptions } from 'node:tls';
import type { ProxyInput, ProxyProtocol } from './proxy/endpoint.js';
import type { RotationStrategy } from './routing/strategies.js';
import type { HealthOptions } from './health/proxy-health.js';
import type { HealthCheckOptions } from './health/health-registry.js';
import type { GatewayDefinition, GatewayInput } from './gateways/definition.js';
import type { SessionStore } from './gateways/sessions.js';
import type { WatchEgressConfig } from './egress/watch.js';

/**
 * One pool entry: a proxy, or a rotating gateway (`{ url, gateway: 'brightdata', country, lifetime }`):
 * one vendor URL on which each account gets a session (an IP) of its own.
 */
export type PoolEntryInput = ProxyInput | GatewayInput | GatewayDefinition;

/** One proxy, or a pool of them (the first is active; rotate() and failover move on). */
export type ProxySpec = PoolEntryInput | readonly PoolEntryInput[];

/** `A`: the account names (keys of `accounts`); see `SessionProxyManager<A>`. */
export interface SessionProxyOptions<A extends string = string> {
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
  accounts?: Record<A, ProxySpec>;
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
   * TLS options for connections to *targets* opened by the layers the
   * library owns: fetch/undici and the global WebSocket; for http/https and
   * ws, the options a request (or its agent) does not set itself. A `ca`
   * replaces Node's roots: `{ ca: [...tls.rootCertificates, corporateCa] }`
   * keeps them.
   * @example { ca: readFileSync('corp-ca.pem') }
   */
  requestTls?: ConnectionOptions;
  /**
   * Trust the operating system's CA store in addition to Node's roots (or
   * to a connection's own `ca`) for the library's own TLS connections: to
   * targets from fetch/undici, http/https, ws and the global WebSocket, and
   * to https:// proxies. Node ≥ 22.15 reads the store itself
   * (`tls.getCACertificates('system')`); Node 20 reads the OS bundle file:
   * `SSL_CERT_FILE`, else the first of `/etc/ssl/certs/ca-certificates.crt`
   * and the like. Clients the library only relays (an app's own undici
   * Pool, http2, grpc-js) need Node's `--use-system-ca`.
   * @default false
   */
  systemCa?: boolean;
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
   * What configuration a child process receives (by reference: a private
   * 0600 file its environment points to, never credentials in the
   * environment). `route`: the pools of the route it was spawned for only —
   * the account's inside `withProxy(account)`, the default pool outside
   * scopes. `all`: every account's, as Workers and `cluster.fork()` workers
   * always get (they are the app itself).
   * @default 'route'
   */
  childConfig?: 'route' | 'all';
  /**
   * Where each account's session on a rotating gateway is kept (id and when it was minted, never a
   * password): a store shared by several processes lets an account keep its IP across them.
   * @default in memory
   */
  sessionStore?: SessionStore;
  /**
   * Re-check every active account's egress IP through its own route on an interval, so an IP
   * that changes under a sticky session never goes unnoticed (`egress-change` event), with
   * `onChange: 'event' | 'quarantine' | 'rotate'`; `accounts` sets it per account (`false`: off).
   * One small request per account per interval; each account on its own random phase.
   * @default off
   * @example { interval: 60_000, onChange: 'quarantine', accounts: { scraper: false } }
   */
  watchEgress?: WatchEgressConfig;
}
