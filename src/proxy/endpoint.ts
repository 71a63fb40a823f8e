/**
 * One proxy server, normalized and immutable. The password lives in a
 * `#private` field so that no generic way of looking at an object — String(),
 * JSON.stringify, util.inspect (even with showHidden), Object.keys, spread —
 * can reach it; `getPassword()` is the single, greppable door to it. The
 * private key of a client certificate (mutual TLS to an https:// proxy) is a
 * secret the same way: `tls` shows the certificate, never the key or its
 * passphrase, and `getTlsKey()` is the door to them.
 */
import { X509Certificate, createHash, createHmac, createPrivateKey, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { ProxyUrlError } from '../errors.js';

export type ProxyProtocol = 'http' | 'https' | 'socks4' | 'socks4a' | 'socks5' | 'socks5h';

export interface ProxyTlsOptions {
  /** CA(s) the https proxy's certificate is checked against. Replaces Node's roots (add `...tls.rootCertificates` to keep them). */
  ca?: string | Buffer | Array<string | Buffer>;
  rejectUnauthorized?: boolean;
  servername?: string;
  /** Client certificate (PEM, the chain may follow it) sent to an https proxy that wants one (mutual TLS). Part of the proxy's identity. */
  cert?: string | Buffer;
  /** The client certificate's private key (PEM). A secret: never printed, like a password. */
  key?: string | Buffer;
  /** Passphrase of an encrypted `key`. A secret. */
  passphrase?: string;
}

/** The secret half of a client certificate, from `ProxyEndpoint.getTlsKey()`. */
export interface ProxyTlsKey {
  readonly key: string | Buffer;
  readonly passphrase?: string;
}

export interface ProxyObjectInput {
  url: string | URL;
  label?: string;
  username?: string;
  password?: string;
  tls?: ProxyTlsOptions;
  connectTimeout?: number;
}

export type ProxyInput = string | URL | ProxyObjectInput | ProxyEndpoint;

export interface ParseOptions {
  /** Protocol for the scheme-less vendor forms `host:port` and `host:port:user:pass`. Default 'http'. */
  defaultProtocol?: ProxyProtocol;
  /** Connect timeout (ms) for endpoints that do not set their own. Default 10 000. */
  connectTimeout?: number;
}

export interface ProxyInfo {
  /** Redacted URL. */
  url: string;
  protocol: ProxyProtocol;
  host: string;
  port: number;
  label: string;
  /** A rotating gateway's session: the preset (or `template`) and the session id its credentials carry. */
  gateway?: string;
  session?: string;
}

/** A session endpoint of a rotating gateway (src/gateways/): no secrets. */
export interface EndpointGateway {
  readonly name: string;
  /** Undefined: the sessionless (rotating) form. */
  readonly session: string | undefined;
  /** Shared by every session of one gateway: its health is per gateway host. */
  readonly key: string;
  /**
   * The gateway as the fleet knows it (store/identity.ts): secret-free and
   * the same in every process configuring it (vendor, protocol, host, port,
   * base username, country, city). Unlike `key`, it does not depend on a
   * per-process salt.
   */
  readonly slot: string;
  /** The redacted URL of the sessionless form: how the fleet shows the gateway. */
  readonly slotUrl: string;
}

/** Already-normalized fields; `parseProxy` is the friendly way to get here. */
export interface ProxyEndpointInit {
  protocol: ProxyProtocol;
  /** Host name or IP literal; IPv6 brackets are tolerated and removed. */
  host: string;
  port?: number;
  username?: string;
  password?: string;
  label?: string;
  tls?: ProxyTlsOptions;
  connectTimeout?: number;
  /** Set by a gateway definition for the endpoints of its sessions. */
  gateway?: EndpointGateway;
}

export const PROXY_PROTOCOLS: readonly ProxyProtocol[] = Object.freeze([
  'http',
  'https',
  'socks4',
  'socks4a',
  'socks5',
  'socks5h',
] as const);

export const DEFAULT_CONNECT_TIMEOUT = 10_000;

const DEFAULT_PORTS: Readonly<Record<ProxyProtocol, number>> = Object.freeze({
  http: 80,
  https: 443,
  socks4: 1080,
  socks4a: 1080,
  socks5: 1080,
  socks5h: 1080,
});

export function isProxyProtocol(value: unknown): value is ProxyProtocol {
  return typeof value === 'string' && (PROXY_PROTOCOLS as readonly string[]).includes(value);
}

export function defaultPort(protocol: ProxyProtocol): number {
  return DEFAULT_PORTS[protocol];
}

/** Brackets IPv6 literals so `host:port` stays unambiguous. */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

// Symbol.for so that endpoints made by another copy of the library (the ESM
// and CJS builds, duplicate installs) are recognised too; the value is a
// shape version, so an incompatible future shape can opt out.
const kBrand = Symbol.for('session-proxy.endpoint');
const BRAND_VERSION = 1;

// The password digest in identityKey is keyed with a per-process random salt:
// equal within the process (all that pool keys need) but useless for offline
// guessing if a key ever ends up in a log. Shared through globalThis so both
// builds of the library compute the same keys.
const kSalt = Symbol.for('session-proxy.identity-salt.v1');
function identitySalt(): Buffer {
  const g = globalThis as unknown as Record<symbol, Buffer | undefined>;
  let salt = g[kSalt];
  if (!salt) {
    salt = randomBytes(32);
    Object.defineProperty(globalThis, kSalt, { value: salt, enumerable: false, configurable: true, writable: false });
  }
  return salt;
}

export function isProxyEndpoint(v: unknown): v is ProxyEndpoint {
  return (
    v !== null &&
    typeof v === 'object' &&
    (v as Record<symbol, unknown>)[kBrand] === BRAND_VERSION &&
    typeof (v as { getPassword?: unknown }).getPassword === 'function'
  );
}

export class ProxyEndpoint {
  readonly protocol: ProxyProtocol;
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly label: string;
  /**
   * Only used for https proxies (TLS to the proxy itself); kept as given
   * otherwise. Without `key` and `passphrase`: those are behind getTlsKey().
   */
  readonly tls: Omit<ProxyTlsOptions, 'key' | 'passphrase'> | undefined;
  readonly connectTimeout: number;
  /** Whether target host names are resolved by the proxy. socks4 can only carry an IPv4 address. */
  readonly remoteDns: boolean;
  /** A rotating gateway's session (src/gateways/), if this endpoint is one. */
  readonly gateway: EndpointGateway | undefined;
  readonly #password: string | undefined;
  readonly #tlsKey: ProxyTlsKey | undefined;

  constructor(init: ProxyEndpointInit) {
    if (!isProxyProtocol(init.protocol)) {
      throw new ProxyUrlError(`unsupported proxy protocol ${describe(init.protocol)}`);
    }
    this.protocol = init.protocol;
    this.host = normalizeHost(init.host);
    this.port = init.port === undefined ? DEFAULT_PORTS[init.protocol] : checkPort(init.port);
    if (init.username !== undefined && typeof init.username !== 'string') {
      throw new ProxyUrlError(`proxy username must be a string, got ${typeName(init.username)}`);
    }
    if (init.password !== undefined && typeof init.password !== 'string') {
      throw new ProxyUrlError(`proxy password must be a string, got ${typeName(init.password)}`);
    }
    checkControls('username', init.username);
    // Which character and where would tell something about the password: neither is shown.
    if (init.password !== undefined && controlCharacterIn(init.password) !== undefined) {
      throw new ProxyUrlError('proxy password contains a control character (CR, LF, NUL or another C0 control, or DEL; which and where is not shown)');
    }
    checkUnicode('username', init.username);
    checkUnicode('password', init.password);
    // A password without a username still needs a (empty) user to be sent.
    // An empty user without a password is no credentials, as `http://@host`
    // is: otherwise HTTP would send `Basic Og==` here and none from the env
    // URL a child process gets (`http://@host` again).
    this.username = init.password !== undefined ? (init.username ?? '') : init.username || undefined;
    this.#password = init.password;
    if (init.label !== undefined && typeof init.label !== 'string') {
      throw new ProxyUrlError(`proxy label must be a string, got ${typeName(init.label)}`);
    }
    checkControls('label', init.label);
    this.label = init.label || `${this.protocol}://${hostForUrl(this.host)}:${this.port}`;
    const tls = init.tls === undefined ? undefined : checkTls(init.tls, this.protocol);
    this.tls = tls?.shown;
    this.#tlsKey = tls?.key;
    this.connectTimeout = init.connectTimeout === undefined ? DEFAULT_CONNECT_TIMEOUT : checkTimeout(init.connectTimeout);
    this.remoteDns = this.protocol !== 'socks4';
    this.gateway = init.gateway === undefined ? undefined : Object.freeze({
            name: String(init.gateway.name),
            session: init.gateway.session,
            key: String(init.gateway.key),
            slot: String(init.gateway.slot),
            slotUrl: String(init.gateway.slotUrl),
          });
    Object.freeze(this);
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return isProxyEndpoint(value);
  }

  get hasPassword(): boolean {
    return this.#password !== undefined;
  }

  getPassword(): string | undefined {
    return this.#password;
  }

  /** The client certificate's private key (and passphrase), for the TLS connection to the proxy. */
  getTlsKey(): ProxyTlsKey | undefined {
    return this.#tlsKey;
  }

  get authority(): string {
    return `${hostForUrl(this.host)}:${this.port}`;
  }

  /** Redacted: the password, if any, is always shown as `***`. */
  get url(): string {
    return `${this.protocol}://${this.#userinfo('***')}${this.authority}`;
  }

  get identityKey(): string {
    // Read on every request by the pools, health and stats: computed once
    // (the endpoint is immutable; a frozen object can still set a #field).
    return (this.#identityKey ??= this.#computeIdentityKey());
  }

  #identityKey: string | undefined;

  /** What health is kept per: the gateway for its sessions (one host, one health), the identity otherwise. */
  get healthKey(): string {
    return this.gateway?.key ?? this.identityKey;
  }

  #computeIdentityKey(): string {
    const digest =
      this.#password === undefined ? null : createHmac('sha256', identitySalt()).update(this.#password).digest('hex');
    // TLS settings to an https proxy change what a pooled connection is
    // (e.g. verified or not, which client certificate it presented), so they
    // are part of its identity; the key goes with its certificate.
    const tls = this.protocol === 'https' && this.tls ? tlsDigest(this.tls) : null;
    return JSON.stringify([this.protocol, this.host, this.port, this.username ?? null, digest, tls]);
  }

  /**
   * The full URL including the password, for HTTP(S)_PROXY-style variables.
   * socks5 is written socks5h because our socks5 resolves names remotely,
   * which is what socks5h means to curl and friends.
   */
  toEnvUrl(): string {
    const scheme = this.protocol === 'socks5' ? 'socks5h' : this.protocol;
    const secret = this.#password === undefined ? undefined : encodeURIComponent(this.#password);
    return `${scheme}://${this.#userinfo(secret)}${this.authority}`;
  }

  info(): ProxyInfo {
    const info: ProxyInfo = { url: this.url, protocol: this.protocol, host: this.host, port: this.port, label: this.label };
    if (this.gateway) {
      info.gateway = this.gateway.name;
      if (this.gateway.session !== undefined) info.session = this.gateway.session;
    }
    return info;
  }

  toString(): string {
    return this.url;
  }

  toJSON(): ProxyInfo {
    return this.info();
  }

  [inspect.custom](): string {
    return `ProxyEndpoint <${this.url}>${this.gateway?.session !== undefined ? ` (${this.gateway.name} session ${this.gateway.session})` : ''}`;
  }

  #userinfo(password: string | undefined): string {
    if (this.username === undefined) return '';
    const user = encodeURIComponent(this.username);
    return this.#password === undefined ? `${user}@` : `${user}:${password}@`;
  }
}

