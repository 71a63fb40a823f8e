/**
 * The configuration validator: one layer — a config file, the serialized
 * SESSION_PROXY_CONFIG_JSON, or the options given in code — into a `Layer`:
 * its values checked and normalized, its proxies collected with the key path
 * they came from (they are parsed later, once the merged `defaultProtocol` is
 * known). Every error is a ConfigError that starts with the key path and
 * says what was expected; values are never echoed (any string may hold a
 * password), except short enumerations that came from no `${VAR}`.
 *
 * Code and files go through the same checks — unknown keys with "did you
 * mean", types, values, the prototype-key rule (keys.ts). Code may also pass
 * what JSON cannot: URL objects and ProxyEndpoints as proxies, and Buffers,
 * KeyObjects, a SecureContext or functions in TLS options (tls.ts). The
 * file-only keys (`$schema`, `proxyList`, `caFile`, an account's
 * `{ proxies, proxyList }`) are not options.
 *
 * schema/config.schema.json describes the same file format, and
 * SessionProxyOptions (options.ts) the same options; tests keep the three in
 * agreement.
 */
import type { ConnectionOptions } from 'node:tls';
import { PROXY_PROTOCOLS, isProxyEndpoint, isProxyProtocol, type ProxyProtocol } from '../proxy/endpoint.js';
import { interpolate } from './interpolate.js';
import { isGatewayDefinition } from '../gateways/definition.js';
import { checkKeys, forbiddenKey, isForbiddenKey, isPlainObject, ownView, setOwn } from './keys.js';
import { resolveFile } from './files.js';
import { keyPath, kindOf } from './path.js';
import { fail, shown, unknownKey, type Checker } from './report.js';
import { PROXY_TLS_KEYS, REQUEST_TLS_KEYS, codeTls, fileTls, stringOrStrings } from './tls.js';
import { BOOLEAN_KEYS, PASS_THROUGH, checkBoolean } from './values.js';
import { checkRules, type RuleRef } from './rules.js';

/** One proxy as written, with where it was written. */
export interface ProxyRef {
  readonly input: unknown;
  readonly path: string;
}

/** A vendor list file (`proxyList`), one proxy per line. */
export interface ListRef {
  /** Absolute path. */
  readonly file: string;
  /** As written, for messages. */
  readonly shown: string;
  readonly path: string;
}

export interface PoolRef {
  readonly path: string;
  readonly items: ProxyRef[];
  readonly lists: ListRef[];
}

export interface Layer {
  /** `config file ./proxies.json`, `SESSION_PROXY_CONFIG_JSON`, `options`, `environment`. */
  readonly source: string;
  proxy?: PoolRef;
  accounts?: Map<string, PoolRef>;
  /** `secret`: a `${VAR}` went into it, so its entries are never shown. */
  noProxy?: { value: string | readonly string[]; path: string; secret?: boolean };
  rules?: Array<RuleRef<PoolRef>>;
  strict?: boolean;
  requireScope?: boolean;
  tunnelSockets?: boolean;
  env?: boolean;
  defaultProtocol?: ProxyProtocol;
  requestTls?: ConnectionOptions;
  /** Options handed to the manager as they are (checked). */
  readonly extra: Record<string, unknown>;
}

export const RESERVED_ACCOUNT = 'default';

/** The keys of SessionProxyOptions, in the order messages list them. */
export const OPTION_KEYS: readonly string[] = ['proxy', 'accounts', 'noProxy', 'rules', ...BOOLEAN_KEYS, 'defaultProtocol', 'requestTls', ...Object.keys(PASS_THROUGH)];
/** Keys only the config-file format has. */
export const FILE_ONLY_KEYS: readonly string[] = ['$schema', 'proxyList'];
/** Options only code can pass (an object with methods; no JSON form): checked by validateOptions, not in the schema. */
export const CODE_ONLY_KEYS: readonly string[] = ['sessionStore'];
export const FILE_KEYS: readonly string[] = ['$schema', 'proxy', 'proxyList', ...OPTION_KEYS.slice(1)];
/** The keys of ProxyObjectInput, and of a proxy object in a file. */
export const PROXY_OBJECT_KEYS: readonly string[] = ['url', 'username', 'password', 'label', 'connectTimeout', 'tls'];
/** An account in a file may be `{ proxies, proxyList }`. */
export const ACCOUNT_OBJECT_KEYS: readonly string[] = ['proxies', 'proxyList'];
/** A rotating gateway's keys (src/gateways/definition.ts checks their values when the pool is parsed). */
export const GATEWAY_OBJECT_KEYS: readonly string[] = ['gateway', 'template', 'country', 'city', 'session', 'lifetime', 'sessionId'];

