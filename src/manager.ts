/**
 * SessionProxyManager: accounts and their pools, the routing table, and the
 * layers it installs. install() applies each layer and keeps its restore
 * function; uninstall() runs them in reverse and retires every pool.
 * Health, failover, stats and egress verification are composed here from
 * their own modules (health/, egress/, routing/).
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { state } from './state.js';
import { AlreadyInstalledError, ConfigError, EgressLeakError, EgressMismatchError, NotInstalledError, UnknownAccountError } from './errors.js';
import { checkAccount, checkFunction, checkOptionsArgument } from './arguments.js';
import { parseProxy } from './proxy/parse.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher } from './proxy/no-proxy.js';
import type { ProxyEndpoint, ProxyInfo } from './proxy/endpoint.js';
import { AccountPools, DEFAULT_ACCOUNT, type AccountPool } from './routing/account-pools.js';
import { Router } from './routing/router.js';
import { LeakPolicy, type LeakEvent } from './routing/leak-policy.js';
import { AccountTunnels } from './routing/account-tunnels.js';
import { Rotation, type MoveEvent } from './routing/rotation.js';
import { SocketTunnelRegistry } from './layers/socket/tunnel-registry.js';
import type { Target } from './routing/route.js';
import { ConnectionPools } from './pools/connection-pools.js';
import { ConnectionDrain } from './pools/drain.js';
import { HealthRegistry } from './health/health-registry.js';
import { TrafficStats } from './health/traffic-stats.js';
import { installEnv } from './layers/env.js';
import { RoutingDispatcher, UndiciLayer } from './layers/undici.js';
import { installHttp } from './layers/http.js';
import { installSocketLayer } from './layers/socket/connect-hook.js';
import { guardUndiciRequests } from './guard/undici-requests.js';
import { guardWith, servedRoute } from './guard/ownership.js';
import { guardHttp2Sessions } from './guard/http2-sessions.js';
import { installHttp2WrapperPartition } from './guard/http2-wrapper-partition.js';
import { installGrpcPartition } from './guard/grpc-partition.js';
import { installHttpAgentPartition } from './layers/http-agents.js';
import { LayerStack } from './layers/layer.js';
import { installUndiciPartition } from './guard/undici-partition.js';
import { installChildProcess } from './layers/child-process.js';
import { installDnsAudit } from './layers/dns-audit.js';
import { installDgramLayer } from './layers/dgram.js';
import { installWorkerThreads } from './layers/worker-threads.js';
import { registerEnvFor, registerPaths } from './children/child-env.js';
import { workerOptionsFor } from './children/worker.js';
import { existsSync } from 'node:fs';
import { enableDebugLoggingFromEnv } from './debug.js';
import { askIp, directPath, probeEgress, type EgressOptions, type EgressPath, type EgressResult } from './egress/verify.js';
import { EgressPolicy } from './egress/egress-policy.js';
import { publish } from './diagnostics.js';
import type { ProxySpec, SessionProxyOptions } from './options.js';
import { buildStats, type ManagerStats } from './health/stats.js';
import { checkOptions } from './config/load.js';
import { FleetLeases, type FleetMismatchEvent, type LeaseEvent, type StoreStateEvent } from './routing/fleet.js';
import { checkStoreClient, createStore, resolveStore, type ResolvedStore } from './store/index.js';
import { summarizeFleet, type FleetStats } from './store/summary.js';

export interface RotateOptions {
  /**
   * Cut the account's connections on the old proxy at once — in-flight
   * requests, WebSockets and other long-lived streams included — instead of
   * draining them. @default false
   */
  closeExisting?: boolean;
}

/**
 * `rotate` event: account, from, to, reason (`manual` | `failover`), and the
 * connections on the old proxy: `closed` (cut at once by closeExisting),
 * `drained` (idle, closed at once), `draining` (finishing their requests or
 * streams; cut after `drainTimeout`).
 */
export type RotateEvent = MoveEvent;

export interface ProxyHealthEvent {
  readonly proxy: ProxyInfo;
  /** Accounts whose active proxy this is. */
  readonly accounts: string[];
  readonly error?: string;
  /** When the next probe is due (proxy-down). */
  readonly nextProbeAt?: number;
  readonly latencyMs?: number;
}

