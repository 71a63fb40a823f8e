/**
 * loadConfig: SessionProxyOptions from code, a config file and the
 * environment, the earlier overriding the later:
 *
 *   1. options given in code;
 *   2. the config file (`options.configFile`, else SESSION_PROXY_CONFIG),
 *      with `${ENV_VAR}` interpolation and `proxyList` vendor files;
 *   3. the environment: SESSION_PROXY_URL, GLOBAL_AGENT_HTTPS_PROXY,
 *      GLOBAL_AGENT_HTTP_PROXY, https_proxy/HTTPS_PROXY, http_proxy/HTTP_PROXY,
 *      all_proxy/ALL_PROXY (first set wins) for the default proxy, and
 *      GLOBAL_AGENT_NO_PROXY (→ noProxy, loopback kept), SESSION_PROXY_STORE
 *      (→ store, the fleet's Redis URL). The operator's
 *      NO_PROXY is not copied: the manager applies it outside scopes only.
 *
 * A process started by the library (see children/) gets the parent's
 * resolved configuration by reference: SESSION_PROXY_CONFIG_REF names a
 * private file (a Worker gets the text itself, through worker environment
 * data). SESSION_PROXY_CONFIG_JSON, the configuration itself, is still read
 * when set by hand. Either replaces layers 2 and 3 (the parent already
 * merged them).
 *
 * Merging is per key; `accounts` merge per account name (a name defined in
 * code replaces the file's pool of that name). Every value is validated and
 * every proxy parsed here, so a bad configuration fails with a ConfigError
 * naming the key path before anything is installed.
 */
import { dirname } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError, ProxyUrlError } from '../errors.js';
import { parseProxyList } from '../proxy/parse.js';
import { parsePoolEntry, type PoolEntry } from '../gateways/entry.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher, readableNoProxyEntries } from '../proxy/no-proxy.js';
import { PROXY_PROTOCOLS, escapeControls, type ProxyEndpoint, type ProxyProtocol } from '../proxy/endpoint.js';
import type { SessionProxyOptions } from '../options.js';
import { parseJsonText, validateDocument, validateOptions, type Layer, type PoolRef } from './document.js';
import { readText, resolveFile } from './files.js';
import { setOwn } from './keys.js';
import { kindOf } from './path.js';
import { fail } from './report.js';
import { BOOLEAN_KEYS, PASS_THROUGH } from './values.js';
import { CONFIG_REF_ENV, readConfigRef } from './inherited.js';
import { resolveRules } from './rules.js';

export interface LoadConfigOptions extends SessionProxyOptions {
  /** A JSON config file (relative paths resolve against the working directory). Overrides SESSION_PROXY_CONFIG. */
  configFile?: string;
}

/** Environment variables read for the default proxy, first set (non-empty) wins. */
export const PROXY_ENV_VARS: readonly string[] = [
  'SESSION_PROXY_URL',
  'GLOBAL_AGENT_HTTPS_PROXY',
  'GLOBAL_AGENT_HTTP_PROXY',
  'https_proxy',
  'HTTPS_PROXY',
  'http_proxy',
  'HTTP_PROXY',
  'all_proxy',
  'ALL_PROXY',
];

export const CONFIG_FILE_ENV = 'SESSION_PROXY_CONFIG';
export const CONFIG_JSON_ENV = 'SESSION_PROXY_CONFIG_JSON';
export const ACCOUNT_ENV = 'SESSION_PROXY_ACCOUNT';
export { CONFIG_REF_ENV };

export interface ResolvedConfig {
  readonly options: SessionProxyOptions;
  /** Where the default proxy came from (`options`, `config file …`, an env var name), if there is one. */
  readonly proxySource: string | undefined;
  /** The config file read, absolute, if any. */
  readonly file: string | undefined;
  /** Whether a parent's configuration was used (SESSION_PROXY_CONFIG_REF, a Worker's, or SESSION_PROXY_CONFIG_JSON). */
  readonly fromParent: boolean;
}

/** The configured options, validated; see the module comment for precedence. @throws ConfigError */
export function loadConfig(options: LoadConfigOptions = {}, env: NodeJS.ProcessEnv = process.env): SessionProxyOptions {
  return resolveConfig(options, env).options;
}

