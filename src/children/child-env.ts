/**
 * What a Node child process (or Worker) needs to run under the same
 * configuration, in one account's scope, with no code of its own — and what
 * every other program the app spawns receives too, since which child is
 * Node cannot be told (`exec('npm run x')`, npx, shebang scripts, `sh -c`):
 *
 * - NODE_OPTIONS gains `--require <absolute path of dist/register.cjs>`
 *   (any earlier reference to the preload is replaced, so it is there once);
 * - SESSION_PROXY_CONFIG_REF points to a private file with the child's
 *   configuration (child-config.ts says which part, config-files.ts where):
 *   a pointer, no credentials. SESSION_PROXY_CONFIG_JSON is never set, and
 *   removed when inherited;
 * - SESSION_PROXY_ACCOUNT names the account; the preload enters its scope
 *   for the whole child;
 * - an inherited SESSION_PROXY_STORE (the fleet's Redis URL, maybe with its
 *   password) is removed: the store travels in the configuration file, and
 *   a Node child with a pointer reads no environment layer anyway.
 *
 * The CommonJS preload is used, not `--import`: a `--require` preload runs
 * synchronously before the main module, so its `enterWith` scope reaches the
 * app on every Node version (an `--import` preload's does not on Node 24,
 * whose AsyncLocalStorage is frame-based), and Workers started with `eval`
 * run `--require` preloads but not `--import` ones.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { state } from '../state.js';
import { ConfigError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { SessionProxyOptions } from '../options.js';
import { ACCOUNT_ENV, CONFIG_JSON_ENV } from '../config/load.js';
import { serializeConfig } from '../config/serialize.js';
import { DEFAULT_ACCOUNT } from '../routing/account-pools.js';
import { STORE_ENV } from '../store/index.js';
import { childOptions, type ChildConfigMode } from './child-config.js';
import { configFileFor } from './config-files.js';
import { CONFIG_REF_ENV } from '../config/inherited.js';

declare const __filename: string | undefined;

/** This module's file, in both builds (the CJS build has __filename; import.meta is empty there). */
function thisFile(): string | undefined {
  if (typeof __filename === 'string') return __filename;
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return undefined;
  }
}

let cached: { cjs: string; esm: string } | undefined;

/**
 * Absolute paths of the built preloads. Bundled code sits next to them in
 * dist/; from the TypeScript sources (tests), the package root's dist/ is used.
 */
export function registerPaths(): { cjs: string; esm: string } {
  if (cached) return cached;
  const here = thisFile();
  const candidates: string[] = [];
  if (here) {
    candidates.push(dirname(here));
    // src/config/x.ts → <root>/dist; dist/sub/x → dist
    for (let dir = dirname(here), i = 0; i < 4; i++, dir = dirname(dir)) {
      if (existsSync(join(dir, 'package.json')) && isThisPackage(join(dir, 'package.json'))) {
        candidates.push(join(dir, 'dist'));
        break;
      }
    }
  }
  for (const dir of candidates) {
    const cjs = join(dir, 'register.cjs');
    if (existsSync(cjs)) return (cached = { cjs, esm: join(dir, 'register.mjs') });
  }
  throw new ConfigError(`cannot find the session-proxy preload (dist/register.cjs) near ${here ?? 'this module'}; build the package (npm run build)`);
}

function isThisPackage(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'session-proxy';
  } catch {
    return false;
  }
}

