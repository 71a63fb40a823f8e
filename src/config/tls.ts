/**
 * TLS options in configuration: `requestTls` (for targets) and a proxy's
 * `tls` (for an https proxy itself).
 *
 * A config file (and SESSION_PROXY_CONFIG_JSON) has `ca`, `caFile`,
 * `rejectUnauthorized`, `servername` and a client certificate: `cert` /
 * `certFile`, `key` / `keyFile`, `passphrase`; `caFile` is read here and
 * joined to `ca`, `certFile` and `keyFile` are read into `cert` and `key`
 * (one or the other, not both). Code may pass what JSON cannot: Buffers, KeyObjects, a
 * `tls.SecureContext`, functions (`checkServerIdentity`) — `requestTls` takes
 * every `tls.connect` option except where the connection goes (`host`,
 * `port`, `path`, `socket`: the library decides that), a proxy's `tls` the
 * keys of ProxyTlsOptions. Values are never shown: a key or passphrase is a
 * secret like a proxy password.
 */
import { KeyObject } from 'node:crypto';
import * as tls from 'node:tls';
import { isPlainObject, readText, resolveFile } from './files.js';
import { own } from './keys.js';
import { keyPath, kindOf } from './path.js';
import { fail, unknownKey, type Checker } from './report.js';

type ValueRule = { expected: string; ok: (v: unknown) => boolean };

const isBytes = (v: unknown): boolean => Buffer.isBuffer(v) || ArrayBuffer.isView(v);
const isPem = (v: unknown): boolean => typeof v === 'string' || isBytes(v);
const listOf = (ok: (v: unknown) => boolean) => (v: unknown) => ok(v) || (Array.isArray(v) && v.every(ok));
const isPemWithPass = (field: string) => (v: unknown) =>
  isPlainObject(v) && isPem(own(v, field)) && (own(v, 'passphrase') === undefined || typeof own(v, 'passphrase') === 'string');

/** tls.createSecureContext()'s result (the class is exported at run time, not in the types), or one like it. */
const SecureContextClass = (tls as unknown as { SecureContext?: abstract new (...args: never[]) => object }).SecureContext;
const isSecureContext = (v: unknown): boolean =>
  (typeof SecureContextClass === 'function' && v instanceof SecureContextClass) || (v !== null && typeof v === 'object' && 'context' in v);

const string: ValueRule = { expected: 'a string', ok: (v) => typeof v === 'string' };
const boolean: ValueRule = { expected: 'true or false', ok: (v) => typeof v === 'boolean' };
const number: ValueRule = { expected: 'a number >= 0', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 };
const fn: ValueRule = { expected: 'a function', ok: (v) => typeof v === 'function' };
const bytes: ValueRule = { expected: 'a Buffer', ok: isBytes };
const pem: ValueRule = { expected: 'a PEM string, a Buffer or an array of them', ok: listOf(isPem) };
const version: ValueRule = { expected: 'one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3', ok: (v) => v === 'TLSv1' || v === 'TLSv1.1' || v === 'TLSv1.2' || v === 'TLSv1.3' };

/** What each `tls.connect` option may hold when given in code. */
export const TLS_VALUE_RULES: Readonly<Record<string, ValueRule>> = {
  ca: pem,
  cert: pem,
  crl: pem,
  key: { expected: 'a PEM string, a Buffer, a KeyObject, { pem, passphrase } or an array of them', ok: listOf((v) => isPem(v) || v instanceof KeyObject || isPemWithPass('pem')(v)) },
  pfx: { expected: 'a Buffer, a string, { buf, passphrase } or an array of them', ok: listOf((v) => isPem(v) || isPemWithPass('buf')(v)) },
  passphrase: string,
  rejectUnauthorized: boolean,
  servername: { expected: 'a host name string', ok: (v) => typeof v === 'string' && v !== '' },
  checkServerIdentity: fn,
  secureContext: { expected: 'a tls.SecureContext (tls.createSecureContext())', ok: isSecureContext },
  session: bytes,
  minDHSize: number,
  lookup: fn,
  timeout: number,
  pskCallback: fn,
  ALPNCallback: fn,
  allowPartialTrustChain: boolean,
  sigalgs: string,
  ciphers: string,
  clientCertEngine: string,
  dhparam: { expected: 'a PEM string or a Buffer', ok: isPem },
  ecdhCurve: string,
  honorCipherOrder: boolean,
  privateKeyEngine: string,
  privateKeyIdentifier: string,
  maxVersion: version,
  minVersion: version,
  secureOptions: number,
  secureProtocol: string,
  sessionIdContext: string,
  ticketKeys: bytes,
  sessionTimeout: number,
  enableTrace: boolean,
  requestCert: boolean,
  ALPNProtocols: { expected: 'an array of protocol names or a Buffer', ok: (v) => isBytes(v) || (Array.isArray(v) && v.every((p) => typeof p === 'string' || isBytes(p))) },
  SNICallback: fn,
};

