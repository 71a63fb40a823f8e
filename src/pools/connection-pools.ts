/**
 * The connection pools of each (account, proxy identity): an undici Agent for
 * fetch/undici traffic and an http/https Agent pair for http.request traffic,
 * created lazily. Keying by account *and* identity (credentials included)
 * means a keep-alive socket opened for one account can never carry another
 * account's request.
 *
 * Retiring a pool (rotate, removeAccount, uninstall) closes its idle sockets
 * at once and lets in-flight requests finish on the old proxy — for at most
 * `drainTimeout` on rotate and removal, then they are cut with
 * DrainTimeoutError; `cutLongLived` also cuts long-lived sockets (WebSockets,
 * CONNECT tunnels) at once.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Agent as UndiciAgent, type Dispatcher } from 'undici';
import type * as http from 'node:http';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { DrainTimeoutError } from '../errors.js';
import { tunnelConnector } from './tunnel-connector.js';
import { HttpTunnelAgent, HttpsTunnelAgent, type TunnelAgentOptions } from './tunnel-agents.js';
import type { TunnelOpener } from '../routing/account-tunnels.js';
import { claim } from '../guard/ownership.js';
import { markPlumbing } from '../plumbing.js';

export type OpenerFactory = (account: string, proxy: ProxyEndpoint) => TunnelOpener;

const kDetached = Symbol('session-proxy.detached');
type Detachable = Socket & { [kDetached]?: boolean };

/**
 * A socket its pool no longer owns: an http agent's socket taken by an
 * upgrade, or an undici socket after an upgrade (undici clears the socket's
 * `client` slot then; the symbol is private, so it is found by description).
 */
function detached(socket: Socket): boolean {
  if ((socket as Detachable)[kDetached]) return true;
  const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'client');
  return key !== undefined && (socket as unknown as Record<symbol, unknown>)[key] == null;
}

class ProxyConnections {
  dispatcher: UndiciAgent | undefined;
  httpAgent: HttpTunnelAgent | undefined;
  httpsAgent: HttpsTunnelAgent | undefined;
  /** Every socket these pools opened and that is still open. */
  readonly sockets = new Set<Socket>();
  readonly tunnel: TunnelAgentOptions;
  /** Last time a request was routed to these pools (for idle eviction). */
  lastUsed = Date.now();

  constructor(readonly account: string, readonly proxy: ProxyEndpoint, open: TunnelOpener, private readonly requestTls: ConnectionOptions | undefined) {
    this.tunnel = { open, onSocket: (s) => this.track(s) };
  }

  private track(socket: Socket): void {
    // Every connection of these pools serves this account's route (the default pool: the default route).
    claim(socket, this.account);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // Node's ClientRequest emits this when an upgrade or CONNECT takes the socket from its agent.
    socket.once('agentRemove', () => ((socket as Detachable)[kDetached] = true));
  }

  undici(): UndiciAgent {
    // Plumbing: already one (account, proxy) route; undici-partition must not split it again.
    return (this.dispatcher ??= markPlumbing(new UndiciAgent({ connect: tunnelConnector({ ...this.tunnel, requestTls: this.requestTls }) })));
  }

  agent(secure: boolean): http.Agent {
    return secure ? (this.httpsAgent ??= new HttpsTunnelAgent(this.tunnel)) : (this.httpAgent ??= new HttpTunnelAgent(this.tunnel));
  }

  /**
   * Closes idle sockets now; in-flight requests finish, then their sockets
   * close; with a `drainTimeout`, those still running then are cut.
   * `cutLongLived` also destroys the sockets the pools no longer own
   * (upgraded WebSockets, CONNECT tunnels) — the long-lived ones a rotation
   * must move. Returns how many were cut, closed idle, and left draining.
   */
  retire(cutLongLived: boolean, drainTimeout?: number): { cut: number; drained: number; draining: number; closed: Promise<void> } {
    let drained = 0;
    let draining = 0;
    for (const agent of [this.httpAgent, this.httpsAgent]) {
      if (!agent) continue;
      agent.keepSocketAlive = () => false;
      for (const list of Object.values(agent.freeSockets)) {
        for (const s of list ?? []) {
          s.destroy();
          drained++;
        }
      }
      for (const list of Object.values(agent.sockets)) draining += list?.length ?? 0;
    }
    for (const stats of Object.values(this.dispatcher?.stats ?? {})) {
      if ('free' in stats) {
        drained += stats.free;
        draining += stats.connected - stats.free;
      } else if (stats.connected) {
        if (stats.running > 0) draining++;
        else drained++;
      }
    }
    let cut = 0;
    if (cutLongLived) {
      for (const s of this.sockets) {
        if (!detached(s)) continue;
        s.destroy();
        cut++;
      }
    }
    // In-flight requests finish on the old proxy; nobody needs to wait for them here.
    const closed = this.dispatcher ? this.dispatcher.close().catch(() => undefined) : Promise.resolve();
    if (drainTimeout !== undefined && draining > 0) this.cutAfter(drainTimeout, closed);
    return { cut, drained, draining, closed };
  }