export type EgressEvent = EgressResult & { readonly status: 'verified' } | { readonly account: string; readonly proxy: ProxyInfo; readonly status: 'mismatch' | 'failed'; readonly error: string };

export interface VerifyRow {
  readonly account: string;
  readonly proxy: ProxyInfo;
  readonly ok: boolean;
  readonly ip?: string;
  readonly endpoint?: string;
  readonly latencyMs?: number;
  readonly error?: string;
  /** Other accounts that egress from the same IP. */
  readonly sameIpAs: string[];
}

export interface SessionProxyEvents {
  leak: [LeakEvent];
  rotate: [RotateEvent];
  egress: [EgressEvent];
  'proxy-down': [ProxyHealthEvent];
  'proxy-up': [ProxyHealthEvent];
  /** The fleet store (option `store`) stopped answering: leases hold until their local deadlines, then traffic stops. */
  'store-down': [StoreStateEvent];
  /** The fleet store answers again (`epochChanged`: it came back empty; leases start over after TTL + margin). */
  'store-up': [StoreStateEvent];
  /** This process's lease on an account was gone when it renewed (paused, cut off): its connections were cut. */
  'lease-lost': [LeaseEvent];
  /** Processes of the fleet run with different account/pool configurations. */
  'fleet-mismatch': [FleetMismatchEvent];
}

const kManager = Symbol.for('session-proxy.manager');
/** Who installed a manager when it was not the app (the preload says so here, for install()'s error in any copy). */
export const kInstalledBy = Symbol.for('session-proxy.manager.installed-by');

export class SessionProxyManager extends EventEmitter<SessionProxyEvents> {
  /** `instanceof` holds across copies of the library (the preload bundles its own). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return !!value && typeof value === 'object' && (value as Record<symbol, unknown>)[kManager] === true;
  }

  readonly options: Readonly<SessionProxyOptions>;
  private readonly accounts = new AccountPools();
  private readonly connections: ConnectionPools;
  private readonly noProxy: NoProxyMatcher;
  private envNoProxy = new NoProxyMatcher([]);
  private readonly router: Router;
  private readonly leaks: LeakPolicy;
  private readonly health: HealthRegistry;
  private readonly traffic = new TrafficStats();
  private readonly tunnels: AccountTunnels;
  private readonly egress: EgressPolicy;
  private readonly layers = new LayerStack();
  private undiciLayer: UndiciLayer | undefined;
  private idleSweep: NodeJS.Timeout | undefined;
  private readonly rotation: Rotation;
  /** Socket-level tunnels by account, for rotate() to drain or cut. */
  private readonly socketTunnels = new SocketTunnelRegistry();
  private readonly drain: ConnectionDrain;
  /** The fleet store, when `store` is set; its coordinator while installed. */
  private readonly storeConfig: ResolvedStore | undefined;
  private fleet: FleetLeases | undefined;

