/**
 * What `session-proxy/register` does, as a function (the entry module only
 * calls it). Runs once per thread, whichever build loads it first: the ESM
 * and CJS preloads may both be on a command line (a fork inherits execArgv
 * and NODE_OPTIONS gains the CJS one).
 *
 * Fail closed: a process handed a configuration by its parent (a pointer in
 * SESSION_PROXY_CONFIG_REF, a Worker's environment data) that cannot use it
 * — the file is gone because the parent exited, it is corrupt, not private,
 * or names an account it lacks — never runs unrouted. It installs a manager
 * that refuses every connection (LeakBlockedError naming the pointer and
 * why; loopback included), says so in one line on stderr, and runs the app:
 * a program that needs no network (a build, `npm --version`) still works.
 * Its Node descendants inherit the same pointer and refuse too.
 */
import { isMainThread } from 'node:worker_threads';
import type { SessionProxyOptions } from './options.js';
import { state } from './state.js';
import { install } from './global.js';
import { ConfigError, SessionProxyError } from './errors.js';
import { enableDebugLoggingFromEnv } from './debug.js';
import { ACCOUNT_ENV, CONFIG_FILE_ENV, hasProxies, resolveConfig, type ResolvedConfig } from './config/load.js';
import { kInstalledBy } from './manager.js';
import { splitNodeOptions } from './children/child-env.js';
import { CONFIG_REF_ENV, UNAVAILABLE, takeWorkerConfig } from './config/inherited.js';
import { REFUSAL, type Refusal } from './routing/router.js';

const kRegistered = Symbol.for('session-proxy.register.v1');

export type PreloadResult =
  | { status: 'installed'; account: string | undefined; accounts: string[] }
  | { status: 'refused'; reason: string }
  | { status: 'skipped'; reason: string };

export interface PreloadOptions {
  /** Which build runs: an ESM (`--import`) preload cannot scope the main module on frame-based AsyncLocalStorage. */
  format: 'esm' | 'cjs';
  env?: NodeJS.ProcessEnv;
  /** Where the one-line warning goes. @default stderr */
  warn?: (line: string) => void;
}

/**
 * Installs the process's manager from configuration and, with
 * SESSION_PROXY_ACCOUNT, enters that account's scope for the rest of the
 * thread. @throws ConfigError (and the errors of install) — the entry module
 * turns them into a one-line message and exit code 1.
 */
export function runPreload(options: PreloadOptions): PreloadResult {
  const env = options.env ?? process.env;
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  const g = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (g[kRegistered]) return { status: 'skipped', reason: 'the preload already ran in this thread' };
  Object.defineProperty(globalThis, kRegistered, { value: true, enumerable: false, configurable: true, writable: true });

  enableDebugLoggingFromEnv(env);
  const account = env[ACCOUNT_ENV] || undefined;
  const handed = takeWorkerConfig();
  const ref = env[CONFIG_REF_ENV] || undefined;
  if (handed === undefined && ref === undefined) return setUp(resolveConfig({}, env), env, account, options, warn);
  try {
    return setUp(resolveConfig({}, env, handed), env, account, options, warn);
  } catch (err) {
    if (state.installed) throw err;
    const message = err instanceof SessionProxyError ? err.message : String(err);
    const why = ref !== undefined && !message.includes(CONFIG_REF_ENV) ? `${message} (in the configuration ${CONFIG_REF_ENV}=${ref})` : message;
    warn(`session-proxy/register: ${why}; every connection of this process is refused (fail closed)`);
    const refusal: Refusal = {
      reason: `this process's configuration could not be used, so none of its connections may leave: ${why}`,
      ref: ref ?? `${UNAVAILABLE} the configuration handed to its parent Worker could not be used`,
    };
    install({ noProxy: [], strict: true, requireScope: true, env: false, [REFUSAL]: refusal } as SessionProxyOptions);
    return { status: 'refused', reason: why };
  }
}

