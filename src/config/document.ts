/**
 * Validation of one configuration layer — a config file, the serialized
 * SESSION_PROXY_CONFIG_JSON, or the options given in code — into a `Layer`:
 * its values checked and normalized, its proxies collected with the key path
 * they came from (they are parsed later, once the merged `defaultProtocol` is
 * known). Every error is a ConfigError that starts with the key path and
 * says what was expected; values are never echoed (any string may hold a
 * password), except short enumerations that came from no `${VAR}`.
 *
 * schema/config.schema.json describes the same file format; a test keeps the
 * two in agreement.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from '../errors.js';
import { PROXY_PROTOCOLS, isProxyProtocol, type ProxyProtocol } from '../proxy/endpoint.js';
import { interpolate } from './interpolate.js';
import { keyPath, kindOf } from './path.js';

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
  noProxy?: { value: string | readonly string[]; path: string };
  strict?: boolean;
  requireScope?: boolean;
  tunnelSockets?: boolean;
  env?: boolean;
  defaultProtocol?: ProxyProtocol;
  requestTls?: ConnectionOptions;
  /** Options handed to the manager untouched (basic types checked). */
  readonly extra: Record<string, unknown>;
}

export const RESERVED_ACCOUNT = 'default';

export const BOOLEAN_KEYS = ['strict', 'requireScope', 'tunnelSockets', 'env'] as const;

/**
 * Options owned by the manager that the config layer passes through with a
 * basic type check. `expected` is what the message says; `ok` the check.
 */
export const PASS_THROUGH: Readonly<Record<string, { expected: string; ok: (v: unknown) => boolean }>> = {
  strategy: { expected: 'a string (a rotation strategy, e.g. "round-robin")', ok: (v) => typeof v === 'string' && v !== '' },
  balance: { expected: 'a string ("sticky" or "per-connection")', ok: (v) => typeof v === 'string' && v !== '' },
  exclusive: { expected: 'true or false', ok: (v) => typeof v === 'boolean' },
  failover: { expected: 'true or false', ok: (v) => typeof v === 'boolean' },
  health: { expected: 'an object', ok: isPlainObject },
  healthCheck: { expected: 'an object (e.g. { "interval": 30000 })', ok: isPlainObject },
  egressEndpoints: {
    expected: 'a non-empty array of URL strings',
    ok: (v) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s !== ''),
  },
  verifyOnStart: { expected: 'true or false', ok: (v) => typeof v === 'boolean' },
  verifyOnRotate: { expected: 'true or false', ok: (v) => typeof v === 'boolean' },
  verifyEvery: { expected: 'a positive number of milliseconds', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 },
  onMismatch: { expected: 'a string ("error" or "quarantine")', ok: (v) => typeof v === 'string' && v !== '' },
  idleTimeout: { expected: 'a number of milliseconds >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  drainTimeout: { expected: 'a number of milliseconds >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 },
  watchEgress: { expected: 'an object (e.g. { "interval": 60000, "onChange": "quarantine" })', ok: isPlainObject },
};

const FILE_KEYS = [
  '$schema',
  'proxy',
  'proxyList',
  'accounts',
  'noProxy',
  ...BOOLEAN_KEYS,
  'defaultProtocol',
  'requestTls',
  ...Object.keys(PASS_THROUGH),
];

const PROXY_OBJECT_KEYS = ['url', 'username', 'password', 'label', 'connectTimeout', 'tls'];
/** A rotating gateway's keys (src/gateways/definition.ts checks their values when the pool is parsed). */
const GATEWAY_OBJECT_KEYS = ['gateway', 'template', 'country', 'city', 'session', 'lifetime', 'sessionId'];
const TLS_KEYS = ['ca', 'caFile', 'rejectUnauthorized', 'servername'];
const ACCOUNT_OBJECT_KEYS = ['proxies', 'proxyList'];

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The error every check throws: `path: what (expected …) (in source)`. */
export function fail(path: string, message: string, source?: string): ConfigError {
  const where = path === '' ? '' : `${path}: `;
  return new ConfigError(`${where}${message}${source ? ` (in ${source})` : ''}`);
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
    throw new ConfigError(`${source}: invalid JSON${at}: ${why}`);
  }
}