  constructor(options: SessionProxyOptions = {}) {
    super();
    Object.defineProperty(this, kManager, { value: true });
    // The same validator as config files: unknown keys (did you mean), types, values, key paths
    // in every message, no password in any; a "__proto__" key anywhere is refused.
    checkOptions(options);
    this.options = Object.freeze({ ...options });
    if (options.store !== undefined) {
      this.storeConfig = resolveStore(options.store);
      checkStoreClient(this.storeConfig);
      if (options.balance === 'per-connection') throw new ConfigError('store: balance "per-connection" has no single egress per account to lease fleet-wide; use balance "sticky" with a store');
    }
    const drainTimeout = options.drainTimeout ?? 30_000;
    this.drain = new ConnectionDrain(drainTimeout, (socket) => servedRoute(socket) !== undefined);
    if (options.proxy !== undefined) this.accounts.set(DEFAULT_ACCOUNT, this.parsePool(DEFAULT_ACCOUNT, options.proxy));
    for (const [name, spec] of Object.entries(options.accounts ?? {})) this.addAccount(name, spec);
    if (this.exclusive) this.accounts.assignExclusive();
    const self = this;
    this.rotation = new Rotation(
      { strategy: options.strategy ?? 'round-robin', balance: options.balance ?? 'sticky', exclusive: this.exclusive, failover: options.failover },
      {
        accounts: this.accounts,
        get health() {
          return self.health;
        },
        traffic: this.traffic,
        retire: (account, from, closeExisting) => {
          const pools = this.connections.retire(account, from, closeExisting);
          const sockets = closeExisting ? { drained: 0, draining: 0 } : this.drain.drain(this.socketTunnels.sockets(account, from), account, from);
          const closed = pools.cut + (closeExisting ? this.socketTunnels.close(account, from) : 0);
          return { closed, drained: pools.drained + sockets.drained, draining: pools.draining + sockets.draining };
        },
        moved: (event) => {
          publish('rotate', () => event);
          this.emit('rotate', event);
          if (this.options.verifyOnRotate) void this.egress.require(event.account).catch(() => undefined);
        },
      },
    );
    this.noProxy = new NoProxyMatcher(options.noProxy ?? LOOPBACK_NO_PROXY);
    this.health = new HealthRegistry(options.health ?? {}, options.healthCheck ?? {}, {
      down: (proxy, h) => {
        this.emitHealth('proxyDown', 'proxy-down', { proxy: proxy.info(), accounts: this.accounts.holders(proxy.identityKey), error: h.lastError, nextProbeAt: h.cooldownUntil });
        if (this.fleet) this.fleet.failover(proxy);
        else this.rotation.failover(proxy);
      },
      up: (proxy, h) => {
        this.emitHealth('proxyUp', 'proxy-up', { proxy: proxy.info(), accounts: this.accounts.holders(proxy.identityKey), latencyMs: h.lastLatencyMs });
        this.fleet?.up(proxy);
      },
      // In a fleet, one probe per proxy for all processes.
      ...(this.storeConfig ? { claimProbe: (proxy: ProxyEndpoint, leaseMs: number) => this.fleet?.claimProbe(proxy, leaseMs) ?? Promise.resolve(true) } : {}),
    });
    this.egress = new EgressPolicy(options, (account) => this.verifyEgress(account));
    this.tunnels = new AccountTunnels({
      gate: (account) => this.egress.gate(account),
      opened: (account, proxy, socket, latencyMs) => {
        this.health.succeed(proxy, latencyMs);
        this.traffic.tunnel(account, proxy.identityKey, socket, latencyMs);
        this.fleet?.track(account, proxy, socket);
      },
      failed: (account, proxy, error) => this.onTunnelFailure(account, proxy, error),
      lease: (account) => this.fleet?.gate(account),
      current: (account) => this.fleet?.current(account),
    });
    this.connections = new ConnectionPools((account, proxy) => this.tunnels.opener(account, proxy), options.requestTls, drainTimeout);
    this.leaks = new LeakPolicy(options.strict ?? true, (event) => this.emit('leak', event));
    this.router = new Router({
      pools: this.accounts,
      noProxy: this.noProxy,
      get envNoProxy() {
        return self.envNoProxy;
      },
      requireScope: options.requireScope ?? false,
      tunnelSockets: options.tunnelSockets ?? true,
      leaks: this.leaks,
      opener: (account, proxy, probe) => this.tunnels.opener(account, proxy, probe),
      select: (account) => this.rotation.select(account),
      unavailable: (account, proxy) => this.egress.quarantineError(account) ?? this.fleet?.unavailable(account) ?? this.rotation.unavailable(account, proxy),
      counted: (account, proxy) => this.traffic.request(account, proxy.identityKey),
    });
  }

  get installed(): boolean {
    return state.installed === this;
  }

