/**
 * Layer 6 — worker threads. A Worker has its own globals and none of our
 * patches: it gets the routing only by running the preload. A Worker created
 * while installed runs `session-proxy/register` (through its execArgv) with
 * the whole configuration, handed over in worker environment data (copied
 * into the Worker when it is constructed, set only around that constructor
 * call, never in its `env`), and — when created inside a scope — its whole
 * body runs in that account's scope. `worker_threads.Worker` is replaced by
 * a subclass for that; `instanceof Worker` still holds.
 */
import workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';
import { WORKER_CONFIG_KEY } from '../config/inherited.js';

/** The Worker's options, and the configuration text it is handed (none: it gets no configuration from here). */
export type WorkerOptionsFor = (account: string | undefined, options: workerThreads.WorkerOptions) => { options: workerThreads.WorkerOptions; config?: string };

export function installWorkerThreads(optionsFor: WorkerOptionsFor): () => void {
  const Original = workerThreads.Worker;
  class Worker extends Original {
    constructor(filename: string | URL, options: workerThreads.WorkerOptions = {}) {
      const prepared = optionsFor(state.scopes.getStore()?.account, options);
      const previous = workerThreads.getEnvironmentData(WORKER_CONFIG_KEY);
      workerThreads.setEnvironmentData(WORKER_CONFIG_KEY, prepared.config as workerThreads.Serializable | undefined);
      try {
        super(filename, prepared.options);
      } finally {
        workerThreads.setEnvironmentData(WORKER_CONFIG_KEY, previous);
      }
    }
  }
  Object.defineProperty(Worker, 'name', { value: 'Worker' });
  (workerThreads as { Worker: unknown }).Worker = Worker;
  syncBuiltinESMExports();
  return () => {
    (workerThreads as { Worker: unknown }).Worker = Original;
    syncBuiltinESMExports();
  };
}
