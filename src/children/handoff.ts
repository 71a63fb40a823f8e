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
 * A manager that refuses everything because its own configuration could not
 * be read (preload.ts, fail closed) passes its unusable pointer on unchanged,
 * so its Node descendants fail closed too.
 */
import { existsSync } from 'node:fs';
import type { WorkerOptions } from 'node:worker_threads';
import type { SessionProxyOptions } from '../options.js';
import type { ChildKind } from '../layers/child-process.js';
import { envWithPointer, registerPaths } from './child-env.js';
import { liveChildConfig, type ChildConfigMode, type LivePools } from './child-config.js';
import { configFileFor } from './config-files.js';
import { workerPreloadOptions } from './worker.js';

export class ChildHandoff {
  constructor(
    private readonly options: Readonly<SessionProxyOptions>,
    private readonly pools: LivePools,
    /** Set when this manager refuses everything: the unusable pointer its children get. */
    private readonly refusedRef: string | undefined,
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
    const ref = this.refusedRef ?? configFileFor(liveChildConfig(this.options, this.pools, account, kind === 'cluster' ? 'all' : this.mode));
    return envWithPointer(account, env, ref);
  }

  /** A Worker's options and the configuration it is handed (always every pool). */
  worker(account: string | undefined, options: WorkerOptions): { options: WorkerOptions; config?: string } {
    if (!this.preload) return { options };
    if (this.refusedRef !== undefined) return { options: workerPreloadOptions(account, options, this.refusedRef) };
    return { options: workerPreloadOptions(account, options), config: liveChildConfig(this.options, this.pools, account, 'all') };
  }
}