  /** Installs every layer. Idempotent for this instance; another installed manager → AlreadyInstalledError. */
  install(): this {
    if (state.installed === this) return this;
    if (state.installed) {
      const by = (state.installed as Record<symbol, unknown>)[kInstalledBy];
      throw new AlreadyInstalledError(
        typeof by === 'string'
          ? `${by} already installed this process's SessionProxyManager; use getManager() to reach it instead of calling install(), or drop the preload and configure the manager in code`
          : 'another SessionProxyManager is already installed in this process; use getManager() to reach it, or uninstall() it first',
      );
    }
    this.envNoProxy = NoProxyMatcher.fromEnv(process.env);
    const fallback = this.accounts.get(DEFAULT_ACCOUNT);
    this.undiciLayer = new UndiciLayer(new RoutingDispatcher(this.router, this.connections, UndiciLayer.previousDirect()));
    const undiciLayer = this.undiciLayer;
    try {
      this.layers.apply([
        ...(fallback && (this.options.env ?? true) ? [{ name: 'env', apply: () => installEnv(fallback.proxies[fallback.active], this.noProxy.entries) }] : []),
        { name: 'undici', apply: () => undiciLayer.install() },
        {
          name: 'http',
          apply: () =>
            installHttp({
              router: this.router,
              pools: this.connections,
              isProxyAddress: (t) => this.isProxyAddress(t),
              requestTls: this.options.requestTls,
              onRequest: () => undiciLayer.reassert(),
            }),
        },
        { name: 'http-agents', apply: () => installHttpAgentPartition(this.router) },
        { name: 'socket', apply: () => installSocketLayer({ router: this.router, onTunnel: (socket, account, proxy) => this.socketTunnels.track(socket, account, proxy) }) },
        { name: 'ownership-guard', apply: () => guardWith(this.leaks) },
        { name: 'undici-guard', apply: () => guardUndiciRequests() },
        // An app's own undici Pool/Agent (any copy) serves each route on connections of its own.
        { name: 'undici-partition', apply: () => installUndiciPartition({ routeKey: (t) => this.router.routeKey(t) }) },
        { name: 'http2-guard', apply: () => guardHttp2Sessions((session) => this.drain.session(session)) },
        { name: 'drain', apply: () => this.drain.install() },
        // got http2 (http2-wrapper's agent) and grpc-js channels: sessions/subchannels of their own per route.
        { name: 'http2-wrapper-partition', apply: () => installHttp2WrapperPartition({ routeKey: (t) => this.router.routeKey(t) }) },
        { name: 'grpc-partition', apply: () => installGrpcPartition({ routeKey: (t) => this.router.routeKey(t) }) },
        {
          name: 'child-process',
          apply: () =>
            installChildProcess({
              proxyOf: (account) => this.accounts.active(account),
              noProxy: this.noProxy.entries,
              // A Node child runs the preload: in the same account's scope (only that account's pool travels),
              // or, spawned outside any scope, under the whole configuration, like the parent.
              extraEnv: (account, env) =>
                registerEnvFor(account, this.liveOptions(), env, { active: account ? this.accounts.active(account) : undefined, optional: true, onlyAccount: account !== undefined }),
            }),
        },
        {
          name: 'worker-threads',
          apply: () =>
            installWorkerThreads((account, options) => {
              const registered = registerPaths();
              if (!existsSync(registered.cjs)) return options; // running from sources: no built preload to run
              return workerOptionsFor(account, options, this.liveOptions(), { active: account ? this.accounts.active(account) : undefined, onlyAccount: account !== undefined });
            }),
        },
        { name: 'dgram', apply: () => installDgramLayer({ router: this.router }) },
        { name: 'dns-audit', apply: () => installDnsAudit() },
      ]);
    } catch (err) {
      this.undiciLayer = undefined;
      throw err;
    }
    state.installed = this;
    if (this.storeConfig) this.startFleet(this.storeConfig);
    enableDebugLoggingFromEnv();
    this.health.startPeriodic(() => this.allProxies());
    this.egress.start(() => this.accounts.names());
    const idle = this.options.idleTimeout ?? 300_000;
    this.idleSweep = setInterval(() => this.connections.evictIdle(idle), Math.max(250, Math.floor(idle / 2)));
    this.idleSweep.unref();
    return this;
  }

  /** Restores every patched global and closes every pool; in-flight requests finish (or fail) cleanly. */
  async uninstall(): Promise<void> {
    if (state.installed !== this) return;
    this.layers.restore();
    state.installed = undefined;
    this.undiciLayer = undefined;
    clearInterval(this.idleSweep);
    this.health.close();
    this.egress.close();
    await this.connections.retireAll();
    const fleet = this.fleet;
    this.fleet = undefined;
    await fleet?.close();
    // No scope is needed any more; on Node 20/22 this also turns off the promise hooks the store uses.
    state.scopes.disable();
  }

  /**
   * Runs `fn` with every request it creates routed through `account`'s proxy. Returns what fn returns.
   * Checked in this order, synchronously: the arguments (InvalidArgumentError), then installation
   * (NotInstalledError), then the account (UnknownAccountError); so in every method below.
   * @throws NotInstalledError when this manager is not installed: nothing would be routed.
   */
  withProxy<T>(account: string, fn: () => T): T {
    checkAccount('withProxy(account, fn)', account, false);
    checkFunction('withProxy(account, fn)', fn, account);
    this.requireInstalled('withProxy');
    this.accounts.require(account);
    this.undiciLayer?.reassert();
    return state.scopes.run({ account }, fn);
  }

