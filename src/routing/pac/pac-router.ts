/**
 * The PAC's part in the one decision (router.ts): outside scopes, after
 * rules and noProxy, the default route follows the PAC.
 *
 * A PAC answer is asynchronous and routing is decided when a request is
 * created, so the Router answers at once with a tunnel whose opener (`open`)
 * is this PAC's: `begin(target)` starts the evaluation in the caller's
 * context at creation, and the connection, whenever its layer opens it,
 * waits for that answer and tries its entries in order:
 * - a proxy in cooldown (health) is skipped; a proxy that fails before the
 *   tunnel is up (refused, reset, a 407, a timeout: nothing of the request
 *   has left) is recorded against its health and the next entry is tried;
 * - DIRECT opens a direct connection (the library's plumbing);
 * - nothing usable → ProxyUnavailableError naming the PAC and each failure.
 * A proxy the PAC names that is an account's (exclusive) is skipped too.
 *
 * Answers are cached per host:port (bounded, least recently used dropped)
 * until the script changes. The script is loaded at install and refreshed
 * on `refreshInterval`; a refresh that fails keeps the last good script. A
 * PAC that cannot be loaded, throws, or runs out of time fails **closed**
 * (ProxyUnavailableError naming the PAC) unless `pacFallback: 'direct'`. A
 * script that answers nothing (empty, null) leaves the target to the default
 * proxy, else direct — as browsers read an empty answer.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { ProxyConnectError, ProxyUnavailableError } from '../../errors.js';
import { ProxyEndpoint, hostForUrl } from '../../proxy/endpoint.js';
import { directConnect } from '../../plumbing.js';
import { openTunnel } from '../../tunnel/open-tunnel.js';
import { formatAuthority, type TunnelTarget } from '../../tunnel/target.js';
import type { TunnelOpener } from '../account-tunnels.js';
import type { Target } from '../route.js';
import { parsePacAnswer, type PacAnswer } from './answer.js';
import { PacEngine } from './engine.js';
import { PacDns } from './helpers.js';
import { loadPacText } from './source.js';
import { pacLabel, type PacSourceSpec } from './spec.js';

/** What the Router needs from a PAC. */
export interface PacDecider {
  /** Stands for "the PAC" where a tunnel names its proxy: the key of the default route's PAC pools. */
  readonly endpoint: ProxyEndpoint;
  /** `the PAC http://wpad.corp/proxy.pac`, for messages and the `route` event. */
  readonly label: string;
  /** Opens a connection to a target as the PAC answers for it. */
  readonly open: TunnelOpener;
  /** Starts the evaluation for a connection being created now. */
  begin(target: Target): void;
}

export interface PacRouterOptions {
  readonly source: PacSourceSpec;
  /** Re-fetch a URL this often (ms); 0: never. */
  readonly refreshInterval: number;
  readonly fetchTimeout: number;
  readonly evalTimeout: number;
  readonly cacheSize: number;
  readonly fallback: 'fail' | 'direct';
  /** TLS options for an https:// PAC URL. */
  readonly tls?: ConnectionOptions;
}

export interface PacRouterDeps {
  readonly available: (proxy: ProxyEndpoint) => boolean;
  readonly succeeded: (proxy: ProxyEndpoint, latencyMs: number) => void;
  readonly failed: (proxy: ProxyEndpoint, error: Error) => void;
  /** Why a proxy the PAC names may not carry the default route (an account's proxy, with exclusive), if so. */
  readonly refused?: (proxy: ProxyEndpoint) => string | undefined;
  /** For an empty answer: the default proxy's way out, or undefined for direct. */
  readonly unanswered?: () => TunnelOpener | undefined;
  /** The script changed: connections opened under the old answers should drain. */
  readonly changed?: () => void;
}

/** How long after a failed load a request may trigger the next attempt (ms). */
const RELOAD_AFTER_FAILURE_MS = 5_000;
const MEMORY_LIMIT = 32 * 1024 * 1024;

type Loaded = { readonly engine: PacEngine; readonly text: string };

