/**
 * Health of every proxy identity, and the probes that bring a proxy back:
 * when a cooldown ends the proxy is probed (a connect to the proxy, or a
 * tunnel to the configured check URL) before any account may use it again.
 * Optional periodic checks probe every proxy on an interval.
 */
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { directConnect, directTlsConnect } from '../plumbing.js';
import { openTunnel } from '../tunnel/open-tunnel.js';
import { targetFromUrl } from '../routing/route.js';
import { proxyTlsOptions } from '../tunnel/proxy-tls.js';
import type { Trust } from '../trust/trust.js';
import { ProxyHealth, healthDefaults, type HealthOptions } from './proxy-health.js';

export interface HealthCheckOptions {
  /** Probe every proxy this often (ms). Off when unset. */
  interval?: number;
  /** @default 5000 */
  timeout?: number;
  /** Open a tunnel to this URL's host through the proxy; without it, a plain connect to the proxy. */
  url?: string;
}

export interface HealthEvents {
  down(proxy: ProxyEndpoint, health: ProxyHealth): void;
  up(proxy: ProxyEndpoint, health: ProxyHealth): void;
  /**
   * In a fleet, one instance probes a proxy for all (routing/fleet.ts):
   * resolves false when another holds the probe (this one waits for its
   * result, asking again after `leaseMs`).
   */
  claimProbe?(proxy: ProxyEndpoint, leaseMs: number): Promise<boolean>;
}

export class HealthRegistry {
  private readonly states = new Map<string, ProxyHealth>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly o: Required<HealthOptions>;
  private closed = false;

  constructor(options: HealthOptions, private readonly check: HealthCheckOptions, private readonly events: HealthEvents, private readonly trust?: Trust) {
    this.o = healthDefaults(options);
  }

  /** Per health key: a proxy's identity, or a gateway (every session of one gateway host shares its health). */
  of(proxy: ProxyEndpoint): ProxyHealth {
    let h = this.states.get(proxy.healthKey);
    if (!h) this.states.set(proxy.healthKey, (h = new ProxyHealth(proxy, this.o)));
    return h;
  }

  /** Records a failure; if it starts a cooldown, announces it and schedules the probe. */
  fail(proxy: ProxyEndpoint, error: Error): boolean {
    const h = this.of(proxy);
    if (!h.fail(error)) return false;
    this.events.down(proxy, h);
    this.after(h.cooldownUntil - Date.now(), () => void this.probe(proxy, true));
    return true;
  }

  succeed(proxy: ProxyEndpoint, latencyMs: number): void {
    const h = this.of(proxy);
    if (h.succeed(latencyMs)) this.events.up(proxy, h);
  }

  /**
   * Probes a proxy. After a cooldown (probe-before-reuse) it stays unusable
   * until this succeeds; a periodic check of a healthy proxy leaves it usable.
   */
  async probe(proxy: ProxyEndpoint, afterCooldown = false): Promise<boolean> {
    if (this.closed) return false;
    const h = this.of(proxy);
    if (afterCooldown) h.status = 'probing';
    if (afterCooldown && this.events.claimProbe) {
      const leaseMs = (this.check.timeout ?? 5_000) + 1_000;
      if (!(await this.events.claimProbe(proxy, leaseMs))) {
        // Another process probes it for the fleet; ask again if no result came by then.
        this.after(leaseMs, () => {
          if (h.status === 'probing') void this.probe(proxy, true);
        });
        return false;
      }
      if (h.status !== 'probing') return h.status === 'up'; // the fleet's result came meanwhile
    }
    const started = performance.now();
    try {
      await this.probeOnce(proxy);
      this.succeed(proxy, Math.round(performance.now() - started));
      return true;
    } catch (err) {
      this.fail(proxy, err as Error);
      return false;
    }
  }

  /** Another process of the fleet put the proxy in cooldown until `until` (epoch ms): the same here, with its probe. */
  coolFromFleet(proxy: ProxyEndpoint, until: number, error: string): void {
    const h = this.of(proxy);
    if (h.status !== 'up') return;
    h.status = 'cooldown';
    h.cooldownUntil = until;
    h.lastError = error;
    this.events.down(proxy, h);
    this.after(until - Date.now(), () => void this.probe(proxy, true));
  }

  /** The fleet's probe found the proxy up again. */
  upFromFleet(proxy: ProxyEndpoint): void {
    const h = this.of(proxy);
    if (h.status !== 'up') this.succeed(proxy, h.lastLatencyMs ?? 0);
  }

  /** Starts periodic checks of `proxies()` when an interval is configured. */
  startPeriodic(proxies: () => Iterable<ProxyEndpoint>): void {
    const interval = this.check.interval;
    if (!interval) return;
    const tick = (): void => {
      for (const p of proxies()) {
        if (this.of(p).status === 'up') void this.probe(p);
      }
      this.after(interval, tick);
    };
    this.after(interval, tick);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private after(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.max(0, ms));
    t.unref();
    this.timers.add(t);
  }

  private async probeOnce(proxy: ProxyEndpoint): Promise<void> {
    const timeout = this.check.timeout ?? 5_000;
    const signal = AbortSignal.timeout(timeout);
    if (this.check.url) {
      const socket = await openTunnel(proxy, targetFromUrl(this.check.url), { signal, trust: this.trust });
      socket.destroy();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const secure = proxy.protocol === 'https';
      const socket = secure
        ? directTlsConnect({ ...proxyTlsOptions(proxy, this.trust), host: proxy.host, port: proxy.port })
        : directConnect({ host: proxy.host, port: proxy.port });
      const done = (err?: Error): void => {
        socket.destroy();
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = (): void => done(new Error(`probe timed out after ${timeout} ms`));
      signal.addEventListener('abort', onAbort);
      socket.once(secure ? 'secureConnect' : 'connect', () => done());
      socket.once('error', done);
    });
  }
}