Object.defineProperty(ProxyEndpoint.prototype, kBrand, { value: BRAND_VERSION, enumerable: false });

function normalizeHost(host: unknown): string {
  if (typeof host !== 'string') throw new ProxyUrlError(`proxy host must be a string, got ${typeName(host)}`);
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === '') throw new ProxyUrlError('empty proxy host');
  checkControls('host', h);
  if (/\s/.test(h)) throw new ProxyUrlError(`spaces inside the proxy host ${escapeControls(JSON.stringify(h))}`);
  return h;
}

/**
 * C0 controls and DEL, tab excepted: a CR/LF or NUL in a proxy's host or
 * credentials would corrupt (or split) a handshake or a log line, and is
 * almost always a line break read along with a secret. A tab frames nothing
 * (HTTP field values may hold one; Basic is base64, SOCKS length-prefixed)
 * and a vendor password may end in one.
 */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/** `\r at 3` for the first control character in `value`, or undefined. */
export function controlCharacterIn(value: string): string | undefined {
  const m = CONTROL.exec(value);
  return m ? `${escapeControls(m[0])} at ${m.index}` : undefined;
}

/** JSON-style escapes for the characters that could split a line: `\r`, `\n`, `\u0000`, … */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\x7f' ? '\\u007f' : JSON.stringify(c).slice(1, -1)));
}