function setUp(resolved: ResolvedConfig, env: NodeJS.ProcessEnv, account: string | undefined, options: PreloadOptions, warn: (line: string) => void): PreloadResult {
  // A parent's configuration without pools still sets this process's policy (requireScope, strict): it is installed.
  if (!hasProxies(resolved.options) && !resolved.fromParent) {
    if (account !== undefined) throw new ConfigError(`${ACCOUNT_ENV}: account "${account}" is not configured (no proxies are)`);
    warn(`session-proxy: no proxy configured (set ${CONFIG_FILE_ENV}=proxies.json, SESSION_PROXY_URL or HTTPS_PROXY); nothing installed, traffic goes direct`);
    return { status: 'skipped', reason: 'no proxy configured' };
  }
  if (account !== undefined) {
    const known = account === 'default' ? resolved.options.proxy !== undefined : Object.prototype.hasOwnProperty.call(resolved.options.accounts ?? {}, account);
    if (!known) {
      const names = [...(resolved.options.proxy !== undefined ? ['default'] : []), ...Object.keys(resolved.options.accounts ?? {})].map((n) => `"${n}"`).join(', ');
      throw new ConfigError(`${ACCOUNT_ENV}: unknown account "${account}" (configured: ${names})`);
    }
    if (options.format === 'esm' && frameBasedContext(env)) {
      throw new ConfigError(
        `${ACCOUNT_ENV} needs the CommonJS preload on this Node version: an --import preload cannot put the main module in a scope (AsyncLocalStorage is frame-based); run node -r session-proxy/register, or NODE_OPTIONS="--require session-proxy/register"`,
      );
    }
  }
  if (state.installed) return { status: 'skipped', reason: 'a manager is already installed' };
  // A child that runs wholly as one account keeps the env its parent gave it
  // (that account's proxy, for its own children and env-reading tools); the
  // env layer would overwrite it with the default proxy.
  const manager = install(account !== undefined ? { ...resolved.options, env: false } : resolved.options);
  Object.defineProperty(manager, kInstalledBy, { value: describePreload(options.format, env, resolved) });
  if (account !== undefined) state.scopes.enterWith({ account });
  return { status: 'installed', account, accounts: manager.accountNames() };
}

/** "the session-proxy/register preload (node --import session-proxy/register, configured from …)", for the app's install() error. */
function describePreload(format: 'esm' | 'cjs', env: NodeJS.ProcessEnv, resolved: ResolvedConfig): string {
  const mentioned = (args: readonly string[]): boolean => args.some((a) => a.includes('register'));
  const how = resolved.fromParent
    ? 'passed on by the parent process in NODE_OPTIONS'
    : mentioned(process.execArgv)
      ? `node ${format === 'esm' ? '--import' : '-r'} session-proxy/register`
      : mentioned(splitNodeOptions(env.NODE_OPTIONS ?? ''))
        ? 'loaded from NODE_OPTIONS'
        : undefined;
  const from = resolved.fromParent ? "the parent's configuration" : resolved.file !== undefined ? `config file ${resolved.file}` : resolved.proxySource;
  const detail = [how, from === undefined ? undefined : `configured from ${from}`].filter((p) => p !== undefined).join(', ');
  return `the session-proxy/register preload${detail ? ` (${detail})` : ''}`;
}

/** Whether AsyncLocalStorage runs on AsyncContextFrame (default from Node 24). */
function frameBasedContext(env: NodeJS.ProcessEnv): boolean {
  const flags = [...process.execArgv, ...splitNodeOptions(env.NODE_OPTIONS ?? '')];
  if (flags.includes('--no-async-context-frame')) return false;
  if (flags.includes('--experimental-async-context-frame')) return true;
  return Number(process.versions.node.split('.')[0]) >= 24;
}

/** The entry modules' wrapper: a failure is one line on stderr and exit code 1 (a Worker gets the error). */
export function preloadEntry(format: 'esm' | 'cjs'): void {
  try {
    runPreload({ format });
  } catch (err) {
    if (!isMainThread) throw err;
    const message = err instanceof SessionProxyError ? `${err.name}: ${err.message}` : String((err as Error)?.stack ?? err);
    process.stderr.write(`session-proxy/register: ${message}\n`);
    process.exit(1);
  }
}