  /**
   * A function that always runs in `account`'s scope, wherever it is called from: the way to hand
   * work from one scope to another (a queue, a timer set up elsewhere). Calling it while this
   * manager is not installed throws NotInstalledError.
   */
  bind<A extends unknown[], R>(account: string, fn: (...args: A) => R): (...args: A) => R {
    checkAccount('bind(account, fn)', account, false);
    checkFunction('bind(account, fn)', fn, account);
    this.accounts.require(account);
    return (...args: A) => this.withProxy(account, () => fn(...args));
  }

  /** The account of the calling async context, or undefined outside any scope. */
  currentAccount(): string | undefined {
    return this.router.currentAccount();
  }

  /** The active proxy of `account` (default: the calling scope's account, else `default`). */
  current(account?: string): ProxyInfo {
    checkAccount('current(account)', account, true);
    return this.accounts.active(this.accountOf('current', account)).info();
  }

  /** Configured account names, `default` included when a default proxy is set. */
  accountNames(): string[] {
    return this.accounts.names();
  }

  /** Adds or replaces an account. Replacing retires its old pools. */
  setAccount(account: string, spec: ProxySpec): this {
    if (account === DEFAULT_ACCOUNT) throw new ConfigError(`account name "${DEFAULT_ACCOUNT}" is reserved for the default pool (option \`proxy\`)`);
    // As in the constructor: `accounts.__proto__: … (in setAccount())`, a bad spec by its key path.
    if (typeof account === 'string') checkOptions({ accounts: { [account]: spec } }, 'setAccount()');
    const previous = this.accounts.get(account);
    const pool = this.addAccount(account, spec);
    if (this.exclusive) {
      const free = pool.proxies.findIndex((p) => this.accounts.holders(p.identityKey).every((h) => h === account));
      if (free === -1) {
        if (previous) this.accounts.set(account, previous.proxies).active = previous.active;
        else this.accounts.delete(account);
        const holders = [...new Set(pool.proxies.flatMap((p) => this.accounts.holders(p.identityKey)))].map((n) => `"${n}"`).join(', ');
        throw new ConfigError(`account "${account}" would share a proxy with ${holders} (exclusive: true)`);
      }
      pool.active = free;
    }
    if (previous) {
      this.connections.retire(account);
      this.fleet?.forget(account);
    }
    return this;
  }

  /** Removes an account and closes its pools. */
  async removeAccount(account: string): Promise<void> {
    this.accounts.require(account);
    this.accounts.delete(account);
    this.fleet?.forget(account);
    this.egress.forget(account);
    this.traffic.forget(account);
    this.connections.retire(account);
  }

  /**
   * Moves `account` to the next proxy of its pool (per `strategy`, skipping
   * proxies that are down or held by another account); returns the new
   * ProxyInfo. From then on no new request of the account leaves through the
   * old proxy: its connections there are drained on every layer — idle ones
   * close at once, busy ones when their request or stream completes (cut
   * after `drainTimeout`); their clients reconnect through the new proxy.
   * Raw sockets and WebSockets stay until their owner closes them, or
   * `closeExisting` cuts everything at once.
   * @throws ProxyUnavailableError when there is nowhere to go (one proxy; the others held or down)
   */
  async rotate(account?: string, options: RotateOptions = {}): Promise<ProxyInfo> {
    checkAccount('rotate(account, options)', account, true);
    checkOptionsArgument('rotate(account, options)', options);
    this.requireInstalled('rotate');
    if (this.fleet) return (await this.fleet.rotate(this.accountOf('rotate', account), options.closeExisting ?? false)).info();
    return (await this.rotation.rotate(this.accountOf('rotate', account), options.closeExisting ?? false)).info();
  }