/** `requestTls` keys accepted in code: tls.ConnectionOptions minus the connection's destination. */
export const REQUEST_TLS_KEYS: readonly string[] = Object.keys(TLS_VALUE_RULES);
/** Keys of tls.ConnectionOptions that say where to connect: the library decides that. */
export const TLS_DESTINATION_KEYS: readonly string[] = ['host', 'port', 'path', 'socket'];
/** A proxy's `tls` in code: the keys of ProxyTlsOptions. */
export const PROXY_TLS_KEYS: readonly string[] = ['ca', 'rejectUnauthorized', 'servername', 'cert', 'key', 'passphrase'];
/** Keys only the file format has: files read into `ca`, `cert`, `key`. */
export const FILE_ONLY_TLS_KEYS: readonly string[] = ['caFile', 'certFile', 'keyFile'];
/** `requestTls` and a proxy's `tls` in a config file. */
export const FILE_TLS_KEYS: readonly string[] = ['ca', 'caFile', 'rejectUnauthorized', 'servername', 'cert', 'certFile', 'key', 'keyFile', 'passphrase'];

/** TLS options as given in code: checked key by key, returned as given (Buffers, KeyObjects, functions kept). */
export function codeTls(v: unknown, path: string, keys: readonly string[], c: Checker): object {
  if (!isPlainObject(v)) throw fail(path, `expected TLS options (a plain object), got ${kindOf(v)}`, c.source);
  for (const key of Object.keys(v)) {
    const value = v[key];
    if (!keys.includes(key)) {
      const hint = TLS_DESTINATION_KEYS.includes(key)
        ? 'not a TLS option here: the library decides where a connection goes'
        : FILE_ONLY_TLS_KEYS.includes(key)
          ? `${key} is a config-file key; in code pass ${key.slice(0, -4)}: readFileSync(file)`
          : undefined;
      throw unknownKey(c, path, key, keys, hint);
    }
    if (value === undefined) continue;
    const rule = TLS_VALUE_RULES[key]!;
    if (!rule.ok(value)) throw fail(keyPath(path, key), `expected ${rule.expected}, got ${kindOf(value)}`, c.source);
  }
  return v;
}

/** `{ ca, caFile, rejectUnauthorized, servername, cert(File), key(File), passphrase }` from a file; the files are read. */
export function fileTls(v: unknown, path: string, c: Checker, baseDir: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw fail(path, `expected an object with ${FILE_TLS_KEYS.join(', ')}, got ${kindOf(v)}`, c.source);
  for (const key of Object.keys(v)) if (!FILE_TLS_KEYS.includes(key)) throw unknownKey(c, path, key, FILE_TLS_KEYS);
  const t = { ca: own(v, 'ca'), caFile: own(v, 'caFile'), rejectUnauthorized: own(v, 'rejectUnauthorized'), servername: own(v, 'servername') };
  const out: Record<string, unknown> = {};
  const cas: string[] = [];
  if (t.ca !== undefined) cas.push(...stringOrStrings(t.ca, keyPath(path, 'ca'), 'a PEM certificate string or an array of them', c.source));
  if (t.caFile !== undefined) {
    const p = keyPath(path, 'caFile');
    const files = stringOrStrings(t.caFile, p, 'a file path or an array of them', c.source);
    files.forEach((f, i) => cas.push(readText(resolveFile(f, baseDir), f, Array.isArray(t.caFile) ? keyPath(p, i) : p, c.source)));
  }
  if (cas.length) out.ca = cas.length === 1 ? cas[0] : cas;
  if (t.rejectUnauthorized !== undefined) {
    if (typeof t.rejectUnauthorized !== 'boolean') throw fail(keyPath(path, 'rejectUnauthorized'), `expected true or false, got ${kindOf(t.rejectUnauthorized)}`, c.source);
    out.rejectUnauthorized = t.rejectUnauthorized;
  }
  if (t.servername !== undefined) {
    if (typeof t.servername !== 'string' || t.servername === '') throw fail(keyPath(path, 'servername'), `expected a host name string, got ${kindOf(t.servername)}`, c.source);
    out.servername = t.servername;
  }
  // The client certificate: text or a file each; values never shown (the key is a secret).
  for (const field of ['cert', 'key'] as const) {
    const text = own(v, field);
    const file = own(v, `${field}File`);
    if (text !== undefined && file !== undefined) throw fail(keyPath(path, `${field}File`), `give ${field} or ${field}File, not both`, c.source);
    if (text !== undefined) {
      if (typeof text !== 'string' || text === '') throw fail(keyPath(path, field), `expected a PEM string, got ${text === '' ? 'an empty string' : kindOf(text)}`, c.source);
      out[field] = text;
    } else if (file !== undefined) {
      const p = keyPath(path, `${field}File`);
      if (typeof file !== 'string' || file === '') throw fail(p, `expected a file path, got ${file === '' ? 'an empty string' : kindOf(file)}`, c.source);
      out[field] = readText(resolveFile(file, baseDir), file, p, c.source);
    }
  }
  const passphrase = own(v, 'passphrase');
  if (passphrase !== undefined) {
    if (typeof passphrase !== 'string') throw fail(keyPath(path, 'passphrase'), `expected a string, got ${kindOf(passphrase)}`, c.source);
    out.passphrase = passphrase;
  }
  return out;
}

export function stringOrStrings(v: unknown, path: string, expected: string, src: string): string[] {
  if (typeof v === 'string' && v !== '') return [v];
  if (Array.isArray(v) && v.length > 0) {
    v.forEach((e, i) => {
      if (typeof e !== 'string' || e === '') throw fail(keyPath(path, i), `expected a non-empty string, got ${e === '' ? 'an empty string' : kindOf(e)}`, src);
    });
    return v as string[];
  }
  throw fail(path, `expected ${expected}, got ${v === '' ? 'an empty string' : Array.isArray(v) ? 'an empty array' : kindOf(v)}`, src);
}
