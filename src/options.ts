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
import type { StoreOptions } from './store/index.js';

/** One proxy, or a pool of them (the first is active; rotate() and failover move on). */
export type ProxySpec = PoolEntryInput | readonly PoolEntryInput[];

/**
 * One per-destination rule (option `rules`; the first that matches decides).
 * @example { match: ['api.openai.com', '*.anthropic.com'], proxy: 'http://eu-proxy:3128' }
 * @example { match: 'ollama.internal:11434', proxy: 'direct' }
 * @example { match: 'telemetry.example.com', proxy: 'block', scopes: true }
 */
export interface RoutingRule {
  /**
   * One entry or a list, in the NO_PROXY syntax (`host`, `*.suffix` /
   * `.suffix`, `host:port`, IPv4, IPv6, CIDR), each optionally with a URL
   * scheme (`https://api.example.com`, `wss://stream.example.com`). A scheme
   * is honoured by the layers that know it (fetch/undici, http/https, ws);
   * the socket layer (own undici pools, http2, grpc-js, raw sockets) sees
   * host and port only, where a rule with a scheme never matches.
   */
  match: string | readonly string[];
  /**
   * A proxy or pool (like an account's: failover, health, `exclusive` —
   * a proxy an account holds is a ConfigError), `'direct'`, or `'block'`
   * (LeakBlockedError, whatever `strict` says).
   */
  proxy: ProxySpec | 'direct' | 'block';
  /**
   * Also apply inside account scopes, where only `'direct'` and `'block'`
   * are allowed: a rule may narrow an account's traffic, never send it
   * through another proxy. Without it, an account's traffic keeps the
   * account's proxy whatever the rules say.
   * @default false
   */
  scopes?: boolean;
}

/** Option `pac` in full; a string is the same as `{ url }` or `{ script }`. */
export interface PacOptions {
  /** `http(s)://…` (fetched by the library's own connections) or `file://…`. */
  url?: string;
  /** The script text, defining `FindProxyForURL(url, host)`. */
  script?: string;
  /** Fetch a URL again this often (ms); a changed script replaces the old one, a failed fetch keeps it. `0`: never. @default 600000 */
  refreshInterval?: number;
  /** Timeout of one fetch of the PAC (ms). @default 10000 */
  fetchTimeout?: number;
  /** CPU time one run of the script may take (ms): a runaway script is interrupted. @default 1000 */
  evalTimeout?: number;
  /** Answers kept (per host:port). @default 1000 */
  cacheSize?: number;
}
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
   * Per-destination routing for traffic outside account scopes, first match
   * wins; before `noProxy`, env NO_PROXY, `pac` and `proxy`. Inside an
   * account's scope only rules with `scopes: true` apply ('direct' or
   * 'block'). Node children follow them through the preload; other children
   * only get the default proxy's variables.
   * @example [{ match: '*.openai.com', proxy: 'http://us-proxy:3128' }, { match: 'localhost:11434', proxy: 'direct' }]
   */
  rules?: readonly RoutingRule[];
  /**
   * A PAC file deciding the default route (traffic outside account scopes,
   * after `rules` and `noProxy`): a URL (`http://wpad.corp/proxy.pac`,
   * `file:///etc/proxy.pac`), the script text, or PacOptions. Evaluated in a
   * QuickJS WebAssembly sandbox; needs the optional dependencies
   * `pac-resolver` and `quickjs-wasi`.
   */
  pac?: string | PacOptions;
  /**
   * When the PAC cannot be loaded, throws or runs out of time: `'fail'`
   * refuses with ProxyUnavailableError naming the PAC; `'direct'` goes
   * direct.
   * @default 'fail'
   */
  pacFallback?: 'fail' | 'direct';
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
   * @example 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000' (a Redis Cluster; or { cluster: [URLs] })
   * @example 'redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/mymaster' (a Sentinel set; or { sentinel: { name, nodes } })
   */
  store?: string | StoreOptions;
}