  /**
   * Asks IP-echo endpoints the way `account`'s traffic leaves (the router's decision for that
   * scope, with the same tunnel opener as its requests) and returns the egress IP they saw.
   * Only the egress gate and quarantine are bypassed: this is what lifts them.
   */
  async verifyEgress(account?: string, options: EgressOptions & { compareDirect?: boolean } = {}): Promise<EgressResult> {
    checkAccount('verifyEgress(account, options)', account, true);
    checkOptionsArgument('verifyEgress(account, options)', options);
    this.requireInstalled('verifyEgress');
    account = this.accountOf('verifyEgress', account);
    this.undiciLayer?.reassert();
    const proxy = this.accounts.active(account);
    const opts: EgressOptions = { requestTls: this.options.requestTls, endpoints: this.options.egressEndpoints, ...options };
    try {
      const result = await probeEgress(account, proxy, this.egressPath(account), opts);
      if (options.compareDirect) {
        const direct = await askIp(result.endpoint, directPath, opts);
        if (direct === result.ip) {
          throw new EgressLeakError(`egress through the proxy (${result.ip}) equals the direct egress: the proxy is transparent or the route leaks`, { account, proxy });
        }
      }
      this.egress.record(account, undefined);
      this.emitEgress({ ...result, status: 'verified' });
      return result;
    } catch (err) {
      this.egress.record(account, err);
      const status = err instanceof EgressMismatchError || err instanceof EgressLeakError ? 'mismatch' : 'failed';
      this.emitEgress({ account, proxy: proxy.info(), status, error: (err as Error).message });
      throw err;
    }
  }

  /** Verifies every account concurrently; flags accounts that egress from the same IP. */
  async verifyAll(options: EgressOptions = {}): Promise<VerifyRow[]> {
    this.requireInstalled('verifyAll');
    const names = this.accounts.names();
    const results = await Promise.allSettled(names.map((a) => this.verifyEgress(a, options)));
    const rows = names.map((account, i) => {
      const r = results[i];
      const proxy = this.accounts.active(account).info();
      return r.status === 'fulfilled'
        ? { account, proxy, ok: true, ip: r.value.ip, endpoint: r.value.endpoint, latencyMs: r.value.latencyMs, sameIpAs: [] as string[] }
        : { account, proxy, ok: false, error: (r.reason as Error).message, sameIpAs: [] as string[] };
    });
    for (const row of rows) {
      if (!row.ip) continue;
      row.sameIpAs = rows.filter((o) => o !== row && o.ip === row.ip).map((o) => o.account);
      if (row.sameIpAs.length) row.ok = false;
    }
    return rows;
  }

  /**
   * Requests, failures, open connections, bytes and latency per proxy and per account.
   * `{ fleet: true }` (with `store`): the whole fleet's, summed over its processes, with each
   * account's proxy, holders and lease time left (a Promise: it reads the store).
   */
  stats(): ManagerStats;
  stats(options: { fleet: true }): Promise<FleetStats>;
  stats(options?: { fleet?: boolean }): ManagerStats | Promise<FleetStats> {
    if (options?.fleet) {
      const fleet = this.fleet;
      if (!fleet) return Promise.reject(new NotInstalledError('stats({ fleet: true }) needs an installed manager with the `store` option'));
      return fleet.snapshot().then(summarizeFleet);
    }
    return buildStats(this.traffic.snapshot(), this.accounts, (p) => this.health.of(p));
  }

  /** Number of open sockets in the library's pools (all accounts, or one). */
  openSockets(account?: string): number {
    return this.connections.openSockets(account);
  }

  /** Redacted: the options hold raw proxy URLs, and TypeScript's `private` hides nothing from inspect. */
  toJSON(): { installed: boolean; accounts: Record<string, string[]> } {
    const accounts: Record<string, string[]> = {};
    for (const pool of this.accounts.all()) accounts[pool.name] = pool.proxies.map(String);
    return { installed: this.installed, accounts };
  }

  [inspect.custom](): string {
    return `SessionProxyManager ${inspect(this.toJSON(), { depth: 3 })}`;
  }

  // --- internals -----------------------------------------------------------

  /** The fleet coordinator, for this installation (routing/fleet.ts). */
  private startFleet(config: ResolvedStore): void {
    this.fleet = new FleetLeases(
      { store: createStore(config), ttl: config.ttl, margin: config.margin, exclusive: this.exclusive, strategy: this.options.strategy ?? 'round-robin' },
      {
        accounts: this.accounts,
        health: this.health,
        traffic: this.traffic,
        failoverOn: (pool) => this.rotation.failoverOn(pool),
        adopt: (account, index, reason, closeExisting) => this.rotation.adopt(account, index, reason, closeExisting),
        cut: (account, proxy) => {
          this.connections.retire(account, proxy, true);
          this.socketTunnels.close(account, proxy);
        },
        storeState: (which, event) => {
          publish(which === 'down' ? 'storeDown' : 'storeUp', () => event);
          this.emit(which === 'down' ? 'store-down' : 'store-up', event);
        },
        lease: (event) => {
          publish('lease', () => event);
          this.emit('lease-lost', event);
        },
        mismatch: (event) => {
          publish('fleetMismatch', () => event);
          this.emit('fleet-mismatch', event);
        },
      },
    );
    this.fleet.start();
  }