/**
 * loadConfig plus where things came from (for the CLI and the preload's
 * messages). `inherited`: the configuration text a Worker was handed (the
 * preload passes it). @throws ConfigError, also when SESSION_PROXY_CONFIG_REF
 * is set and cannot be followed
 */
export function resolveConfig(options: LoadConfigOptions = {}, env: NodeJS.ProcessEnv = process.env, inherited?: string): ResolvedConfig {
  const layers: Layer[] = [validateOptions(options, 'options', ['configFile'])];
  const explicitFile = options.configFile;
  const ref = env[CONFIG_REF_ENV];
  const parent =
    inherited !== undefined
      ? { text: inherited, source: 'the configuration handed to this Worker' }
      : ref !== undefined && ref !== ''
        ? { text: readConfigRef(ref), source: `${CONFIG_REF_ENV} (${ref})` }
        : env[CONFIG_JSON_ENV]
          ? { text: env[CONFIG_JSON_ENV], source: CONFIG_JSON_ENV }
          : undefined;
  const fromParent = parent !== undefined;
  let file: string | undefined;
  const fileRef = explicitFile ?? (fromParent ? undefined : env[CONFIG_FILE_ENV] || undefined);
  if (fileRef !== undefined) {
    if (typeof fileRef !== 'string' || fileRef === '') throw fail('configFile', `expected a file path, got ${kindOf(fileRef)}`, 'options');
    file = resolveFile(fileRef, process.cwd());
    const via = explicitFile !== undefined ? '' : ` (from ${CONFIG_FILE_ENV})`;
    const source = `config file ${fileRef}${via}`;
    const text = readText(file, fileRef, '', source);
    const doc = parseJsonText(text, source);
    layers.push(validateDocument(doc, { source, interpolate: true, env, baseDir: dirname(file) }));
  }
  if (parent) {
    const doc = parseJsonText(parent.text, parent.source);
    layers.push(validateDocument(doc, { source: parent.source, interpolate: false, env, baseDir: process.cwd() }));
  } else {
    layers.push(envLayer(env));
  }
  return merge(layers, file, fromParent);
}

function merge(layers: Layer[], file: string | undefined, fromParent: boolean): ResolvedConfig {
  const first = <K extends keyof Layer>(key: K): { value: NonNullable<Layer[K]>; layer: Layer } | undefined => {
    for (const layer of layers) if (layer[key] !== undefined) return { value: layer[key] as NonNullable<Layer[K]>, layer };
    return undefined;
  };
  const out: SessionProxyOptions & Record<string, unknown> = {};
  const defaultProtocol = first('defaultProtocol')?.value;
  const parseOptions = defaultProtocol === undefined ? undefined : { defaultProtocol };
  if (defaultProtocol !== undefined) out.defaultProtocol = defaultProtocol;

  const proxy = first('proxy');
  if (proxy) out.proxy = parsePool(proxy.value, proxy.layer.source, parseOptions);

  const accounts = new Map<string, { ref: PoolRef; source: string }>();
  for (const layer of [...layers].reverse()) for (const [name, ref] of layer.accounts ?? []) accounts.set(name, { ref, source: layer.source });
  if (accounts.size) {
    out.accounts = {};
    for (const [name, { ref, source }] of accounts) setOwn(out.accounts, name, parsePool(ref, source, parseOptions));
  }

  const noProxy = first('noProxy');
  if (noProxy) {
    try {
      new NoProxyMatcher(noProxy.value.value);
    } catch (err) {
      throw fail(noProxy.value.path, noProxy.value.secret ? withoutEntry(noProxy.value.value) : (err as Error).message, noProxy.layer.source);
    }
    out.noProxy = noProxy.value.value;
  }
  const rules = first('rules');
  if (rules) out.rules = resolveRules(rules.value, (ref) => parsePool(ref, rules.layer.source, parseOptions));
  for (const key of BOOLEAN_KEYS) {
    const v = first(key);
    if (v) out[key] = v.value as boolean;
  }
  const tls = first('requestTls');
  if (tls) out.requestTls = tls.value as ConnectionOptions;
  for (const layer of [...layers].reverse()) Object.assign(out, layer.extra);
  return { options: out, proxySource: proxy ? (proxy.layer.source === 'environment' ? proxy.value.path : proxy.layer.source) : undefined, file, fromParent };
}

/**
 * The NO_PROXY error for a value that used a `${VAR}`, which is never shown:
 * what is wrong with its first bad entry, not the entry.
 */
