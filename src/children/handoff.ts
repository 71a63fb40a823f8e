/**
 * What an installed manager hands each child, for its child-process and
 * worker-threads layers:
 *
 * | child                                   | configuration (child-config.ts)       | how                                  |
 * |-----------------------------------------|---------------------------------------|--------------------------------------|
 * | child process (`childConfig: 'route'`)  | its route's pool                      | pointer to a private file            |
 * | child process (`childConfig: 'all'`)    | every pool                            | pointer to a private file            |
 * | `cluster.fork()` worker                 | every pool                            | pointer to a private file            |
 * | `worker_threads` Worker                 | every pool                            | worker environment data, no pointer  |
 *
 * Every pool of a large configuration takes a while to write out (10,000
 * accounts: ~90 ms, ~0.9 MB), so that text is kept and reused until a pool
 * changes (setAccount, removeAccount, rotation, failover) — checked per
 * child by a walk over the pools, no copy.
 *
 * A manager that refuses everything because its own configuration could not
 * be read (preload.ts, fail closed) passes its unusable pointer on unchanged,
 * so its Node descendants fail closed too.
 */
import { existsSync } from 'node:fs';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { AccountPool } from '../routing/account-pools.js';
import type { WorkerOptions } from 'node:worker_threads';
import type { SessionProxyOptions } from '../options.js';
import { callerChoseProxy, withRouteProxy, type ChildKind } from '../layers/child-process.js';
import { envWithPointer, registerPaths } from './child-env.js';
import { liveChildConfig, type ChildConfigMode, type LivePools } from './child-config.js';
import { configFileFor } from './config-files.js';
import { workerPreloadOptions } from './worker.js';

/** The whole configuration as last written, and the pools it was written from. */
interface AllText {
  readonly pools: AccountPool[];
  readonly proxies: (readonly ProxyEndpoint[])[];
  readonly active: number[];
  readonly fingerprint: string | undefined;
  readonly text: string;
  ref?: string;
}

export class ChildHandoff {
  private all: AllText | undefined;

  constructor(
    private readonly options: Readonly<SessionProxyOptions>,
    private readonly pools: LivePools,
    /** The explicit noProxy entries (a scoped Worker's NO_PROXY). */
    private readonly noProxy: readonly string[],
    /** Set when this manager refuses everything: the unusable pointer its children get. */
    private readonly refusedRef: string | undefined,
    /** The manager's configuration fingerprint in its fleet (option `store`), which its children register too. */
    private readonly fingerprint: () => string | undefined = () => undefined,
  ) {}

  private get mode(): ChildConfigMode {
    return this.options.childConfig ?? 'route';
  }

  /** Whether the built preload exists (running from sources, it does not: children get no preload). */
  private get preload(): boolean {
    try {
      return existsSync(registerPaths().cjs);
    } catch {
      return false;
    }
  }

  /** The environment of a child process (or cluster worker) spawned in `account`'s scope. */
  processEnv(account: string | undefined, env: NodeJS.ProcessEnv, kind: ChildKind): NodeJS.ProcessEnv {
    if (!this.preload) return env;
    return envWithPointer(account, env, this.refusedRef ?? this.ref(account, kind === 'cluster' ? 'all' : this.mode));
  }

  /**
   * A Worker's options and the configuration it is handed (always every
   * pool). Its `env` (a copy, not the process's) gets the account's proxy
   * variables when it is created in a scope, as a child process would
   * (unless the caller set its own).
   */
  worker(account: string | undefined, options: WorkerOptions): { options: WorkerOptions; config?: string } {
    if (!this.preload) return { options };
    const prepared = workerPreloadOptions(account, options, this.refusedRef);
    const pool = account === undefined ? undefined : this.pools.get(account);
    if (pool && !callerChoseProxy(options.env as NodeJS.ProcessEnv | undefined)) withRouteProxy(prepared.env as NodeJS.ProcessEnv, pool.proxies[pool.active]!, this.noProxy);
    return this.refusedRef !== undefined ? { options: prepared } : { options: prepared, config: this.allText().text };
  }

  private ref(account: string | undefined, mode: ChildConfigMode): string {
    if (mode === 'route') return configFileFor(liveChildConfig(this.options, this.pools, account, 'route', this.fingerprint()));
    const all = this.allText();
    if (all.ref === undefined || !existsSync(all.ref)) all.ref = configFileFor(all.text);
    return all.ref;
  }

  /** Every pool's configuration: the text kept from last time while no pool changed. */
  private allText(): AllText {
    const last = this.all;
    const fingerprint = this.fingerprint();
    if (last && last.fingerprint === fingerprint) {
      let i = 0;
      let same = true;
      for (const pool of this.pools.all()) {
        if (pool !== last.pools[i] || pool.proxies !== last.proxies[i] || pool.active !== last.active[i]) {
          same = false;
          break;
        }
        i++;
      }
      if (same && i === last.pools.length) return last;
    }
    const pools = [...this.pools.all()];
    const text = liveChildConfig(this.options, this.pools, undefined, 'all', fingerprint);
    return (this.all = { pools, proxies: pools.map((p) => p.proxies), active: pools.map((p) => p.active), fingerprint, text });
  }
}
