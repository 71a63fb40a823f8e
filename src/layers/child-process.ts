/**
 * Layer 5 — child processes. Env vars are process-wide and carry the default
 * proxy; a child spawned inside `withProxy(account)` gets the *account's*
 * proxy in HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (both cases) instead, unless the
 * caller set its own. Node ignores those variables, so every child also gets
 * the preload (NODE_OPTIONS) with the configuration it needs. Every exported
 * spawner is patched, because exec, execFile and fork call Node's internal
 * spawn, not the exported one.
 */
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';

const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'];

/** Where each spawner takes its options: after an optional args array, or straight after the command. */
const SPAWNERS = {
  spawn: 'args',
  spawnSync: 'args',
  execFile: 'args',
  execFileSync: 'args',
  fork: 'args',
  exec: 'direct',
  execSync: 'direct',
} as const;

type SpawnerName = keyof typeof SPAWNERS;

export interface ChildProcessDeps {
  /** The active proxy of an account. */
  readonly proxyOf: (account: string) => ProxyEndpoint;
  /** The explicit noProxy entries: inside a scope the operator's NO_PROXY does not apply, in children either. */
  readonly noProxy: readonly string[];
  /**
   * Extra variables for every child: the preload, so a Node child runs under
   * the same configuration (Node ignores *_PROXY) — in `account`'s scope when
   * spawned inside one.
   */
  readonly extraEnv?: (account: string | undefined, env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
}

export function installChildProcess(deps: ChildProcessDeps): () => void {
  const mod = childProcess as unknown as Record<SpawnerName, (...a: unknown[]) => unknown>;
  const originals = new Map<SpawnerName, (...a: unknown[]) => unknown>();
  for (const name of Object.keys(SPAWNERS) as SpawnerName[]) {
    const original = mod[name];
    originals.set(name, original);
    mod[name] = function (this: unknown, ...args: unknown[]) {
      const account = state.scopes.getStore()?.account;
      if (account !== undefined || deps.extraEnv) args = withChildEnv(args, SPAWNERS[name], account, deps);
      return original.apply(this, args);
    };
    Object.defineProperty(mod[name], 'name', { value: name });
  }
  syncBuiltinESMExports();
  return () => {
    for (const [name, fn] of originals) mod[name] = fn;
    syncBuiltinESMExports();
  };
}

function withChildEnv(args: unknown[], shape: 'args' | 'direct', account: string | undefined, deps: ChildProcessDeps): unknown[] {
  const out = [...args];
  let at = 1;
  if (shape === 'args' && (Array.isArray(out[1]) || (out[1] == null && out.length > 2))) at = 2;
  const given = out[at];
  const isOptions = given !== null && typeof given === 'object' && !Array.isArray(given);
  if (!isOptions) {
    // No options object: insert one (a callback that sat there moves one place on).
    if (given === undefined) out[at] = {};
    else out.splice(at, 0, {});
  }
  const options = { ...(out[at] as { env?: NodeJS.ProcessEnv }) };
  const base = options.env ?? process.env;
  const callerSetProxy = options.env !== undefined && PROXY_VARS.some((v) => options.env![v] !== undefined && options.env![v] !== process.env[v]);
  let env: NodeJS.ProcessEnv = { ...base };
  if (account !== undefined && !callerSetProxy) {
    const url = deps.proxyOf(account).toEnvUrl();
    for (const v of PROXY_VARS) env[v] = url;
    for (const v of ['NO_PROXY', 'no_proxy']) {
      if (deps.noProxy.length) env[v] = deps.noProxy.join(',');
      else delete env[v];
    }
  }
  // A caller who chose the child's proxy variables chose its routing: no preload over it.
  if (deps.extraEnv && !callerSetProxy) env = deps.extraEnv(account, env);
  options.env = env;
  out[at] = options;
  return out;
}