/** What a file-only key would be written as in code. */
const IN_CODE: Readonly<Record<string, string>> = {
  $schema: '$schema is a config-file key',
  proxyList: 'proxyList is a config-file key; in code pass proxy: parseProxyList(readFileSync(file, "utf8"))',
  configFile: 'the manager reads no config file; use install(loadConfig({ configFile }))',
};

interface Ctx extends Checker {
  /** Relative `proxyList` / `caFile` paths resolve against this. */
  readonly baseDir: string;
}

export interface DocumentContext {
  readonly source: string;
  /** Replace `${VAR}` in string values (config files: yes; the serialized JSON: no). */
  readonly interpolate: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** Relative `proxyList` / `caFile` paths resolve against this. */
  readonly baseDir: string;
}

/** Parses JSON text without ever echoing it (V8 messages quote the input, which may hold passwords). */
export function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    const raw = (err as Error).message;
    // "Unexpected token 'x', "…input…" is not valid JSON": keep the part before the quote.
    let why = raw.split(', "')[0]!.replace(/\s*in JSON at position \d+.*$/s, '');
    if (why.includes('"')) why = 'syntax error';
    const pos = /position (\d+)/.exec(raw);
    let at = '';
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split('\n').length;
      const column = Number(pos[1]) - before.lastIndexOf('\n');
      at = ` at line ${line} column ${column}`;
    }
    throw fail('', `${source}: invalid JSON${at}: ${why}`);
  }
}

/** Validates a parsed config file (or the serialized JSON) into a Layer. */
export function validateDocument(doc: unknown, ctx: DocumentContext): Layer {
  const src = ctx.source;
  // Before anything copies or reads the document: a "__proto__" key must not become a prototype.
  checkKeys(doc, '', src);
  if (!isPlainObject(doc)) throw fail('', `the configuration must be a JSON object, got ${kindOf(doc)}`, src);
  const secret = new Set<string>();
  const value = ctx.interpolate ? interpolateAll(doc, '', ctx.env, secret) : doc;
  return validateLayer(value as Record<string, unknown>, { source: src, kind: 'file', secret, baseDir: ctx.baseDir }, FILE_KEYS);
}

/**
 * Validates options given in code into a Layer, with the same checks and key
 * paths as a file. `allow`: keys beyond SessionProxyOptions (loadConfig's
 * `configFile`). Keys set to `undefined` count as unset.
 */
export function validateOptions(o: unknown, source = 'options', allow: readonly string[] = []): Layer {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw fail('', `options must be an object, got ${kindOf(o)}`, source);
  checkKeys(o, '', source);
  if (!isPlainObject(o)) throw fail('', `options must be a plain object, got ${kindOf(o)}`, source);
  const store = (o as Record<string, unknown>).sessionStore;
  if (store !== undefined && !(store !== null && typeof store === 'object' && ['get', 'set', 'delete'].every((m) => typeof (store as Record<string, unknown>)[m] === 'function'))) {
    throw fail('sessionStore', `expected a SessionStore (an object with get, set and delete methods), got ${kindOf(store)}`, source);
  }
  return validateLayer(o, { source, kind: 'code', secret: new Set(), baseDir: process.cwd() }, [...OPTION_KEYS, ...CODE_ONLY_KEYS, ...allow]);
}