/** Splits NODE_OPTIONS like Node does: whitespace-separated, `"…"` quoting with `\` escapes. */
export function splitNodeOptions(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < text.length) cur += text[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

function quoteNodeOption(arg: string): string {
  return /[\s"\\]/.test(arg) ? `"${arg.replace(/[\\"]/g, (c) => `\\${c}`)}"` : arg;
}

const PRELOAD_FLAGS = ['--require', '-r', '--import'];

/** Whether a `--require`/`--import` value names this package's preload. */
export function isRegisterSpecifier(value: string): boolean {
  if (value === 'session-proxy/register') return true;
  let file = value;
  if (value.startsWith('file:')) {
    try {
      file = fileURLToPath(value);
    } catch {
      return false;
    }
  }
  const normalized = file.replace(/\\/g, '/');
  if (/\/session-proxy\/dist\/register\.(c|m)?js$/.test(normalized)) return true;
  try {
    const { cjs, esm } = registerPaths();
    const abs = resolvePath(file);
    return abs === cjs || abs === esm;
  } catch {
    return false;
  }
}

/** Removes every preload reference to this package from an argv-style list (`--require x`, `-r x`, `--import=x`). */
export function withoutRegister(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (PRELOAD_FLAGS.includes(a) && i + 1 < args.length && isRegisterSpecifier(args[i + 1]!)) {
      i++;
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0 && PRELOAD_FLAGS.includes(a.slice(0, eq)) && isRegisterSpecifier(a.slice(eq + 1))) continue;
    out.push(a);
  }
  return out;
}

/** NODE_OPTIONS with the CommonJS preload appended once. */
export function nodeOptionsWithRegister(current: string | undefined): string {
  const preload = `--require ${quoteNodeOption(registerPaths().cjs)}`;
  if (!current || current.trim() === '') return preload;
  const tokens = splitNodeOptions(current);
  const kept = withoutRegister(tokens);
  const base = kept.length === tokens.length ? current.trim() : kept.map(quoteNodeOption).join(' ');
  return base === '' ? preload : `${base} ${preload}`;
}

export interface RegisterEnvOptions {
  /** The account's active proxy in the parent, so the child starts on the same one. */
  active?: ProxyEndpoint;
  /** `route`: only the pools of the child's route (the account's, or the default pool without one); `all`: every pool. @default 'route' */
  childConfig?: ChildConfigMode;
  /** When the built preload cannot be found (running from sources, unbuilt), return `env` unchanged instead of throwing. @default false */
  optional?: boolean;
}

/** The options of the installed manager, for callers that pass none. */
export function installedOptions(): SessionProxyOptions {
  const m = state.installed as { options?: SessionProxyOptions } | undefined;
  if (!m?.options) throw new ConfigError('no configuration to pass on: no SessionProxyManager is installed (pass the options explicitly)');
  return m.options;
}

/**
 * A copy of `env` for a Node child of `account` (undefined: unscoped) whose
 * configuration the pointer `ref` names: NODE_OPTIONS with the preload,
 * SESSION_PROXY_CONFIG_REF, SESSION_PROXY_ACCOUNT; an inherited
 * SESSION_PROXY_CONFIG_JSON removed, and SESSION_PROXY_STORE when it is
 * this process's (a caller's own value is the caller's choice). `ref`
 * undefined: no pointer (a Worker, whose configuration travels apart).
 * @throws ConfigError when the built preload cannot be found
 */
export function envWithPointer(account: string | undefined, env: NodeJS.ProcessEnv, ref: string | undefined): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  out.NODE_OPTIONS = nodeOptionsWithRegister(env.NODE_OPTIONS);
  delete out[CONFIG_JSON_ENV];
  if (out[STORE_ENV] !== undefined && out[STORE_ENV] === process.env[STORE_ENV]) delete out[STORE_ENV];
  if (ref === undefined) delete out[CONFIG_REF_ENV];
  else out[CONFIG_REF_ENV] = ref;
  if (account === undefined) delete out[ACCOUNT_ENV];
  else out[ACCOUNT_ENV] = account;
  return out;
}

/**
 * The environment for a Node child that should run `account`'s traffic (or,
 * with `account` undefined, the default route's): a copy of `env` with
 * NODE_OPTIONS, SESSION_PROXY_CONFIG_REF and SESSION_PROXY_ACCOUNT set. The
 * configuration goes to a private file (removed when this process exits),
 * never into the environment. Other variables (HTTP_PROXY…) are kept.
 *
 * @param config the configuration to carry; default: the installed manager's options
 */
export function registerEnvFor(
  account: string | undefined,
  config: SessionProxyOptions = installedOptions(),
  env: NodeJS.ProcessEnv = process.env,
  options: RegisterEnvOptions = {},
): NodeJS.ProcessEnv {
  try {
    registerPaths();
  } catch (err) {
    if (!options.optional) throw err;
    const out = { ...env };
    delete out[CONFIG_JSON_ENV];
    return out;
  }
  const pool = account ?? DEFAULT_ACCOUNT;
  const text = serializeConfig(childOptions(config, account, options.childConfig ?? 'route'), { active: (name) => (name === pool ? options.active : undefined) });
  return envWithPointer(account, env, configFileFor(text));
}

/** `file://` URL of the ESM preload, for `--import`. */
export function registerImportUrl(): string {
  return pathToFileURL(registerPaths().esm).href;
}