  /** Nothing is routed by a manager that is not installed: refuse rather than run unrouted. */
  private requireInstalled(method: string): void {
    if (state.installed === this) return;
    throw new NotInstalledError(
      state.installed
        ? `${method}() on a SessionProxyManager that is not the installed one: nothing it scopes would be routed; use getManager()`
        : `${method}() on a SessionProxyManager that is not installed: nothing would be routed; call install() first (or start node with --import session-proxy/register)`,
    );
  }

  /** The account a method called without one acts on: the calling scope's, else the default pool. */
  private accountOf(method: string, account: string | undefined): string {
    if (account !== undefined) return account;
    const scoped = this.currentAccount();
    if (scoped !== undefined) return scoped;
    if (this.accounts.has(DEFAULT_ACCOUNT)) return DEFAULT_ACCOUNT;
    const known = this.accounts.names().map((n) => `"${n}"`).join(', ') || 'none';
    throw new UnknownAccountError(`${method}() was called outside any withProxy scope and no default proxy is configured; pass an account name (configured: ${known})`);
  }

  /** How a probe for `account` reaches an endpoint: the router's answer for that scope, as for its requests. */
  private egressPath(account: string): EgressPath {
    return (target, signal) => {
      const action = this.router.decide(target, 'egress', { account: account === DEFAULT_ACCOUNT ? null : account, probe: true });
      if (action.kind === 'tunnel') return action.open(target, signal);
      if (action.kind === 'pass') return directPath(target, signal);
      return Promise.reject(action.error);
    };
  }

  /** The options as they stand now (setAccount/removeAccount included), for children and Workers. */
  private liveOptions(): SessionProxyOptions {
    const accounts: Record<string, ProxySpec> = {};
    for (const pool of this.accounts.all()) if (pool.name !== DEFAULT_ACCOUNT) accounts[pool.name] = [...pool.proxies];
    const fallback = this.accounts.get(DEFAULT_ACCOUNT);
    return { ...this.options, proxy: fallback ? [...fallback.proxies] : undefined, accounts };
  }

  private onTunnelFailure(account: string, proxy: ProxyEndpoint, error: Error): ProxyEndpoint | undefined {
    this.traffic.failure(account, proxy.identityKey);
    this.health.fail(proxy, error);
    return this.accounts.get(account) ? this.accounts.active(account) : undefined;
  }

  private get exclusive(): boolean {
    return this.options.exclusive ?? Object.keys(this.options.accounts ?? {}).length > 0;
  }

  private emitHealth(channel: 'proxyDown' | 'proxyUp', name: 'proxy-down' | 'proxy-up', event: ProxyHealthEvent): void {
    publish(channel, () => event);
    this.emit(name, event);
  }

  private emitEgress(event: EgressEvent): void {
    publish('egress', () => event);
    this.emit('egress', event);
  }

  private *allProxies(): Iterable<ProxyEndpoint> {
    const seen = new Set<string>();
    for (const pool of this.accounts.all()) {
      for (const p of pool.proxies) {
        if (seen.has(p.identityKey)) continue;
        seen.add(p.identityKey);
        yield p;
      }
    }
  }

  private isProxyAddress(target: Target): boolean {
    return this.accounts.isProxyAddress(target);
  }

  private addAccount(account: string, spec: ProxySpec): AccountPool {
    if (!account || typeof account !== 'string') throw new ConfigError(`account name must be a non-empty string, got ${JSON.stringify(account)}`);
    return this.accounts.set(account, this.parsePool(account, spec));
  }

  private parsePool(account: string, spec: ProxySpec): ProxyEndpoint[] {
    const list = Array.isArray(spec) ? spec : [spec];
    if (list.length === 0) throw new ConfigError(`account "${account}" has an empty proxy pool`);
    return list.map((input) => parseProxy(input, { defaultProtocol: this.options?.defaultProtocol }));
  }
}
