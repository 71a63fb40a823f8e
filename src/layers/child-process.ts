/**
 * Layer 5 — child processes. Env vars are process-wide and carry the default
 * proxy; a child spawned inside `withProxy(account)` gets the *account's*
 * proxy in HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (both cases, and in
 * SESSION_PROXY_URL / GLOBAL_AGENT_HTTP(S)_PROXY when the parent has them)
 * instead, unless the caller set its own. Node ignores those variables, so
 * every child also gets the preload (NODE_OPTIONS) and a pointer to the
 * configuration it needs (`extraEnv`); no other route's password is in any
 * child's environment. Every exported spawner is patched, because exec,
 * execFile and fork call Node's internal spawn, not the exported one.
 *
 * `cluster.fork()` workers are the app itself: they get the whole
 * configuration (kind `cluster`). They are recognised by NODE_UNIQUE_ID in
 * the environment cluster hands to `fork`, and `cluster.fork` is wrapped
 * too, because cluster keeps the `fork` it found when it was first loaded
 * (an app that imports node:cluster before install()).
 */
import childProcess from 'node:child_process';
import cluster from 'node:cluster';
import { syncBuiltinESMExports } from 'node:module';
import { state } from '../state.js';
import { CONFIG_JSON_ENV } from '../config/load.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';

const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'];
/** Variables that name the default proxy to this library and to global-agent: in a scope, the account's. */
const NAMED_PROXY_VARS = ['SESSION_PROXY_URL', 'GLOBAL_AGENT_HTTPS_PROXY', 'GLOBAL_AGENT_HTTP_PROXY'];

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

/** A child process, or a cluster worker (the app itself). */
export type ChildKind = 'child' | 'cluster';

export interface ChildProcessDeps {
  /** The active proxy of an account. */
  readonly proxyOf: (account: string) => ProxyEndpoint;
  /** The explicit noProxy entries: inside a scope the operator's NO_PROXY does not apply, in children either. */
  readonly noProxy: readonly string[];
  /**
   * Extra variables for every child: the preload and the pointer to its
   * configuration, so a Node child runs under the same routing (Node ignores
   * *_PROXY) — in `account`'s scope when spawned inside one.
   */
  readonly extraEnv?: (account: string | undefined, env: NodeJS.ProcessEnv, kind: ChildKind) => NodeJS.ProcessEnv;
}

export function installChildProcess(deps: ChildProcessDeps): () => void {
  const mod = childProcess as unknown as Record<SpawnerName, (...a: unknown[]) => unknown>;
  const originals = new Map<SpawnerName, (...a: unknown[]) => unknown>();
  for (const name of Object.keys(SPAWNERS) as SpawnerName[]) {
    const original = mod[name];
    originals.set(name, original);
    mod[name] = function (this: unknown, ...args: unknown[]) {
      const account = state.scopes.getStore()?.account;
      return original.apply(this, withChildEnv(name, args, SPAWNERS[name], account, deps));
    };
    Object.defineProperty(mod[name], 'name', { value: name });
  }
  const restoreCluster = cluster.isPrimary ? wrapClusterFork(deps) : () => undefined;
  syncBuiltinESMExports();
  return () => {
    for (const [name, fn] of originals) mod[name] = fn;
    restoreCluster();
    syncBuiltinESMExports();
  };
}

function withChildEnv(name: SpawnerName, args: unknown[], shape: 'args' | 'direct', account: string | undefined, deps: ChildProcessDeps): unknown[] {
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
  const kind: ChildKind = name === 'fork' && options.env?.NODE_UNIQUE_ID !== undefined ? 'cluster' : 'child';
  options.env = childEnv(options.env, account, deps, kind);
  out[at] = options;
  return out;
}

/** The environment of a child spawned with `given` (undefined: inherit process.env) in `account`'s scope. */
function childEnv(given: NodeJS.ProcessEnv | undefined, account: string | undefined, deps: ChildProcessDeps, kind: ChildKind): NodeJS.ProcessEnv {
  const base = given ?? process.env;
  const callerSetProxy = callerChoseProxy(given);
  let env: NodeJS.ProcessEnv = { ...base };
  // Configuration inherited from an earlier parent holds every password: it never travels on.
  if (env[CONFIG_JSON_ENV] !== undefined && env[CONFIG_JSON_ENV] === process.env[CONFIG_JSON_ENV]) delete env[CONFIG_JSON_ENV];
  if (account !== undefined && !callerSetProxy) withRouteProxy(env, deps.proxyOf(account), deps.noProxy);
  // A caller who chose the child's proxy variables chose its routing: no preload over it.
  if (deps.extraEnv && !callerSetProxy) env = deps.extraEnv(account, env, kind);
  return env;
}

/** Whether an `env` given for a child sets proxy variables of its own (not the ones inherited from process.env). */
export function callerChoseProxy(given: NodeJS.ProcessEnv | undefined): boolean {
  return given !== undefined && PROXY_VARS.some((v) => given[v] !== undefined && given[v] !== process.env[v]);
}

/** Puts an account's proxy in `env`'s proxy variables, and the explicit noProxy in NO_PROXY (the operator's does not apply in a scope). */
export function withRouteProxy(env: NodeJS.ProcessEnv, proxy: ProxyEndpoint, noProxy: readonly string[]): NodeJS.ProcessEnv {
  const url = proxy.toEnvUrl();
  for (const v of PROXY_VARS) env[v] = url;
  for (const v of NAMED_PROXY_VARS) if (env[v] !== undefined) env[v] = url;
  for (const v of ['NO_PROXY', 'no_proxy']) {
    if (noProxy.length) env[v] = noProxy.join(',');
    else delete env[v];
  }
  return env;
}

/** `cluster.fork(env)` merges `env` over process.env: hand it the worker's whole environment, with what it must not inherit unset. */
function wrapClusterFork(deps: ChildProcessDeps): () => void {
  const c = cluster as unknown as { fork: (env?: NodeJS.ProcessEnv) => unknown };
  const original = c.fork;
  c.fork = function (this: unknown, env?: NodeJS.ProcessEnv) {
    const full = childEnv({ ...process.env, ...env }, state.scopes.getStore()?.account, deps, 'cluster');
    for (const key of Object.keys(process.env)) if (!(key in full)) full[key] = undefined;
    return original.call(this, full);
  };
  Object.defineProperty(c.fork, 'name', { value: 'fork' });
  return () => {
    c.fork = original;
  };
}
