/**
 * Layer 6 — worker threads. A Worker has its own globals and none of our
 * patches: it gets the routing only by running the preload. A Worker created
 * while installed runs `session-proxy/register` (through its execArgv) with
 * the configuration, and — when created inside a scope — its whole body runs
 * in that account's scope. `worker_threads.Worker` is replaced by a subclass
 * for that; `instanceof Worker` still holds.
 */
import workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';

export type WorkerOptionsFor = (account: string | undefined, options: workerThreads.WorkerOptions) => workerThreads.WorkerOptions;

export function installWorkerThreads(optionsFor: WorkerOptionsFor): () => void {
  const Original = workerThreads.Worker;
  class Worker extends Original {
    constructor(filename: string | URL, options: workerThreads.WorkerOptions = {}) {
      super(filename, optionsFor(state.scopes.getStore()?.account, options));
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
