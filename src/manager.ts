/**
 * SessionProxyManager: accounts and their pools, the routing table, and the
 * layers it installs. install() applies each layer and keeps its restore
 * function; uninstall() runs them in reverse and retires every pool.
 */
import { EventEmitter } from 'node:events';
import { state } from './state.js';
import { AlreadyInstalledError, ConfigError } from './errors.js';
import { parseProxy } from './proxy/parse.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher } from './proxy/no-proxy.js';
import type { ProxyEndpoint, ProxyInfo } from './proxy/endpoint.js';
import { AccountPools, DEFAULT_ACCOUNT } from './routing/account-pools.js';
import { Router } from './routing/router.js';
import { LeakPolicy, type LeakEvent } from './routing/leak-policy.js';
import type { Target } from './routing/route.js';
import { ConnectionPools } from './pools/connection-pools.js';
import { installEnv } from './layers/env.js';
import { RoutingDispatcher, UndiciLayer } from './layers/undici.js';
import { installHttp } from './layers/http.js';
import { installSocketLayer } from './layers/socket/connect-hook.js';
import { guardHttp2Sessions, guardUndiciRequests } from './layers/socket/ownership.js';
import { installChildProcess } from './layers/child-process.js';
import { installDnsAudit } from './layers/dns-audit.js';
import type { Socket } from 'node:net';
import { probeEgress, type EgressOptions, type EgressResult } from './egress/verify.js';
import { publish } from './diagnostics.js';
import type { ProxySpec, SessionProxyOptions } from './options.js';

export interface RotateOptions {
  /** Also destroy the account's long-lived sockets on the old proxy (WebSockets, streams). @default false */
  closeExisting?: boolean;
}

export interface RotateEvent {
  readonly account: string;
  readonly from: ProxyInfo;
  readonly to: ProxyInfo;
  readonly reason: string;
  readonly closed: number;
}

export interface SessionProxyEvents {
  leak: [LeakEvent];
  rotate: [RotateEvent];
  egress: [EgressResult & { status: 'verified' }];
}

export class SessionProxyManager extends EventEmitter<SessionProxyEvents> {
  readonly options: Readonly<SessionProxyOptions>;
  private readonly accounts = new AccountPools();
  private readonly connections: ConnectionPools;
  private readonly noProxy: NoProxyMatcher;
  private envNoProxy = new NoProxyMatcher([]);
  private readonly router: Router;
  private readonly leaks: LeakPolicy;
  private restores: Array<() => void> = [];
  private undiciLayer: UndiciLayer | undefined;
  /** Socket-level tunnels by account, for rotate's closeExisting. */
  private readonly socketTunnels = new Map<string, Map<Socket, ProxyEndpoint>>();

  constructor(options: SessionProxyOptions = {}) {
    super();
    this.options = Object.freeze({ ...options });
    if (options.proxy !== undefined) this.accounts.set(DEFAULT_ACCOUNT, this.parsePool(DEFAULT_ACCOUNT, options.proxy));
    for (const [name, spec] of Object.entries(options.accounts ?? {})) {
      if (name === DEFAULT_ACCOUNT) throw new ConfigError(`account name "${DEFAULT_ACCOUNT}" is reserved for the default pool (option \`proxy\`)`);
      this.setAccount(name, spec);
    }
    this.noProxy = new NoProxyMatcher(options.noProxy ?? LOOPBACK_NO_PROXY);
    this.connections = new ConnectionPools(options.requestTls);
    const self = this;
    this.router = new Router({
      pools: this.accounts,
      noProxy: this.noProxy,
      get envNoProxy() { return self.envNoProxy; },
      requireScope: options.requireScope ?? false,
    });
    this.leaks = new LeakPolicy(options.strict ?? true, (event) => this.emit('leak', event));
  }

  get installed(): boolean {
    return state.installed === this;
  }

  /** Installs every layer. Idempotent for this instance; another installed manager → AlreadyInstalledError. */
  install(): this {
    if (state.installed === this) return this;
    if (state.installed) {
      throw new AlreadyInstalledError('another SessionProxyManager is already installed in this process; use getManager() to reach it, or uninstall() it first');
    }
    this.envNoProxy = NoProxyMatcher.fromEnv(process.env);
    try {
      const fallback = this.accounts.get(DEFAULT_ACCOUNT);
      if (fallback && (this.options.env ?? true)) {
        this.restores.push(installEnv(fallback.proxies[fallback.active], this.noProxy.entries));
      }
      this.undiciLayer = new UndiciLayer(new RoutingDispatcher(this.router, this.connections, UndiciLayer.previousDirect(), this.leaks));
      this.restores.push(this.undiciLayer.install());
      this.restores.push(
        installHttp({
          router: this.router,
          pools: this.connections,
          leaks: this.leaks,
          isProxyAddress: (t) => this.isProxyAddress(t),
          requestTls: this.options.requestTls,
          onRequest: () => this.undiciLayer?.reassert(),
        }),
      );
      this.restores.push(
        installSocketLayer({
          router: this.router,
          leaks: this.leaks,
          tunnelSockets: this.options.tunnelSockets ?? true,
          isProxyAddress: (t) => this.isProxyAddress(t),
          onTunnel: (socket, account, proxy) => this.trackSocketTunnel(socket, account, proxy),
        }),
      );
      this.restores.push(guardUndiciRequests(), guardHttp2Sessions());
      this.restores.push(installChildProcess({ proxyOf: (account) => this.accounts.active(account), noProxy: this.noProxy.entries }));
      this.restores.push(installDnsAudit());
    } catch (err) {
      this.restoreAll();
      throw err;
    }
    state.installed = this;
    return this;
  }