/** For fields that are not secrets (host, username, label): names the character and where it is. */
function checkControls(field: 'host' | 'username' | 'label', value: string | undefined): void {
  const at = value === undefined ? undefined : controlCharacterIn(value);
  if (at !== undefined) throw new ProxyUrlError(`proxy ${field} contains a control character (${at})`);
}

/**
 * A lone UTF-16 surrogate has no UTF-8 form: the Basic credentials and the
 * SOCKS5 user/pass would carry U+FFFD instead (wrong credentials, silently),
 * and encodeURIComponent — the redacted `url`, so every message naming the
 * proxy, and toEnvUrl — throws a URIError. Refused like a control character;
 * for the password, without saying where.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function checkUnicode(field: 'username' | 'password', value: string | undefined): void {
  const m = value === undefined ? null : LONE_SURROGATE.exec(value);
  if (!m) return;
  const where = field === 'password' ? 'where is not shown' : `at ${m.index}`;
  throw new ProxyUrlError(`proxy ${field} is not well-formed Unicode (a lone UTF-16 surrogate; ${where})`);
}

function checkPort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ProxyUrlError('proxy port must be an integer from 1 to 65535');
  }
  return port;
}

function checkTimeout(ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new ProxyUrlError(
      `connectTimeout must be a positive number of milliseconds, got ${typeof ms === 'number' ? String(ms) : typeName(ms)}`,
    );
  }
  return ms;
}

function checkTls(tls: unknown, protocol: ProxyProtocol): { shown: Omit<ProxyTlsOptions, 'key' | 'passphrase'>; key: ProxyTlsKey | undefined } {
  if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) {
    throw new ProxyUrlError(`proxy tls options must be an object, got ${typeName(tls)}`);
  }
  const t = tls as ProxyTlsOptions;
  const isCa = (c: unknown): boolean => typeof c === 'string' || Buffer.isBuffer(c);
  if (t.ca !== undefined && !(isCa(t.ca) || (Array.isArray(t.ca) && t.ca.every(isCa)))) {
    throw new ProxyUrlError('proxy tls.ca must be a string, Buffer or an array of them');
  }
  if (t.rejectUnauthorized !== undefined && typeof t.rejectUnauthorized !== 'boolean') {
    throw new ProxyUrlError(`proxy tls.rejectUnauthorized must be a boolean, got ${typeName(t.rejectUnauthorized)}`);
  }
  if (t.servername !== undefined && typeof t.servername !== 'string') {
    throw new ProxyUrlError(`proxy tls.servername must be a string, got ${typeName(t.servername)}`);
  }
  // Shallow copy: later mutation of the caller's object must not change an
  // endpoint that may already key a pool. Extra keys are kept for tls.connect.
  const { key, passphrase, ...shown } = t;
  checkClientCertificate(t, protocol);
  if (Array.isArray(shown.ca)) shown.ca = Object.freeze([...shown.ca]) as Array<string | Buffer>;
  return { shown: Object.freeze(shown), key: key === undefined ? undefined : Object.freeze(passphrase === undefined ? { key } : { key, passphrase }) };
}

/**
 * A client certificate is checked when the endpoint is made, so a wrong file
 * fails at start-up rather than as a refused handshake: both halves given,
 * readable, and belonging together. Messages name the field, never its text
 * (nor OpenSSL's message, which can quote it).
 */
