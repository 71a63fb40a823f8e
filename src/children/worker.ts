/**
 * Worker threads have their own globals and module graph: no manager, no
 * patched globals. A Worker is the app itself: it gets every account's
 * configuration (`childConfig` does not narrow it), never through its `env`.
 * The worker-threads layer hands the text over in worker environment data
 * (see inherited.ts); `workerOptionsFor(account, options)`, for Workers
 * started without an installed manager, points to a private file instead
 * (child-env.ts). Either way the worker runs the preload (`--require` the
 * CommonJS preload, see child-env.ts for why not `--import`), in `account`'s
 * scope when one is given:
 *
 *   new Worker(file, workerOptionsFor('alice', { workerData }))
 *
 * Inherited execArgv: a Worker given `execArgv` no longer inherits the
 * parent's, and refuses process-wide flags (`--max-old-space-size`, …). When
 * the caller passes none, the parent's flags are kept minus the ones a Worker
 * refuses (found once by constructing a throwaway worker, then cached).
 */
import { SHARE_ENV, Worker, type WorkerOptions } from 'node:worker_threads';
import { ConfigError } from '../errors.js';
import type { SessionProxyOptions } from '../options.js';
import { envWithPointer, installedOptions, registerEnvFor, registerPaths, withoutRegister, type RegisterEnvOptions } from './child-env.js';

let inheritable: string[] | undefined;

/** process.execArgv minus the flags a Worker refuses. */
export function workerSafeExecArgv(): string[] {
  if (inheritable) return [...inheritable];
  let args = withoutRegister(process.execArgv);
  for (let attempt = 0; attempt < 3 && args.length; attempt++) {
    try {
      const probe = new Worker('', { eval: true, execArgv: args, stdout: true, stderr: true, env: {} });
      void probe.terminate();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
      // "Initiated Worker with invalid execArgv flags: --a=1, --b"
      const listed = (err as Error).message.split(':').slice(1).join(':').split(',').map((s) => s.trim()).filter(Boolean);
      const next = args.filter((a) => !listed.some((bad) => a === bad || a.startsWith(`${bad.split('=')[0]}=`) || bad.startsWith(`${a}=`)));
      if (next.length === args.length) {
        args = [];
        break;
      }
      args = next;
    }
  }
  inheritable = args;
  return [...args];
}

/**
 * Options for a Worker that runs the preload, in `account`'s scope: the
 * configuration in a private file the worker's env points to (every pool,
 * unless `envOptions.childConfig` is `'route'`).
 */
export function workerOptionsFor(
  account: string | undefined,
  options: WorkerOptions = {},
  config: SessionProxyOptions = installedOptions(),
  envOptions: RegisterEnvOptions = {},
): WorkerOptions {
  const base = workerBaseEnv(options);
  return { ...workerPreload(options), env: registerEnvFor(account, config, base, { childConfig: 'all', ...envOptions }) };
}

/** Options for a Worker whose configuration travels apart (worker environment data): the preload, the account, no pointer. */
export function workerPreloadOptions(account: string | undefined, options: WorkerOptions, ref?: string): WorkerOptions {
  return { ...workerPreload(options), env: envWithPointer(account, workerBaseEnv(options), ref) };
}

function workerBaseEnv(options: WorkerOptions): NodeJS.ProcessEnv {
  if (options.env === SHARE_ENV) {
    throw new ConfigError('workerOptionsFor: env: SHARE_ENV cannot carry the account and configuration to the worker; leave env unset or pass an object');
  }
  return (options.env as NodeJS.ProcessEnv | undefined) ?? process.env;
}

function workerPreload(options: WorkerOptions): WorkerOptions {
  const execArgv = options.execArgv ? withoutRegister(options.execArgv) : workerSafeExecArgv();
  return { ...options, execArgv: [...execArgv, '--require', registerPaths().cjs] };
}