export class PacRouter implements PacDecider {
  readonly label: string;
  readonly endpoint: ProxyEndpoint;
  private readonly dns: PacDns;
  private current: Loaded | undefined;
  private loading: Promise<Loaded> | undefined;
  private lastFailure: { error: Error; at: number } | undefined;
  private readonly answers = new Map<string, Promise<PacAnswer>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: PacRouterOptions, private readonly deps: PacRouterDeps) {
    this.label = pacLabel(o.source);
    this.dns = new PacDns(this.label);
    // Never dialed: it keys the PAC's pools (`.invalid` never resolves).
    this.endpoint = new ProxyEndpoint({ protocol: 'http', host: 'pac.session-proxy.invalid', port: 9, label: this.label });
  }

  /** Loads the script now and refreshes it on the interval. */
  start(): void {
    this.closed = false;
    this.lastFailure = undefined;
    void this.script().catch(() => undefined);
    if (this.o.source.kind === 'url' && this.o.refreshInterval > 0) {
      this.timer = setInterval(() => void this.refresh(), this.o.refreshInterval);
      this.timer.unref();
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.current?.engine.dispose();
    this.current = undefined;
    this.answers.clear();
  }

  begin(target: Target): void {
    void this.answer(target).catch(() => undefined);
  }

  readonly open: TunnelOpener = async (target, signal) => {
    let answer: PacAnswer;
    try {
      answer = await this.answer(target);
    } catch (err) {
      if (this.o.fallback === 'direct') return connectDirect(target, signal);
      throw err;
    }
    if (answer.entries.length === 0 && answer.skipped.length === 0) {
      const viaDefault = this.deps.unanswered?.();
      return viaDefault ? viaDefault(target, signal) : connectDirect(target, signal);
    }
    const failures: string[] = answer.skipped.map((s) => `"${s}": not a PAC entry this library reads`);
    for (const entry of answer.entries) {
      if (entry.kind === 'direct') return connectDirect(target, signal);
      const { proxy } = entry;
      const refused = this.deps.refused?.(proxy);
      if (refused) {
        failures.push(`${proxy}: ${refused}`);
        continue;
      }
      if (!this.deps.available(proxy)) {
        failures.push(`${proxy}: down (cooldown, or awaiting its probe)`);
        continue;
      }
      const started = performance.now();
      try {
        const socket = await openTunnel(proxy, target, { signal });
        this.deps.succeeded(proxy, Math.round(performance.now() - started));
        return socket;
      } catch (err) {
        // Only a failure before the tunnel was up moves on: nothing of the request has left yet.
        if (!(err instanceof ProxyConnectError) || signal?.aborted) throw err;
        this.deps.failed(proxy, err);
        failures.push(`${proxy}: ${err.message}`);
      }
    }
    throw new ProxyUnavailableError(`no entry of ${this.label}'s answer "${answer.text}" could be used: ${failures.join('; ')}`, { target: formatAuthority(target.host, target.port) });
  };

  /** The answer for a target: cached per host:port, one evaluation in flight per key. */
  private answer(target: TunnelTarget & { scheme?: string }): Promise<PacAnswer> {
    const key = formatAuthority(target.host.toLowerCase(), target.port);
    const hit = this.answers.get(key);
    if (hit) {
      // Least recently used goes first: move this one to the end.
      this.answers.delete(key);
      this.answers.set(key, hit);
      return hit;
    }
    const p = this.evaluate(target);
    if (this.answers.size >= this.o.cacheSize) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(key, p);
    // Failures are not remembered: the next connection asks again (the load itself is rate-limited).
    p.catch(() => {
      if (this.answers.get(key) === p) this.answers.delete(key);
    });
    return p;
  }

  private async evaluate(target: TunnelTarget & { scheme?: string }): Promise<PacAnswer> {
    const { engine } = await this.script();
    const scheme = pacScheme(target);
    const defaultPort = scheme === 'https' ? 443 : 80;
    const url = `${scheme}://${hostForUrl(target.host)}${target.port === defaultPort ? '' : `:${target.port}`}/`;
    try {
      return parsePacAnswer(await engine.findProxyForURL(url, target.host));
    } catch (err) {
      throw new ProxyUnavailableError(`${this.label} failed for ${url}: ${(err as Error).message}`, { target: formatAuthority(target.host, target.port), cause: err });
    }
  }

  /** The compiled script: loaded once, again after a failure (rate-limited), replaced by refresh(). */
  private script(): Promise<Loaded> {
    if (this.closed) return Promise.reject(new ProxyUnavailableError(`${this.label} is closed (the manager was uninstalled)`));
    if (this.current) return Promise.resolve(this.current);
    if (this.loading) return this.loading;
    const failed = this.lastFailure;
    if (failed && Date.now() - failed.at < RELOAD_AFTER_FAILURE_MS) return Promise.reject(failed.error);
    const loading = this.load().then(
      (loaded) => {
        if (this.closed) loaded.engine.dispose();
        else this.current = loaded;
        this.lastFailure = undefined;
        return loaded;
      },
      (err: Error) => {
        this.lastFailure = { error: err, at: Date.now() };
        throw err;
      },
    );
    this.loading = loading;
    void loading.then(
      () => (this.loading = undefined),
      () => (this.loading = undefined),
    );
    return loading;
  }

  private async load(): Promise<Loaded> {
    let text: string;
    try {
      text = await loadPacText(this.o.source, this.o.fetchTimeout, this.o.tls);
    } catch (err) {
      throw new ProxyUnavailableError(`${this.label} could not be loaded: ${messageOf(err)}`, { cause: err });
    }
    try {
      const engine = await PacEngine.create(text, this.dns, { evalTimeoutMs: this.o.evalTimeout, memoryLimit: MEMORY_LIMIT });
      return { engine, text };
    } catch (err) {
      throw new ProxyUnavailableError(`${this.label} cannot be used: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Fetches the script again; a changed script replaces the old one and clears the answers. */
  async refresh(): Promise<boolean> {
    if (this.closed || !this.current) {
      await this.script().catch(() => undefined);
      return false;
    }
    let text: string;
    try {
      text = await loadPacText(this.o.source, this.o.fetchTimeout, this.o.tls);
    } catch {
      return false; // keep the last good script
    }
    if (this.closed || text === this.current?.text) return false;
    let engine: PacEngine;
    try {
      engine = await PacEngine.create(text, this.dns, { evalTimeoutMs: this.o.evalTimeout, memoryLimit: MEMORY_LIMIT });
    } catch {
      return false;
    }
    if (this.closed) {
      engine.dispose();
      return false;
    }
    const old = this.current;
    this.current = { engine, text };
    this.answers.clear();
    old?.engine.dispose();
    this.deps.changed?.();
    return true;
  }
}

/** The URL scheme a PAC sees: ws/wss as http/https (as browsers do); unknown (socket layer) by port. */
function pacScheme(target: { port: number; scheme?: string }): string {
  switch (target.scheme) {
    case 'https':
    case 'wss':
      return 'https';
    case 'http':
    case 'ws':
      return 'http';
    default:
      return target.port === 443 ? 'https' : 'http';
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function connectDirect(target: TunnelTarget, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = directConnect({ host: target.host, port: target.port, signal });
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.removeListener('error', onError);
      resolve(socket);
    });
  });
}