function checkClientCertificate(t: ProxyTlsOptions, protocol: ProxyProtocol): void {
  const pem = (v: unknown): boolean => (typeof v === 'string' && v !== '') || (Buffer.isBuffer(v) && v.length > 0);
  if (t.cert === undefined && t.key === undefined) {
    if (t.passphrase !== undefined) throw new ProxyUrlError('proxy tls.passphrase is only used with tls.key');
    return;
  }
  if (protocol !== 'https') throw new ProxyUrlError(`a client certificate (tls.cert, tls.key) is only sent to https:// proxies, not ${protocol}://`);
  if (t.cert === undefined || t.key === undefined) throw new ProxyUrlError(`proxy tls.${t.cert === undefined ? 'key needs tls.cert' : 'cert needs tls.key'} (a client certificate is the pair)`);
  if (!pem(t.cert)) throw new ProxyUrlError(`proxy tls.cert must be a PEM string or a Buffer, got ${typeName(t.cert)}`);
  if (!pem(t.key)) throw new ProxyUrlError(`proxy tls.key must be a PEM string or a Buffer, got ${typeName(t.key)}`);
  if (t.passphrase !== undefined && typeof t.passphrase !== 'string') throw new ProxyUrlError(`proxy tls.passphrase must be a string, got ${typeName(t.passphrase)}`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(t.cert);
  } catch {
    throw new ProxyUrlError('proxy tls.cert is not a readable X.509 certificate (PEM)');
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(t.passphrase === undefined ? { key: t.key } : { key: t.key, passphrase: t.passphrase });
  } catch {
    throw new ProxyUrlError(`proxy tls.key is not a readable private key (PEM)${t.passphrase === undefined ? ', or it is encrypted and needs tls.passphrase' : ', or tls.passphrase is wrong'}`);
  }
  if (!cert.checkPrivateKey(key)) throw new ProxyUrlError('proxy tls.key does not belong to tls.cert');
}

function tlsDigest(tls: Omit<ProxyTlsOptions, 'key' | 'passphrase'>): string {
  const h = createHash('sha256');
  const cas = tls.ca === undefined ? [] : Array.isArray(tls.ca) ? tls.ca : [tls.ca];
  for (const ca of cas) h.update(createHash('sha256').update(ca).digest());
  if (tls.cert !== undefined) h.update(createHash('sha256').update(tls.cert).digest());
  h.update(JSON.stringify([tls.ca === undefined, tls.rejectUnauthorized ?? null, tls.servername ?? null, tls.cert === undefined]));
  return h.digest('hex');
}

/** The kind of a value, for messages that must not echo the value itself. */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

// Only for values that cannot be secrets (protocol names).
function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return typeName(v);
}