function validateLayer(raw: Record<string, unknown>, c: Ctx, known: readonly string[]): Layer {
  const src = c.source;
  const d = ownView(raw);
  const listed = known.filter((k) => k !== '$schema');
  for (const key of Object.keys(d)) {
    if (!known.includes(key)) throw unknownKey(c, '', key, listed, c.kind === 'code' ? IN_CODE[key] : undefined);
    if (d[key] === undefined) delete d[key];
  }
  const layer: Layer = { source: src, extra: {} };
  if (d.$schema !== undefined && typeof d.$schema !== 'string') throw fail('$schema', `expected a string, got ${kindOf(d.$schema)}`, src);

  if (d.defaultProtocol !== undefined) {
    const v = d.defaultProtocol;
    if (!isProxyProtocol(v)) throw fail('defaultProtocol', `expected one of ${PROXY_PROTOCOLS.join(', ')}, got ${shown(c, v, 'defaultProtocol')}`, src);
    layer.defaultProtocol = v;
  }
  for (const key of BOOLEAN_KEYS) if (d[key] !== undefined) layer[key] = checkBoolean(d[key], key, c) as boolean;
  if (d.noProxy !== undefined) {
    const secret = [...c.secret].some((p) => p === 'noProxy' || p.startsWith('noProxy['));
    layer.noProxy = { value: checkNoProxy(d.noProxy, 'noProxy', src), path: 'noProxy', secret };
  }
  if (d.rules !== undefined) {
    layer.rules = checkRules(d.rules, c, (spec, path) => {
      const pool: PoolRef = { path, items: [], lists: [] };
      addProxies(spec, path, pool, c);
      return pool;
    });
  }
  if (d.requestTls !== undefined) {
    layer.requestTls = (c.kind === 'file' ? fileTls(d.requestTls, 'requestTls', c, c.baseDir) : codeTls(d.requestTls, 'requestTls', REQUEST_TLS_KEYS, c)) as ConnectionOptions;
  }
  for (const [key, rule] of Object.entries(PASS_THROUGH)) {
    if (d[key] === undefined) continue;
    layer.extra[key] = rule(d[key], key, c);
  }
  for (const key of CODE_ONLY_KEYS) if (c.kind === 'code' && d[key] !== undefined) layer.extra[key] = d[key];

  if (d.proxy !== undefined || d.proxyList !== undefined) {
    const pool: PoolRef = { path: 'proxy', items: [], lists: [] };
    if (d.proxy !== undefined) addProxies(d.proxy, 'proxy', pool, c);
    if (d.proxyList !== undefined) pool.lists.push(...listRefs(d.proxyList, 'proxyList', c));
    layer.proxy = pool;
  }
  if (d.accounts !== undefined) {
    if (!isPlainObject(d.accounts)) throw fail('accounts', `expected an object mapping account names to proxies, got ${kindOf(d.accounts)}`, src);
    layer.accounts = new Map();
    for (const [name, spec] of Object.entries(d.accounts)) {
      const path = keyPath('accounts', name);
      checkAccountName(name, path, c);
      layer.accounts.set(name, account(spec, path, c));
    }
  }
  return layer;
}

function checkAccountName(name: string, path: string, c: Checker): void {
  if (name === '') throw fail(path, 'account names must be non-empty', c.source);
  if (isForbiddenKey(name)) throw forbiddenKey(path, name, c.source);
  if (name === RESERVED_ACCOUNT) {
    const use = c.kind === 'code' ? 'option `proxy`' : 'use the top-level "proxy" key';
    throw fail(path, `the account name "${RESERVED_ACCOUNT}" is reserved for the default pool (${use})`, c.source);
  }
}

export function checkNoProxy(v: unknown, path: string, src: string): string | string[] {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    v.forEach((e, i) => {
      if (typeof e !== 'string') throw fail(keyPath(path, i), `expected a host name, domain, IP or CIDR string, got ${kindOf(e)}`, src);
    });
    return v as string[];
  }
  throw fail(path, `expected a comma-separated string or an array of strings, got ${kindOf(v)}`, src);
}

/** An account's value: a proxy, an array of proxies, or (in a file) `{ proxies, proxyList }`. */
function account(spec: unknown, path: string, c: Ctx): PoolRef {
  const pool: PoolRef = { path, items: [], lists: [] };
  if (c.kind === 'file' && isPlainObject(spec) && !Object.prototype.hasOwnProperty.call(spec, 'url')) {
    const a = ownView(spec);
    for (const key of Object.keys(a)) {
      if (!ACCOUNT_OBJECT_KEYS.includes(key)) {
        throw unknownKey(c, path, key, ACCOUNT_OBJECT_KEYS, 'an account is a proxy, an array of proxies, or { "proxies": …, "proxyList": "file" }; a proxy object needs "url"');
      }
    }
    if (a.proxies === undefined && a.proxyList === undefined) {
      throw fail(path, 'expected "proxies" and/or "proxyList" in the account object (or a "url" for a single proxy object)', c.source);
    }
    if (a.proxies !== undefined) addProxies(a.proxies, keyPath(path, 'proxies'), pool, c);
    if (a.proxyList !== undefined) pool.lists.push(...listRefs(a.proxyList, keyPath(path, 'proxyList'), c));
    return pool;
  }
  addProxies(spec, path, pool, c);
  return pool;
}