/** Validates a parsed config file (or the serialized JSON) into a Layer. */
export function validateDocument(doc: unknown, ctx: DocumentContext): Layer {
  const src = ctx.source;
  if (!isPlainObject(doc)) throw fail('', `the configuration must be a JSON object, got ${kindOf(doc)}`, src);
  const secret = new Set<string>();
  const value = ctx.interpolate ? interpolateAll(doc, '', ctx.env, secret) : doc;
  const d = value as Record<string, unknown>;
  const layer: Layer = { source: src, extra: {} };

  for (const key of Object.keys(d)) {
    if (!FILE_KEYS.includes(key)) throw fail(keyPath('', key), `unknown key${suggest(key, FILE_KEYS)} (expected one of ${FILE_KEYS.filter((k) => k !== '$schema').join(', ')})`, src);
  }
  if (d.$schema !== undefined && typeof d.$schema !== 'string') throw fail('$schema', `expected a string, got ${kindOf(d.$schema)}`, src);

  if (d.defaultProtocol !== undefined) {
    const v = d.defaultProtocol;
    if (!isProxyProtocol(v)) {
      const got = typeof v === 'string' && !secret.has('defaultProtocol') && v.length <= 20 ? JSON.stringify(v) : kindOf(v);
      throw fail('defaultProtocol', `expected one of ${PROXY_PROTOCOLS.join(', ')}, got ${got}`, src);
    }
    layer.defaultProtocol = v;
  }
  for (const key of BOOLEAN_KEYS) {
    if (d[key] === undefined) continue;
    if (typeof d[key] !== 'boolean') throw fail(key, `expected true or false, got ${kindOf(d[key])}`, src);
    layer[key] = d[key] as boolean;
  }
  if (d.noProxy !== undefined) layer.noProxy = { value: checkNoProxy(d.noProxy, 'noProxy', src), path: 'noProxy' };
  if (d.requestTls !== undefined) layer.requestTls = fileTls(d.requestTls, 'requestTls', ctx) as ConnectionOptions;
  checkPassThrough(d, layer, src);

  if (d.proxy !== undefined || d.proxyList !== undefined) {
    const pool: PoolRef = { path: 'proxy', items: [], lists: [] };
    if (d.proxy !== undefined) filePool(d.proxy, 'proxy', pool, ctx);
    if (d.proxyList !== undefined) pool.lists.push(...listRefs(d.proxyList, 'proxyList', ctx));
    layer.proxy = pool;
  }
  if (d.accounts !== undefined) {
    if (!isPlainObject(d.accounts)) throw fail('accounts', `expected an object mapping account names to proxies, got ${kindOf(d.accounts)}`, src);
    layer.accounts = new Map();
    for (const [name, spec] of Object.entries(d.accounts)) {
      const path = keyPath('accounts', name);
      checkAccountName(name, path, src);
      layer.accounts.set(name, fileAccount(spec, path, ctx));
    }
  }
  return layer;
}

function checkAccountName(name: string, path: string, src: string): void {
  if (name === '') throw fail(path, 'account names must be non-empty', src);
  if (name === RESERVED_ACCOUNT) throw fail(path, `the account name "${RESERVED_ACCOUNT}" is reserved for the default pool (use the top-level "proxy" key)`, src);
}