function withoutEntry(value: string | readonly string[]): string {
  const hidden = 'invalid NO_PROXY entry (not shown: the value came from an environment variable)';
  for (const item of typeof value === 'string' ? [value] : value) {
    for (const token of item.split(/[\s,]+/)) {
      if (token === '') continue;
      try {
        new NoProxyMatcher(token);
      } catch (err) {
        const message = (err as Error).message;
        const prefix = `invalid NO_PROXY entry "${escapeControls(token)}": `;
        return message.startsWith(prefix) ? `${hidden}: ${message.slice(prefix.length)}` : hidden;
      }
    }
  }
  return hidden;
}

const PROXY_HINT = `expected scheme://[user:pass@]host:port with scheme ${PROXY_PROTOCOLS.join(', ')}, or a vendor line host:port[:user:pass]`;

function parsePool(ref: PoolRef, source: string, parseOptions: { defaultProtocol: ProxyProtocol } | undefined): PoolEntry[] {
  const out: PoolEntry[] = [];
  for (const item of ref.items) {
    try {
      out.push(parsePoolEntry(item.input, { ...parseOptions, path: item.path }));
    } catch (err) {
      if (err instanceof ProxyUrlError) throw new ConfigError(`${item.path}: ${err.message}; ${PROXY_HINT} (in ${source})`, { cause: err });
      // A gateway's checks name the key path already.
      if (err instanceof ConfigError && !err.message.includes(' (in ')) throw new ConfigError(`${err.message} (in ${source})`, { cause: err });
      throw err;
    }
  }
  for (const list of ref.lists) {
    const text = readText(list.file, list.shown, list.path, source);
    let parsed: ProxyEndpoint[];
    try {
      parsed = parseProxyList(text, parseOptions);
    } catch (err) {
      if (err instanceof ProxyUrlError) throw new ConfigError(`${list.path}: ${list.shown} ${err.message}; ${PROXY_HINT} (in ${source})`, { cause: err });
      throw err;
    }
    if (parsed.length === 0) throw fail(list.path, `${list.shown}: no proxies in the file (expected one per line: a URL, host:port or host:port:user:pass; # starts a comment line)`, source);
    out.push(...parsed);
  }
  if (out.length === 0) throw fail(ref.path, 'expected at least one proxy', source);
  return out;
}

/** The default proxy from the standard variables, and GLOBAL_AGENT_NO_PROXY. */
function envLayer(env: NodeJS.ProcessEnv): Layer {
  const src = 'environment';
  const layer: Layer = { source: src, extra: {} };
  for (const name of PROXY_ENV_VARS) {
    const value = env[name];
    if (value === undefined || value.trim() === '') continue;
    layer.proxy = { path: name, items: [{ input: value, path: name }], lists: [] };
    break;
  }
  // The operator's NO_PROXY is applied by the manager itself, outside scopes
  // only (unreadable entries skipped with a warning): nothing to do here.
  // GLOBAL_AGENT_NO_PROXY becomes noProxy, read as leniently.
  // The fleet store (SESSION_PROXY_STORE): a URL, checked like the option.
  const store = env.SESSION_PROXY_STORE;
  if (store !== undefined && store.trim() !== '') layer.extra.store = PASS_THROUGH.store!(store.trim(), 'SESSION_PROXY_STORE', { source: src, kind: 'file', secret: new Set(['SESSION_PROXY_STORE']) });
  const ga = env.GLOBAL_AGENT_NO_PROXY;
  if (ga !== undefined && ga.trim() !== '') {
    const usable = readableNoProxyEntries(ga, 'GLOBAL_AGENT_NO_PROXY');
    layer.noProxy = { value: [...LOOPBACK_NO_PROXY, ...usable], path: 'GLOBAL_AGENT_NO_PROXY' };
  }
  return layer;
}

/**
 * Checks options given in code as loadConfig would (the manager's
 * constructor calls it): key paths, types, values, proxies parsed, noProxy
 * compiled; nothing is read from a file or the environment.
 * @throws ConfigError
 */
export function checkOptions(options: unknown, source = 'options'): void {
  merge([validateOptions(options, source)], undefined, false);
}

/** Whether a configuration sets any proxy at all (the preload installs nothing otherwise). */
export function hasProxies(options: SessionProxyOptions): boolean {
  return options.proxy !== undefined || Object.keys(options.accounts ?? {}).length > 0;
}