  /** After `ms`, cuts what is still running (long-lived sockets excepted: those only closeExisting cuts). */
  private cutAfter(ms: number, closed: Promise<void>): void {
    const timer = setTimeout(() => {
      const error = new DrainTimeoutError(`cut ${ms} ms after the account moved off this proxy (drainTimeout)`, { account: this.account, proxy: this.proxy });
      this.dispatcher?.destroy(error).catch(() => undefined);
      for (const s of this.sockets) if (!detached(s)) s.destroy(error);
    }, ms);
    timer.unref();
    // Cleared once everything finished in time (the undici pool closed, no http request left).
    let undiciDone = false;
    const agentsIdle = (): boolean => [this.httpAgent, this.httpsAgent].every((a) => !a || Object.values(a.sockets).every((l) => !l?.length));
    const check = (): void => {
      if (undiciDone && agentsIdle()) clearTimeout(timer);
    };
    void closed.then(() => {
      undiciDone = true;
      check();
    });
    for (const s of this.sockets) s.once('close', check);
  }
}

export class ConnectionPools {
  private readonly pools = new Map<string, ProxyConnections>();

  /** `drainTimeout`: how long a retired pool's in-flight requests may run before they are cut (ms; undefined: no bound). */
  constructor(private readonly openerFor: OpenerFactory, private readonly requestTls?: ConnectionOptions, private readonly drainTimeout?: number) {}

  private of(account: string, proxy: ProxyEndpoint): ProxyConnections {
    const key = `${account}\0${proxy.identityKey}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new ProxyConnections(account, proxy, this.openerFor(account, proxy), this.requestTls);
      this.pools.set(key, pool);
    }
    pool.lastUsed = Date.now();
    return pool;
  }

  dispatcher(account: string, proxy: ProxyEndpoint): Dispatcher {
    return this.of(account, proxy).undici();
  }

  agent(account: string, proxy: ProxyEndpoint, secure: boolean): http.Agent {
    return this.of(account, proxy).agent(secure);
  }

  /**
   * Retires the pools of `account` (all of them, or only those of `proxy`):
   * returns at once with the number of long-lived sockets cut, idle sockets
   * closed and busy ones left draining; in-flight requests finish on the old
   * proxy in the background, for at most `drainTimeout`.
   */
  retire(account: string, proxy?: ProxyEndpoint, cutLongLived = false): { cut: number; drained: number; draining: number } {
    const total = { cut: 0, drained: 0, draining: 0 };
    for (const [key, pool] of this.pools) {
      if (pool.account !== account || (proxy && pool.proxy.identityKey !== proxy.identityKey)) continue;
      this.pools.delete(key);
      const r = pool.retire(cutLongLived, this.drainTimeout);
      total.cut += r.cut;
      total.drained += r.drained;
      total.draining += r.draining;
    }
    return total;
  }

  /** Retires every pool and waits until in-flight requests have finished (uninstall). */
  async retireAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.retire(false).closed));
  }

  /**
   * Retires the pools no request was routed to for `idleMs`; returns how
   * many. Retiring is graceful: idle keep-alive sockets close, a request or
   * stream still running on one finishes, an upgraded WebSocket is left alone.
   * The next request of that (account, proxy) builds a fresh pool.
   */
  evictIdle(idleMs: number, now = Date.now()): number {
    let n = 0;
    for (const [key, pool] of this.pools) {
      if (now - pool.lastUsed < idleMs) continue;
      this.pools.delete(key);
      pool.retire(false);
      n++;
    }
    return n;
  }

  get size(): number {
    return this.pools.size;
  }

  /** Open sockets per account (for stats and tests). */
  openSockets(account?: string): number {
    let n = 0;
    for (const pool of this.pools.values()) if (account === undefined || pool.account === account) n += pool.sockets.size;
    return n;
  }
}