  /** Restores every patched global and closes every pool; in-flight requests finish (or fail) cleanly. */
  async uninstall(): Promise<void> {
    if (state.installed !== this) return;
    this.restoreAll();
    state.installed = undefined;
    this.undiciLayer = undefined;
    await this.connections.retireAll();
  }

  private restoreAll(): void {
    for (const restore of this.restores.reverse()) restore();
    this.restores = [];
  }

  /** Runs `fn` with every request it creates routed through `account`'s proxy. Returns what fn returns. */
  withProxy<T>(account: string, fn: () => T): T {
    this.accounts.require(account);
    this.undiciLayer?.reassert();
    return state.scopes.run({ account }, fn);
  }

  /** A function that always runs in `account`'s scope, wherever it is called from. */
  bind<A extends unknown[], R>(account: string, fn: (...args: A) => R): (...args: A) => R {
    this.accounts.require(account);
    return (...args: A) => this.withProxy(account, () => fn(...args));
  }

  /** The account of the calling async context, or undefined outside any scope. */
  currentAccount(): string | undefined {
    return this.router.currentAccount();
  }

  /** The active proxy of `account` (default: the calling scope's account, else `default`). */
  current(account: string = this.currentAccount() ?? DEFAULT_ACCOUNT): ProxyInfo {
    return this.accounts.active(account).info();
  }

  /** Configured account names, `default` included when a default proxy is set. */
  accountNames(): string[] {
    return this.accounts.names();
  }

  /** Adds or replaces an account. Replacing retires its old pools. */
  setAccount(account: string, spec: ProxySpec): this {
    if (!account || typeof account !== 'string') throw new ConfigError(`account name must be a non-empty string, got ${JSON.stringify(account)}`);
    const previous = this.accounts.get(account);
    this.accounts.set(account, this.parsePool(account, spec));
    if (previous) void this.connections.retire(account);
    return this;
  }

  /** Removes an account and closes its pools. */
  async removeAccount(account: string): Promise<void> {
    this.accounts.require(account);
    this.accounts.delete(account);
    await this.connections.retire(account);
  }

  /** Moves `account` to the next proxy of its pool; returns the new ProxyInfo. */
  async rotate(account: string = this.currentAccount() ?? DEFAULT_ACCOUNT, options: RotateOptions = {}): Promise<ProxyInfo> {
    const pool = this.accounts.require(account);
    const from = pool.proxies[pool.active];
    pool.active = (pool.active + 1) % pool.proxies.length;
    const to = pool.proxies[pool.active];
    let closed = 0;
    if (to.identityKey !== from.identityKey) {
      closed = await this.connections.retire(account, from, options.closeExisting ?? false);
      if (options.closeExisting) closed += this.closeSocketTunnels(account, from);
    }
    const event: RotateEvent = { account, from: from.info(), to: to.info(), reason: 'manual', closed };
    publish('rotate', () => event);
    this.emit('rotate', event);
    return to.info();
  }

  /** Asks IP-echo endpoints through the account's proxy and returns the egress IP it saw. */
  async verifyEgress(account: string = this.currentAccount() ?? DEFAULT_ACCOUNT, options: EgressOptions = {}): Promise<EgressResult> {
    this.undiciLayer?.reassert();
    const proxy = this.accounts.active(account);
    const result = await probeEgress(account, proxy, { requestTls: this.options.requestTls, ...options });
    const event = { ...result, status: 'verified' as const };
    publish('egress', () => event);
    this.emit('egress', event);
    return result;
  }

  /** Number of open sockets in the library's pools (all accounts, or one). */
  openSockets(account?: string): number {
    return this.connections.openSockets(account);
  }

  private trackSocketTunnel(socket: Socket, account: string, proxy: ProxyEndpoint): void {
    let sockets = this.socketTunnels.get(account);
    if (!sockets) this.socketTunnels.set(account, (sockets = new Map()));
    sockets.set(socket, proxy);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.socketTunnels.get(account) === sockets) this.socketTunnels.delete(account);
    });
  }

  /** Destroys the account's socket-level tunnels through `proxy`; returns how many. */
  private closeSocketTunnels(account: string, proxy: ProxyEndpoint): number {
    let n = 0;
    for (const [socket, through] of this.socketTunnels.get(account) ?? []) {
      if (through.identityKey !== proxy.identityKey) continue;
      socket.destroy();
      n++;
    }
    return n;
  }

  private isProxyAddress(target: Target): boolean {
    const host = target.host.toLowerCase();
    for (const pool of this.accounts.all()) for (const p of pool.proxies) if (p.host === host && p.port === target.port) return true;
    return false;
  }

  private parsePool(account: string, spec: ProxySpec): ProxyEndpoint[] {
    const list = Array.isArray(spec) ? spec : [spec];
    if (list.length === 0) throw new ConfigError(`account "${account}" has an empty proxy pool`);
    return list.map((input) => parseProxy(input, { defaultProtocol: this.options?.defaultProtocol }));
  }
}
