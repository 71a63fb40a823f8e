/**
 * Worker threads have their own globals and module graph: no manager, no
 * patched globals. `workerOptionsFor(account, options)` returns Worker
 * options that run the preload in the worker (`--require` the CommonJS
 * preload, see child-env.ts for why not `--import`) with the configuration
 * and the account in the worker's `env`:
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
import { installedOptions, registerEnvFor, registerPaths, withoutRegister, type RegisterEnvOptions } from './child-env.js';

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

export function workerOptionsFor(
  account: string | undefined,
  options: WorkerOptions = {},
  config: SessionProxyOptions = installedOptions(),
  envOptions: RegisterEnvOptions = {},
): WorkerOptions {
  if (options.env === SHARE_ENV) {
    throw new ConfigError('workerOptionsFor: env: SHARE_ENV cannot carry the account and configuration to the worker; leave env unset or pass an object');
  }
  const base = (options.env as NodeJS.ProcessEnv | undefined) ?? process.env;
  const execArgv = options.execArgv ? withoutRegister(options.execArgv) : workerSafeExecArgv();
  return {
    ...options,
    execArgv: [...execArgv, '--require', registerPaths().cjs],
    env: registerEnvFor(account, config, base, envOptions),
  };
}
