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
import { AlreadyInstalledError, ConfigError, EgressChangedError, EgressLeakError, EgressMismatchError, NotInstalledError, ProxyAuthError, ProxyConnectError, UnknownAccountError } from './errors.js';
import { checkAccount, checkFunction, checkOptionsArgument } from './arguments.js';
import { parsePoolEntry } from './gateways/entry.js';
import { isGatewayDefinition } from './gateways/definition.js';
import { GatewaySessions, MemorySessionStore } from './gateways/sessions.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher } from './proxy/no-proxy.js';
import type { ProxyEndpoint, ProxyInfo } from './proxy/endpoint.js';
import { AccountPools, DEFAULT_ACCOUNT, type AccountPool } from './routing/account-pools.js';
import { REFUSAL, Router, type Refusal } from './routing/router.js';
import { RuleSet, isRuleRoute } from './routing/rules.js';
import { PacRouter } from './routing/pac/pac-router.js';
import { pacUnavailable } from './routing/pac/engine.js';
import { pacSettings } from './routing/pac/spec.js';
import { LeakPolicy, type LeakEvent } from './routing/leak-policy.js';
import { AccountTunnels } from './routing/account-tunnels.js';
import { Rotation, type MoveEvent, type MoveReason } from './routing/rotation.js';
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
import { ChildHandoff } from './children/handoff.js';
import { enableDebugLoggingFromEnv } from './debug.js';
import { askIp, DEFAULT_EGRESS_ENDPOINTS, directPath, probeEgress, type EgressOptions, type EgressPath, type EgressResult } from './egress/verify.js';
import { EgressWatch, checkWatchOptions, type EgressChangeEvent, type WatchStats } from './egress/watch.js';
import type { Socket } from 'node:net';
import { EgressPolicy } from './egress/egress-policy.js';
import { publish } from './diagnostics.js';
import type { ProxySpec, SessionProxyOptions } from './options.js';
import { buildStats, type ManagerStats } from './health/stats.js';
import { checkOptions } from './config/load.js';
import { Trust } from './trust/trust.js';
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

export interface VerifyEgressOptions extends EgressOptions {
  /** Fail with EgressLeakError when the egress equals this host's direct one. */
  compareDirect?: boolean;
  /** Take the IP seen as the account's new normal: lifts the egress watch's quarantine. */
  accept?: boolean;
}

export interface SessionProxyEvents {
  leak: [LeakEvent];
  rotate: [RotateEvent];
  egress: [EgressEvent];
  'egress-change': [EgressChangeEvent];
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

/** Type-only brand (no runtime value): see `setAccount`. */
declare const kAccountsAdded: unique symbol;
/**
 * What `setAccount` asserts besides the wider manager type: contravariant in
 * the names, so each call narrows the variable to the newer, wider type.
 */
export interface AccountsAdded<A extends string> {
  readonly [kAccountsAdded]: (account: A) => void;
}
/** A manager that accepts any account name: `SessionProxyManager<string>`. */
export interface AnyAccountManager {
  readonly withProxy: <T>(account: string, fn: () => T) => T;
}

/**
 * `A`: the account names the manager accepts. Inferred from a literal
 * `accounts` option (`new SessionProxyManager({ accounts: { alice, bob } })` →
 * `SessionProxyManager<'alice' | 'bob'>`, so `withProxy('alcie', …)` does not
 * compile); `string` (any name) for options typed `SessionProxyOptions`, e.g.
 * from a config file, without `accounts`, or given explicitly.
 */
export class SessionProxyManager<A extends string = string> extends EventEmitter<SessionProxyEvents> {
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
  /** Each account's session on each rotating gateway of its pool. */
  private readonly sessions: GatewaySessions;
  private readonly watch: EgressWatch;
  /** `systemCa`: the OS's CAs for the library's own TLS connections (targets and https proxies). */
  private readonly trust: Trust;
  /** Option `rules`; a proxy rule's pool lives in `accounts` under the rule's route key. */
  private readonly rules: RuleSet;
  /** Option `pac`: decides the default route after rules and noProxy. */
  private readonly pac: PacRouter | undefined;
  /** The fleet store, when `store` is set; its coordinator while installed. */
  private readonly storeConfig: ResolvedStore | undefined;
  private fleet: FleetLeases | undefined;