/** A proxy or a non-empty array of proxies. */
function addProxies(spec: unknown, path: string, pool: PoolRef, c: Ctx): void {
  if (Array.isArray(spec)) {
    if (spec.length === 0) throw fail(path, 'expected at least one proxy, got an empty array', c.source);
    spec.forEach((entry, i) => pool.items.push(proxyEntry(entry, keyPath(path, i), c)));
    return;
  }
  pool.items.push(proxyEntry(spec, path, c));
}

const PROXY_EXPECTED = {
  file: 'a proxy URL string (scheme://user:pass@host:port, host:port or host:port:user:pass) or an object with "url"',
  code: 'a proxy URL string (scheme://user:pass@host:port, host:port or host:port:user:pass), a URL, a { url } object or a ProxyEndpoint',
};

const isUrl = (v: unknown): boolean => v instanceof URL || Object.prototype.toString.call(v) === '[object URL]';

function proxyEntry(entry: unknown, path: string, c: Ctx): ProxyRef {
  if (typeof entry === 'string') {
    if (entry.trim() === '') throw fail(path, `expected ${PROXY_EXPECTED[c.kind]}, got an empty string`, c.source);
    return { input: entry, path };
  }
  if (c.kind === 'code' && (isUrl(entry) || isProxyEndpoint(entry) || isGatewayDefinition(entry))) return { input: entry, path };
  if (!isPlainObject(entry)) throw fail(path, `expected ${PROXY_EXPECTED[c.kind]}, got ${kindOf(entry)}`, c.source);
  const e = ownView(entry);
  const known = [...PROXY_OBJECT_KEYS, ...GATEWAY_OBJECT_KEYS];
  for (const key of Object.keys(e)) {
    if (!known.includes(key)) {
      const account = c.kind === 'code' && /^accounts[.[]/.test(path) ? '; in code an account is a proxy or an array of proxies' : '';
      throw unknownKey(c, path, key, known, `a proxy object has ${PROXY_OBJECT_KEYS.join(', ')}; a gateway also ${GATEWAY_OBJECT_KEYS.join(', ')}${account}`);
    }
  }
  const url = e.url;
  if (!(typeof url === 'string' && url.trim() !== '') && !(c.kind === 'code' && isUrl(url))) {
    const got = url === undefined ? 'nothing' : typeof url === 'string' ? 'an empty string' : kindOf(url);
    throw fail(keyPath(path, 'url'), `expected a proxy URL string${c.kind === 'code' ? ' or URL' : ''}, got ${got} (a proxy object needs "url")`, c.source);
  }
  for (const key of ['username', 'password', 'label'] as const) {
    if (e[key] !== undefined && typeof e[key] !== 'string') throw fail(keyPath(path, key), `expected a string, got ${kindOf(e[key])}`, c.source);
  }
  const out: Record<string, unknown> = { url };
  for (const key of ['username', 'password', 'label'] as const) if (e[key] !== undefined) out[key] = e[key];
  if (e.connectTimeout !== undefined) {
    const t = e.connectTimeout;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw fail(keyPath(path, 'connectTimeout'), `expected a positive number of milliseconds, got ${kindOf(t)}`, c.source);
    out.connectTimeout = t;
  }
  if (e.tls !== undefined) {
    const at = keyPath(path, 'tls');
    out.tls = c.kind === 'file' ? fileTls(e.tls, at, c, c.baseDir) : codeTls(e.tls, at, PROXY_TLS_KEYS, c);
  }
  for (const key of GATEWAY_OBJECT_KEYS) if (e[key] !== undefined) out[key] = e[key];
  return { input: out, path };
}

function listRefs(v: unknown, path: string, c: Ctx): ListRef[] {
  const files = stringOrStrings(v, path, 'a file path (one proxy per line) or an array of them', c.source);
  return files.map((f, i) => ({ file: resolveFile(f, c.baseDir), shown: f, path: Array.isArray(v) ? keyPath(path, i) : path }));
}

/** Interpolates every string value of a JSON document; records the paths that used a variable. */
function interpolateAll(v: unknown, path: string, env: NodeJS.ProcessEnv, secret: Set<string>): unknown {
  if (typeof v === 'string') {
    const r = interpolate(v, env, path || '(root)');
    if (r.substituted) secret.add(path);
    return r.value;
  }
  if (Array.isArray(v)) return v.map((e, i) => interpolateAll(e, keyPath(path, i), env, secret));
  if (isPlainObject(v)) {
    // Own keys in, own properties out: `out[k] = …` would let a "__proto__" key set the prototype.
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) setOwn(out, k, interpolateAll(v[k], keyPath(path, k), env, secret));
    return out;
  }
  return v;
}