function checkPassThrough(d: Record<string, unknown>, layer: Layer, src: string): void {
  for (const [key, rule] of Object.entries(PASS_THROUGH)) {
    if (d[key] === undefined) continue;
    if (!rule.ok(d[key])) throw fail(key, `expected ${rule.expected}, got ${kindOf(d[key])}`, src);
    layer.extra[key] = d[key];
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

/** An account's value: a proxy, an array of proxies, or `{ proxies, proxyList }`. */
function fileAccount(spec: unknown, path: string, ctx: DocumentContext): PoolRef {
  const pool: PoolRef = { path, items: [], lists: [] };
  if (isPlainObject(spec) && !('url' in spec)) {
    for (const key of Object.keys(spec)) {
      if (!ACCOUNT_OBJECT_KEYS.includes(key)) {
        throw fail(keyPath(path, key), `unknown key${suggest(key, ACCOUNT_OBJECT_KEYS)} (an account is a proxy, an array of proxies, or { "proxies": …, "proxyList": "file" }; a proxy object needs "url")`, ctx.source);
      }
    }
    if (spec.proxies === undefined && spec.proxyList === undefined) {
      throw fail(path, 'expected "proxies" and/or "proxyList" in the account object (or a "url" for a single proxy object)', ctx.source);
    }
    if (spec.proxies !== undefined) filePool(spec.proxies, keyPath(path, 'proxies'), pool, ctx);
    if (spec.proxyList !== undefined) pool.lists.push(...listRefs(spec.proxyList, keyPath(path, 'proxyList'), ctx));
    return pool;
  }
  filePool(spec, path, pool, ctx);
  return pool;
}

/** A proxy or a non-empty array of proxies. */
function filePool(spec: unknown, path: string, pool: PoolRef, ctx: DocumentContext): void {
  if (Array.isArray(spec)) {
    if (spec.length === 0) throw fail(path, 'expected at least one proxy, got an empty array', ctx.source);
    spec.forEach((entry, i) => pool.items.push(fileProxy(entry, keyPath(path, i), ctx)));
    return;
  }
  pool.items.push(fileProxy(spec, path, ctx));
}

const PROXY_EXPECTED = 'a proxy URL string (scheme://user:pass@host:port, host:port or host:port:user:pass) or an object with "url"';

function fileProxy(entry: unknown, path: string, ctx: DocumentContext): ProxyRef {
  if (typeof entry === 'string') {
    if (entry.trim() === '') throw fail(path, `expected ${PROXY_EXPECTED}, got an empty string`, ctx.source);
    return { input: entry, path };
  }
  if (!isPlainObject(entry)) throw fail(path, `expected ${PROXY_EXPECTED}, got ${kindOf(entry)}`, ctx.source);
  const known = [...PROXY_OBJECT_KEYS, ...GATEWAY_OBJECT_KEYS];
  for (const key of Object.keys(entry)) {
    if (!known.includes(key)) throw fail(keyPath(path, key), `unknown key${suggest(key, known)} (a proxy object has ${PROXY_OBJECT_KEYS.join(', ')}; a gateway also ${GATEWAY_OBJECT_KEYS.join(', ')})`, ctx.source);
  }
  if (typeof entry.url !== 'string' || entry.url.trim() === '') {
    const got = entry.url === undefined ? 'nothing' : typeof entry.url === 'string' ? 'an empty string' : kindOf(entry.url);
    throw fail(keyPath(path, 'url'), `expected a proxy URL string, got ${got} (a proxy object needs "url")`, ctx.source);
  }
  for (const key of ['username', 'password', 'label'] as const) {
    if (entry[key] !== undefined && typeof entry[key] !== 'string') throw fail(keyPath(path, key), `expected a string, got ${kindOf(entry[key])}`, ctx.source);
  }
  const out: Record<string, unknown> = { url: entry.url };
  for (const key of ['username', 'password', 'label'] as const) if (entry[key] !== undefined) out[key] = entry[key];
  if (entry.connectTimeout !== undefined) {
    const t = entry.connectTimeout;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw fail(keyPath(path, 'connectTimeout'), `expected a positive number of milliseconds, got ${kindOf(t)}`, ctx.source);
    out.connectTimeout = t;
  }
  if (entry.tls !== undefined) out.tls = fileTls(entry.tls, keyPath(path, 'tls'), ctx);
  for (const key of GATEWAY_OBJECT_KEYS) if (entry[key] !== undefined) out[key] = entry[key];
  return { input: out, path };
}

/** `{ ca, caFile, rejectUnauthorized, servername }`; caFile is read and joined to ca. */
function fileTls(v: unknown, path: string, ctx: DocumentContext): Record<string, unknown> {
  if (!isPlainObject(v)) throw fail(path, `expected an object with ${TLS_KEYS.join(', ')}, got ${kindOf(v)}`, ctx.source);
  for (const key of Object.keys(v)) {
    if (!TLS_KEYS.includes(key)) throw fail(keyPath(path, key), `unknown key${suggest(key, TLS_KEYS)} (expected one of ${TLS_KEYS.join(', ')})`, ctx.source);
  }
  const out: Record<string, unknown> = {};
  const cas: string[] = [];
  if (v.ca !== undefined) cas.push(...stringOrStrings(v.ca, keyPath(path, 'ca'), 'a PEM certificate string or an array of them', ctx.source));
  if (v.caFile !== undefined) {
    const p = keyPath(path, 'caFile');
    const files = stringOrStrings(v.caFile, p, 'a file path or an array of them', ctx.source);
    files.forEach((f, i) => cas.push(readText(resolveFile(f, ctx.baseDir), f, Array.isArray(v.caFile) ? keyPath(p, i) : p, ctx.source)));
  }
  if (cas.length) out.ca = cas.length === 1 ? cas[0] : cas;
  if (v.rejectUnauthorized !== undefined) {
    if (typeof v.rejectUnauthorized !== 'boolean') throw fail(keyPath(path, 'rejectUnauthorized'), `expected true or false, got ${kindOf(v.rejectUnauthorized)}`, ctx.source);
    out.rejectUnauthorized = v.rejectUnauthorized;
  }
  if (v.servername !== undefined) {
    if (typeof v.servername !== 'string' || v.servername === '') throw fail(keyPath(path, 'servername'), `expected a host name string, got ${kindOf(v.servername)}`, ctx.source);
    out.servername = v.servername;
  }
  return out;
}

function stringOrStrings(v: unknown, path: string, expected: string, src: string): string[] {
  if (typeof v === 'string' && v !== '') return [v];
  if (Array.isArray(v) && v.length > 0) {
    v.forEach((e, i) => {
      if (typeof e !== 'string' || e === '') throw fail(keyPath(path, i), `expected a non-empty string, got ${e === '' ? 'an empty string' : kindOf(e)}`, src);
    });
    return v as string[];
  }
  throw fail(path, `expected ${expected}, got ${v === '' ? 'an empty string' : Array.isArray(v) ? 'an empty array' : kindOf(v)}`, src);
}

function listRefs(v: unknown, path: string, ctx: DocumentContext): ListRef[] {
  const files = stringOrStrings(v, path, 'a file path (one proxy per line) or an array of them', ctx.source);
  return files.map((f, i) => ({ file: resolveFile(f, ctx.baseDir), shown: f, path: Array.isArray(v) ? keyPath(path, i) : path }));
}

export function resolveFile(file: string, baseDir: string): string {
  return isAbsolute(file) ? file : resolvePath(baseDir, file);
}

export function readText(file: string, shown: string, path: string, src: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `cannot read it (${code ?? 'error'})`;
    throw fail(path, `${shown}: ${why}`, src);
  }
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
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(v)) out[k] = interpolateAll(e, keyPath(path, k), env, secret);
    return out;
  }
  return v;
}

/** ` (did you mean "strict"?)` for a near miss, else ''. */
export function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