  constructor(options?: SessionProxyOptions<A>);
  constructor(options: SessionProxyOptions = {}) {
    super();
    Object.defineProperty(this, kManager, { value: true });
    // The same validator as config files: unknown keys (did you mean), types, values, key paths
    // in every message, no password in any; a "__proto__" key anywhere is refused.
    checkOptions(options);
    this.options = Object.freeze({ ...options });
    this.sessions = new GatewaySessions(options.sessionStore ?? new MemorySessionStore(), {
      // Shortly before the vendor ends a session: a new one, drained like a rotation.
      expiring: (account, endpoint) => void this.renewSession(account, 'lifetime', endpoint).catch(() => undefined),
    });
    this.watch = new EgressWatch(checkWatchOptions(options.watchEgress), {
      identity: (account) => (this.accounts.get(account) ? this.accounts.active(account).identityKey : undefined),
      check: (account) => this.watchCheck(account),
    });
    this.trust = new Trust(options.systemCa ?? false);
    if (options.store !== undefined) {
      this.storeConfig = resolveStore(options.store);
      checkStoreClient(this.storeConfig);
      if (options.balance === 'per-connection') throw new ConfigError('store: balance "per-connection" has no single egress per account to lease fleet-wide; use balance "sticky" with a store');
    }
    const drainTimeout = options.drainTimeout ?? 30_000;
    this.drain = new ConnectionDrain(drainTimeout, (socket) => servedRoute(socket) !== undefined);
    if (options.proxy !== undefined) this.accounts.set(DEFAULT_ACCOUNT, this.parsePool(DEFAULT_ACCOUNT, options.proxy));
    for (const [name, spec] of Object.entries(options.accounts ?? {})) this.addAccount(name, spec);
    // A rule's proxy is a pool like an account's (health, failover, exclusive), after the accounts.
    this.rules = new RuleSet(
      (options.rules ?? []).map((r, i) => ({ match: r.match, scopes: r.scopes, proxy: r.proxy === 'direct' || r.proxy === 'block' ? r.proxy : this.parsePool(`rules[${i}]`, r.proxy) })),
    );
    for (const rule of this.rules.rules) if (rule.action === 'proxy') this.accounts.set(rule.route, rule.proxies);
    if (this.exclusive) this.accounts.assignExclusive();
    this.pac = options.pac === undefined ? undefined : this.createPac(options);
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
          if (this.options.verifyOnRotate && !isRuleRoute(event.account)) void this.egress.require(event.account).catch(() => undefined);
        },
        renew: (from) => this.sessions.renew(from),
      },
    );
    this.noProxy = new NoProxyMatcher(options.noProxy ?? LOOPBACK_NO_PROXY);
    this.health = new HealthRegistry(options.health ?? {}, options.healthCheck ?? {}, {
      down: (proxy, h) => {
        this.emitHealth('proxyDown', 'proxy-down', { proxy: proxy.info(), accounts: this.accounts.healthHolders(proxy.healthKey), error: h.lastError, nextProbeAt: h.cooldownUntil });
        if (this.fleet) this.fleet.failover(proxy);
        else this.rotation.failover(proxy);
      },
      up: (proxy, h) => {
        this.emitHealth('proxyUp', 'proxy-up', { proxy: proxy.info(), accounts: this.accounts.healthHolders(proxy.healthKey), latencyMs: h.lastLatencyMs });
        this.fleet?.up(proxy);
      },
      // In a fleet, one probe per proxy for all processes.
      ...(this.storeConfig ? { claimProbe: (proxy: ProxyEndpoint, leaseMs: number) => this.fleet?.claimProbe(proxy, leaseMs) ?? Promise.resolve(true) } : {}),
    }, this.trust);
    this.egress = new EgressPolicy(options, (account) => this.verifyEgress(account as A));
    this.tunnels = new AccountTunnels({
      gate: (account) => this.egress.gate(account),
      opened: (account, proxy, socket, latencyMs) => {
        this.health.succeed(proxy, latencyMs);
        this.traffic.tunnel(account, proxy.identityKey, socket, latencyMs);
        this.fleet?.track(account, proxy, socket);
      },
      failed: (account, proxy, error) => this.onTunnelFailure(account, proxy, error),
      via: (proxy) => this.sessions.perConnection(proxy),
      trust: this.trust,
      lease: (account) => this.fleet?.gate(account),
      current: (account) => this.fleet?.current(account),
    });
    // The PAC's pools (the default route under a PAC) open through the PAC, whatever its answer.
    this.connections = new ConnectionPools((account, proxy) => (this.pac && proxy === this.pac.endpoint ? this.pac.open : this.tunnels.opener(account, proxy)), this.trust.forTarget(options.requestTls), drainTimeout);
    this.leaks = new LeakPolicy(options.strict ?? true, (event) => this.emit('leak', event));
    this.router = new Router({
      pools: this.accounts,
      noProxy: this.noProxy,
      get envNoProxy() {
        return self.envNoProxy;
      },
      requireScope: options.requireScope ?? false,
      refusal: (options as { [REFUSAL]?: Refusal })[REFUSAL]?.reason,
      tunnelSockets: options.tunnelSockets ?? true,
      leaks: this.leaks,
      opener: (account, proxy, probe) => this.tunnels.opener(account, proxy, probe),
      select: (account) => this.rotation.select(account),
      unavailable: (account, proxy) => this.egress.quarantineError(account) ?? this.fleet?.unavailable(account) ?? this.proxyDown(account, proxy),
      counted: (account, proxy) => {
        this.traffic.request(account, proxy.identityKey);
        this.watch.touch(account);
      },
      rules: this.rules,
      pac: this.pac,
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
    const children = new ChildHandoff(this.options, this.accounts, this.noProxy.entries, (this.options as { [REFUSAL]?: Refusal })[REFUSAL]?.ref, () => this.fleet?.fingerprint);
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
              trust: this.trust,
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
              // A Node child runs the preload with a pointer to its route's configuration (children/handoff.ts).
              extraEnv: (account, env, kind) => children.processEnv(account, env, kind),
            }),
        },
        { name: 'worker-threads', apply: () => installWorkerThreads((account, options) => children.worker(account, options)) },
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
    this.sessions.start();
    this.watch.start();
    this.egress.start(() => this.accountNames());
    this.pac?.start();
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
    this.sessions.stop();
    this.watch.stop();
    this.pac?.close();
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
  withProxy<T>(account: A | 'default', fn: () => T): T {
    checkAccount('withProxy(account, fn)', account, false);
    checkFunction('withProxy(account, fn)', fn, account);
    this.requireInstalled('withProxy');
    this.requireAccount(account);
    this.undiciLayer?.reassert();
    return state.scopes.run({ account }, fn);
  }

  /**
   * A function that always runs in `account`'s scope, wherever it is called from: the way to hand
   * work from one scope to another (a queue, a timer set up elsewhere). Calling it while this
   * manager is not installed throws NotInstalledError.
   */
  bind<Args extends unknown[], R>(account: A | 'default', fn: (...args: Args) => R): (...args: Args) => R {
    checkAccount('bind(account, fn)', account, false);
    checkFunction('bind(account, fn)', fn, account);
    this.requireAccount(account);
    return (...args: Args) => this.withProxy(account, () => fn(...args));
  }

  /** The account of the calling async context, or undefined outside any scope. */
  currentAccount(): string | undefined {
    return this.router.currentAccount();
  }

  /** The active proxy of `account` (default: the calling scope's account, else `default`). */
  current(account?: A | 'default'): ProxyInfo {
    checkAccount('current(account)', account, true);
    return this.accounts.active(this.accountOf('current', account)).info();
  }

  /** Configured account names, `default` included when a default proxy is set. */
  accountNames(): string[] {
    return this.accounts.names().filter((n) => !isRuleRoute(n));
  }

  /**
   * Adds or replaces an account. Replacing retires its old pools.
   *
   * On a manager with literal names (`SessionProxyManager<'alice'>`) this is
   * an assertion: afterwards the variable accepts the new name too. TypeScript
   * applies an assertion only through a variable, parameter or property
   * declared with an explicit type (`const m: SessionProxyManager<'alice'> = …`);
   * on an inferred one the call fails with TS2775. On a
   * `SessionProxyManager<string>` (any name) it returns the manager.
   */
  setAccount(this: AnyAccountManager, account: string, spec: ProxySpec): this;
  setAccount<N extends string>(account: N, spec: ProxySpec): asserts this is SessionProxyManager<A | N> & AccountsAdded<A | N>;
  setAccount(account: string, spec: ProxySpec): this {
    if (account === DEFAULT_ACCOUNT) throw new ConfigError(`account name "${DEFAULT_ACCOUNT}" is reserved for the default pool (option \`proxy\`)`);
    if (typeof account === 'string' && isRuleRoute(account)) throw new ConfigError('account names starting with a NUL are reserved for the pools of rules');
    // As in the constructor: `accounts.__proto__: … (in setAccount())`, a bad spec by its key path.
    if (typeof account === 'string') checkOptions({ accounts: { [account]: spec } }, 'setAccount()');
    const previous = this.accounts.get(account);
    const pool = this.addAccount(account, spec);
    if (this.exclusive) {
      const free = pool.proxies.findIndex((p) => this.accounts.holders(p.identityKey).every((h) => h === account));
      if (free === -1) {
        for (const p of pool.proxies) if (!previous?.proxies.includes(p)) this.sessions.retire(p);
        if (previous) this.accounts.set(account, previous.proxies).active = previous.active;
        else this.accounts.delete(account);
        const holders = [...new Set(pool.proxies.flatMap((p) => this.accounts.holders(p.identityKey)))].map((n) => `"${n}"`).join(', ');
        throw new ConfigError(`account "${account}" would share a proxy with ${holders} (exclusive: true)`);
      }
      pool.active = free;
    }
    if (previous) {
      for (const p of previous.proxies) if (!pool.proxies.includes(p)) this.sessions.retire(p);
      this.connections.retire(account);
      this.fleet?.forget(account);
    }
    return this;
  }

  /** Removes an account and closes its pools. */
  async removeAccount(account: A): Promise<void> {
    this.requireAccount(account);
    const pool = this.accounts.require(account);
    this.accounts.delete(account);
    for (const p of pool.proxies) this.sessions.retire(p);
    this.watch.forget(account);
    this.fleet?.forget(account);
    this.egress.forget(account);
    this.traffic.forget(account);
    this.connections.retire(account);
  }

  /**
   * Moves `account` to the next proxy of its pool (per `strategy`, skipping
   * proxies that are down or held by another account); returns the new
   * ProxyInfo. On a rotating gateway it mints a new session instead (the
   * gateway picks a new IP): the ProxyInfo shows the new session id. From then on no new request of the account leaves through the
   * old proxy: its connections there are drained on every layer — idle ones
   * close at once, busy ones when their request or stream completes (cut
   * after `drainTimeout`); their clients reconnect through the new proxy.
   * Raw sockets and WebSockets stay until their owner closes them, or
   * `closeExisting` cuts everything at once.
   * @throws ProxyUnavailableError when there is nowhere to go (one proxy; the others held or down)
   */
  async rotate(account?: A | 'default', options: RotateOptions = {}): Promise<ProxyInfo> {
    checkAccount('rotate(account, options)', account, true);
    checkOptionsArgument('rotate(account, options)', options);
    this.requireInstalled('rotate');
    const name = this.accountOf('rotate', account);
    const to = await this.move(name, options.closeExisting ?? false, 'manual');
    // A new session (or proxy): whatever the egress watch held the account for is behind it.
    this.egress.release(name);
    return to.info();
  }

  /**
   * Asks IP-echo endpoints the way `account`'s traffic leaves (the router's decision for that
   * scope, with the same tunnel opener as its requests) and returns the egress IP they saw.
   * Only the egress gate and quarantine are bypassed: this is what lifts them (`accept: true`
   * also lifts the egress watch's). When another account is on the same IP and this one is on a
   * gateway session, it gets a new session and is verified again: the result is the new one's.
   */
  async verifyEgress(name?: A | 'default', options: VerifyEgressOptions = {}): Promise<EgressResult> {
    checkAccount('verifyEgress(account, options)', name, true);
    checkOptionsArgument('verifyEgress(account, options)', options);
    this.requireInstalled('verifyEgress');
    return this.verify(this.accountOf('verifyEgress', name), options, 0);
  }

  private async verify(account: string, options: VerifyEgressOptions, attempt: number): Promise<EgressResult> {
    this.undiciLayer?.reassert();
    const proxy = this.accounts.active(account);
    const { compareDirect, accept, ...egressOptions } = options;
    const opts: EgressOptions = { requestTls: this.options.requestTls, endpoints: this.options.egressEndpoints, ...egressOptions };
    opts.requestTls = this.trust.forTarget(opts.requestTls);
    let result: EgressResult;
    try {
      result = await probeEgress(account, proxy, this.egressPath(account), opts);
      if (compareDirect) {
        const direct = await askIp(result.endpoint, directPath, opts);
        if (direct === result.ip) {
          throw new EgressLeakError(`egress through the proxy (${result.ip}) equals the direct egress: the proxy is transparent or the route leaks`, { account, proxy });
        }
      }
      this.egress.record(account, undefined);
      if (accept) this.egress.release(account);
      this.emitEgress({ ...result, status: 'verified' });
    } catch (err) {
      this.egress.record(account, err);
      const status = err instanceof EgressMismatchError || err instanceof EgressLeakError ? 'mismatch' : 'failed';
      this.emitEgress({ account, proxy: proxy.info(), status, error: (err as Error).message });
      throw err;
    }
    const next = this.observed(account, proxy, result, { accept, attempt });
    return next ?? result;
  }
  /** Verifies every account concurrently; flags accounts that egress from the same IP. */
  async verifyAll(options: EgressOptions = {}): Promise<VerifyRow[]> {
    this.requireInstalled('verifyAll');
    const names = this.accountNames();
    const results = await Promise.allSettled(names.map((a) => this.verifyEgress(a as A, options)));
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
   * Requests, failures, open connections, bytes and latency per proxy and per account; and what
   * the egress watch used (its probes are billed traffic on residential plans).
   * `{ fleet: true }` (with `store`): the whole fleet's, summed over its processes, with each
   * account's proxy, holders and lease time left (a Promise: it reads the store).
   */
  stats(): ManagerStats & { egressWatch: WatchStats };
  stats(options: { fleet: true }): Promise<FleetStats>;
  stats(options?: { fleet?: boolean }): (ManagerStats & { egressWatch: WatchStats }) | Promise<FleetStats> {
    if (options?.fleet) {
      const fleet = this.fleet;
      if (!fleet) return Promise.reject(new NotInstalledError('stats({ fleet: true }) needs an installed manager with the `store` option'));
      return fleet.snapshot().then(summarizeFleet);
    }
    return { ...buildStats(this.traffic.snapshot(), this.accounts, (p) => this.health.of(p)), egressWatch: this.watch.stats() };
  }

  /** Number of open sockets in the library's pools (all accounts, or one). */
  openSockets(account?: string): number {
    return this.connections.openSockets(account);
  }

  /** Redacted: the options hold raw proxy URLs, and TypeScript's `private` hides nothing from inspect. */
  toJSON(): { installed: boolean; accounts: Record<string, string[]> } {
    const accounts: Record<string, string[]> = {};
    for (const pool of this.accounts.all()) if (!isRuleRoute(pool.name)) accounts[pool.name] = pool.proxies.map(String);
    return { installed: this.installed, accounts };
  }

  [inspect.custom](): string {
    return `SessionProxyManager ${inspect(this.toJSON(), { depth: 3 })}`;
  }

  // --- internals -----------------------------------------------------------

  /** An account a user may name: a rule's pool is not one (its key is internal). @throws UnknownAccountError */
  private requireAccount(account: string): void {
    if (isRuleRoute(account)) throw new UnknownAccountError(`unknown account ${JSON.stringify(account)} (configured: ${this.accountNames().map((n) => `"${n}"`).join(', ') || 'none'})`);
    this.accounts.require(account);
  }

  /** Option `pac`: its router, fed by this manager's health and pools. */
  private createPac(options: SessionProxyOptions): PacRouter {
    const missing = pacUnavailable();
    if (missing) throw new ConfigError(`pac: ${missing}`);
    const self = this;
    return new PacRouter(
      { ...pacSettings(options.pac!), fallback: options.pacFallback ?? 'fail', tls: options.requestTls },
      {
        available: (proxy) => self.health.of(proxy).available,
        succeeded: (proxy, latencyMs) => self.health.succeed(proxy, latencyMs),
        failed: (proxy, error) => void self.health.fail(proxy, error),
        // exclusive: the default route never leaves through an account's (or a rule's) proxy.
        refused: (proxy) => {
          if (!self.exclusive) return undefined;
          const held = self.accounts.proxyAt({ host: proxy.host, port: proxy.port }, DEFAULT_ACCOUNT);
          if (!held || held.pool === DEFAULT_ACCOUNT) return undefined;
          return `it is ${isRuleRoute(held.pool) ? 'the proxy of a rule' : `account "${held.pool}"'s proxy`} (exclusive: true)`;
        },
        // An empty answer: the default proxy, if there is one (else direct).
        unanswered: () => (self.accounts.has(DEFAULT_ACCOUNT) ? (target, signal) => self.tunnels.opener(DEFAULT_ACCOUNT, self.rotation.select(DEFAULT_ACCOUNT))(target, signal) : undefined),
        // A changed script: connections opened under the old answers drain.
        changed: () => void self.connections.retire(DEFAULT_ACCOUNT, self.pac!.endpoint),
      },
    );
  }

  /** The account's proxy is down with nowhere to go (rotation's rule); in a fleet, a refused request also retries the failover. */
  private proxyDown(account: string, proxy: ProxyEndpoint): Error | undefined {
    const refused = this.rotation.unavailable(account, proxy);
    if (refused) this.fleet?.retryFailover(account);
    return refused;
  }

  /** Moves the account to its next proxy (a new session on a gateway): through the store in a fleet, here otherwise. */
  private async move(account: string, closeExisting: boolean, reason: MoveReason): Promise<ProxyEndpoint> {
    return this.fleet ? this.fleet.rotate(account, closeExisting, reason) : this.rotation.rotate(account, closeExisting, reason);
  }

  /** A new session for the account's gateway session `expect` (undefined when it is no longer on it): agreed fleet-wide in a fleet. */
  private async renewSession(account: string, reason: MoveReason, expect: ProxyEndpoint): Promise<ProxyEndpoint | undefined> {
    return this.fleet ? this.fleet.renewSession(account, reason, expect) : this.rotation.renewSession(account, reason, false, expect);
  }

  /** The fleet coordinator, for this installation (routing/fleet.ts). */
  private startFleet(config: ResolvedStore): void {
    this.fleet = new FleetLeases(
      { store: createStore(config), ttl: config.ttl, margin: config.margin, exclusive: this.exclusive, strategy: this.options.strategy ?? 'round-robin', fingerprint: config.fingerprint },
      {
        accounts: this.accounts,
        health: this.health,
        traffic: this.traffic,
        failoverOn: (pool) => this.rotation.failoverOn(pool),
        adopt: (account, index, reason, closeExisting, entry, announce) => this.rotation.adopt(account, index, reason, closeExisting, entry, announce),
        sessions: {
          of: (entry) => this.sessions.sessionOf(entry),
          fresh: (entry) => this.sessions.fresh(entry),
          adopt: (entry, session) => this.sessions.adopt(entry, session),
        },
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
    const known = this.accountNames().map((n) => `"${n}"`).join(', ') || 'none';
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

  /** One check of the egress watch: one request to one endpoint through the account's route. */
  private async watchCheck(account: string): Promise<void> {
    const proxy = this.accounts.active(account);
    const interval = this.watch.optionsFor(account)?.interval ?? 10_000;
    const endpoint = this.watch.baseline(account)?.endpoint ?? (this.options.egressEndpoints ?? DEFAULT_EGRESS_ENDPOINTS)[0]!;
    const sockets: Socket[] = [];
    const route = this.egressPath(account);
    const path: EgressPath = async (target, signal) => {
      const socket = await route(target, signal);
      sockets.push(socket);
      return socket;
    };
    let result: EgressResult | undefined;
    try {
      result = await probeEgress(account, proxy, path, { requestTls: this.options.requestTls, endpoints: [endpoint], timeoutMs: Math.min(10_000, interval) });
    } catch {
      // No answer: nothing is known about the egress; counted below, the next check runs on schedule.
    } finally {
      await Promise.all(sockets.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r)))));
      this.watch.probed(result !== undefined, sockets.reduce((n, s) => n + s.bytesWritten, 0), sockets.reduce((n, s) => n + s.bytesRead, 0));
    }
    // Moved while the probe ran (rotate, lifetime): the probe saw the old session, it says nothing now.
    if (!result || !this.accounts.get(account) || this.accounts.active(account) !== proxy) return;
    const next = this.observed(account, proxy, result, { attempt: 0 });
    if (next) await next.catch(() => undefined);
  }

  /**
   * What an observed egress means, and what is done about it: a change within the session is
   * reported and handled per `watchEgress.onChange`; another account on the same IP gets the
   * event with `sameIpAs`, and a gateway session is replaced by a new one and verified again.
   * Returns the re-verification when there is one.
   */
  private observed(account: string, proxy: ProxyEndpoint, result: EgressResult, o: { accept?: boolean; attempt: number }): Promise<EgressResult> | undefined {
    const mode = this.watch.optionsFor(account)?.onChange ?? 'event';
    // The new IP becomes the baseline: a change is reported once (a quarantine stays until lifted).
    const seen = this.watch.observe(account, result.ip, proxy.identityKey, result.endpoint, { accept: o.accept });
    if (!seen.change && seen.sameIpAs.length === 0) return undefined;
    const renewable = this.sessions.isSticky(proxy) && o.attempt < 3;
    const event: EgressChangeEvent = {
      account,
      from: seen.change?.from ?? result.ip,
      to: result.ip,
      proxy: proxy.info(),
      ...(seen.sameIpAs.length ? { sameIpAs: seen.sameIpAs } : {}),
      action: seen.sameIpAs.length && renewable ? 'new-session' : mode,
    };
    publish('egressChange', () => event);
    this.emit('egress-change', event);
    if (seen.sameIpAs.length && renewable) {
      // Two accounts on one exit: this one gets a new session, verified again.
      return this.renewSession(account, 'same-ip', proxy).then(() => this.verify(account, {}, o.attempt + 1));
    }
    if (mode === 'quarantine' && !this.egress.isHeld(account)) {
      const what = seen.change ? `changed from ${event.from} to ${event.to} within its session` : `is ${event.to}, as ${seen.sameIpAs.map((a) => `"${a}"`).join(', ')}'s`;
      this.egress.hold(account, new EgressChangedError(`the account's egress IP ${what}; its traffic is stopped until verifyEgress(account, { accept: true }) or rotate()`, { account, proxy }));
      // Nothing more leaves on connections already open: they are cut, and new ones are refused.
      this.connections.retire(account, undefined, true);
      this.socketTunnels.close(account, proxy);
      return undefined;
    }
    if (mode === 'rotate' && seen.change) {
      return this.move(account, false, 'egress-change').then(
        () => {
          this.egress.release(account);
          return this.verify(account, {}, o.attempt + 1);
        },
        () => result, // nowhere to go: the event said what happened
      );
    }
    return undefined;
  }

  private onTunnelFailure(account: string, proxy: ProxyEndpoint, error: Error): ProxyEndpoint | undefined {
    this.traffic.failure(account, proxy.identityKey);
    const answered = error instanceof ProxyConnectError && error.status !== undefined && !(error instanceof ProxyAuthError);
    if (proxy.gateway && answered) {
      // The gateway answered, so it works: this session's exit failed. Failover by minting a new session
      // (a per-connection gateway's next connection has a fresh one anyway), not by leaving the gateway.
      // In a fleet the new session is agreed through the store: this request is not retried on it.
      void this.renewSession(account, 'session-failed', proxy).catch(() => undefined);
    } else {
      // Refused or timed out: the proxy — for a gateway, the gateway host, all its sessions — is failing.
      this.health.fail(proxy, error);
    }
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

  /** One endpoint per health key: a gateway is probed once, not once per session. */
  private *allProxies(): Iterable<ProxyEndpoint> {
    const seen = new Set<string>();
    for (const pool of this.accounts.all()) {
      for (const p of pool.proxies) {
        if (seen.has(p.healthKey)) continue;
        seen.add(p.healthKey);
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

  /** Proxies as they are; each gateway entry becomes the account's own session on it. */
  private parsePool(account: string, spec: ProxySpec): ProxyEndpoint[] {
    const list = Array.isArray(spec) ? spec : [spec];
    if (list.length === 0) throw new ConfigError(`account "${account}" has an empty proxy pool`);
    const at = account === DEFAULT_ACCOUNT ? 'proxy' : `accounts.${account}`;
    return list.map((input, i) => {
      const entry = parsePoolEntry(input, { defaultProtocol: this.options?.defaultProtocol, path: Array.isArray(spec) ? `${at}[${i}]` : at });
      if (!isGatewayDefinition(entry)) return entry;
      if (this.storeConfig && entry.mode === 'per-connection') {
        throw new ConfigError(`${Array.isArray(spec) ? `${at}[${i}]` : at}.session: a "per-connection" gateway has no single egress per account to lease fleet-wide (option store); use session: "sticky"`);
      }
      return this.sessions.open(account, entry);
    });
  }
}
