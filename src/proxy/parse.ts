/**
 * Turns what users write into ProxyEndpoints: URLs (`socks5h://u:p@h:1080`),
 * vendor lines (`host:port`, `host:port:user:pass`), `URL` instances and
 * `{ url, … }` objects.
 *
 * The authority is parsed by hand rather than with WHATWG `new URL`, which
 * treats a raw `#`, `/` or `?` in a password as the start of a path, query or
 * fragment. Since a proxy URL has no path, query or fragment, every `@` in it
 * must belong to the credentials: the LAST `@` separates them from the host
 * (lenient like curl), so `http://user:p@ss@host:1` has password `p@ss`.
 * The price: `http://h:1/x@y` reads as user `h`, password `1/x`, host `y`
 * rather than failing on its path; a proxy URL with an `@` after a path is
 * too unlikely to be worth making raw `@`/`/` in passwords an error.
 *
 * Every message names what is wrong plus a redacted echo of the input built
 * from its structure (never from a regex over the raw text). The echo masks
 * the password and nothing else the user needs to see what is wrong: host,
 * port (an out-of-range one included) and path are shown. The one other
 * thing masked is a "port" that may be a password whose host was forgotten:
 * with no `@` in a URL (`http://user:secret`), or in a vendor line
 * (`user:secret`), text after the host's `:` is shown only if it reads as a
 * port number (1-5 digits; in a URL, optionally followed by a path).
 * Control characters (CR, LF, NUL…) in the host or the credentials are
 * refused, naming the field (ProxyEndpoint checks the credentials, so objects
 * and direct construction are covered too); in the echo they are escaped.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { ConfigError, ProxyUrlError } from '../errors.js';
import {
  controlCharacterIn,
  DEFAULT_CONNECT_TIMEOUT,
  escapeControls,
  isProxyEndpoint,
  isProxyProtocol,
  PROXY_PROTOCOLS,
  ProxyEndpoint,
  typeName,
  type ParseOptions,
  type ProxyProtocol,
  type ProxyTlsOptions,
} from './endpoint.js';

export { isProxyEndpoint, ProxyEndpoint } from './endpoint.js';
export type { ParseOptions, ProxyInfo, ProxyInput, ProxyObjectInput, ProxyProtocol, ProxyTlsOptions } from './endpoint.js';

interface Options {
  defaultProtocol: ProxyProtocol;
  connectTimeout: number;
}

/** What a string form yields; `echo` is the redacted input for messages. */
interface Parsed {
  protocol: ProxyProtocol;
  host: string;
  port: number | undefined;
  username: string | undefined;
  password: string | undefined;
  echo: string;
}

/** Internal failure carrying the redacted echo; becomes a ProxyUrlError at the API boundary. */
class Failure extends Error {
  constructor(
    message: string,
    readonly echo: string | undefined,
  ) {
    super(message);
  }
}

export function parseProxy(input: unknown, options?: ParseOptions): ProxyEndpoint {
  const opts = checkOptions(options);
  try {
    return parseInput(input, opts);
  } catch (e) {
    throw e instanceof Failure ? new ProxyUrlError(e.message, proxyContext(e)) : e;
  }
}

/**
 * One proxy per line. Blank lines and lines starting with `#` are skipped;
 * there are no trailing comments because `#` may appear in a password.
 * Each line is read like a parseProxy string (see parseString on whitespace).
 */
export function parseProxyList(text: string, options?: ParseOptions): ProxyEndpoint[] {
  const opts = checkOptions(options);
  if (typeof text !== 'string') throw new ProxyUrlError(`expected the text of a proxy list, got ${typeName(text)}`);
  const endpoints: ProxyEndpoint[] = [];
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    try {
      endpoints.push(parseInput(line, opts));
    } catch (e) {
      throw e instanceof Failure ? new ProxyUrlError(`line ${i + 1}: ${e.message}`, proxyContext(e)) : e;
    }
  }
  return endpoints;
}

/** The echo escaped: a CR/LF in the input must not split the line the error is logged on. */
function proxyContext(f: Failure): { proxy?: string } {
  return f.echo === undefined ? {} : { proxy: escapeControls(f.echo) };
}

function checkOptions(options: ParseOptions | undefined): Options {
  if (options === undefined) return { defaultProtocol: 'http', connectTimeout: DEFAULT_CONNECT_TIMEOUT };
  if (options === null || typeof options !== 'object') {
    throw new ConfigError(`parse options must be an object, got ${typeName(options)}`);
  }
  const { defaultProtocol = 'http', connectTimeout = DEFAULT_CONNECT_TIMEOUT } = options;
  if (!isProxyProtocol(defaultProtocol)) {
    throw new ConfigError(`defaultProtocol must be one of ${PROXY_PROTOCOLS.join(', ')}`);
  }
  if (typeof connectTimeout !== 'number' || !Number.isFinite(connectTimeout) || connectTimeout <= 0) {
    throw new ConfigError('connectTimeout must be a positive number of milliseconds');
  }
  return { defaultProtocol, connectTimeout };
}

function parseInput(input: unknown, opts: Options): ProxyEndpoint {
  if (isProxyEndpoint(input)) return input;
  if (typeof input === 'string') return construct(parseString(input, opts), opts.connectTimeout, {});
  if (isUrl(input)) return construct(parseString(input.href, opts), opts.connectTimeout, {});
  if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    return parseObject(input as Record<string, unknown>, opts);
  }
  throw new Failure(`expected a proxy URL string, URL, { url } object or ProxyEndpoint, got ${typeName(input)}`, undefined);
}

function isUrl(v: unknown): v is URL {
  return v instanceof URL || (Object.prototype.toString.call(v) === '[object URL]' && typeof (v as URL).href === 'string');
}

function parseObject(o: Record<string, unknown>, opts: Options): ProxyEndpoint {
  const url = o.url;
  let parsed: Parsed;
  if (typeof url === 'string') parsed = parseString(url, opts);
  else if (isUrl(url)) parsed = parseString(url.href, opts);
  else throw new Failure(`a proxy object needs a "url" string or URL, got ${typeName(url)}`, undefined);
  // Only the types are reported, never the values: any of them may be the password.
  for (const key of ['username', 'password', 'label'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') {
      throw new Failure(`proxy ${key} must be a string, got ${typeName(o[key])}`, parsed.echo);
    }
  }
  return construct(parsed, opts.connectTimeout, {
    username: o.username as string | undefined,
    password: o.password as string | undefined,
    label: o.label as string | undefined,
    tls: o.tls as ProxyTlsOptions | undefined,
    connectTimeout: o.connectTimeout as number | undefined,
  });
}

interface Overrides {
  username?: string;
  password?: string;
  label?: string;
  tls?: ProxyTlsOptions;
  connectTimeout?: number;
}

function construct(p: Parsed, defaultTimeout: number, o: Overrides): ProxyEndpoint {
  try {
    return new ProxyEndpoint({
      protocol: p.protocol,
      host: p.host,
      port: p.port,
      // Object fields override URL credentials one by one, so a URL may carry
      // the user and the object only the (secret-store) password.
      username: o.username ?? p.username,
      password: o.password ?? p.password,
      label: o.label,
      tls: o.tls,
      connectTimeout: o.connectTimeout ?? defaultTimeout,
    });
  } catch (e) {
    // The constructor's messages hold no secrets; add the redacted echo.
    throw e instanceof ProxyUrlError ? new Failure(e.message, p.echo) : e;
  }
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/**
 * Surrounding whitespace is ignored, with one exception: trailing spaces and
 * tabs of a vendor line's password are kept, since vendor fields are literal
 * and a password may end in a space. Trailing line breaks (a file read whole)
 * are always dropped.
 */
function parseString(raw: string, opts: Options): Parsed {
  const s = raw.trimStart().replace(/[\r\n]+$/, '');
  const trimmed = s.trimEnd();
  if (trimmed === '') throw new Failure('empty proxy URL', undefined);
  const m = SCHEME.exec(trimmed);
  if (m) return parseUrlForm(m[1]!.toLowerCase(), trimmed.slice(m[0].length));
  const parsed = parseVendorForm(trimmed, opts.defaultProtocol);
  if (parsed.password !== undefined) parsed.password += s.slice(trimmed.length);
  return parsed;
}

function parseUrlForm(scheme: string, rest: string): Parsed {
  const at = rest.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : rest.slice(0, at);
  let hostport = at < 0 ? rest : rest.slice(at + 1);
  const colon = userinfo === undefined ? -1 : userinfo.indexOf(':');
  const userEcho = userinfo === undefined ? '' : colon < 0 ? `${userinfo}@` : `${userinfo.slice(0, colon)}:***@`;
  const echo = `${scheme}://${userEcho}${userinfo === undefined ? echoHostPort(hostport) : hostport}`;
  const fail = (message: string): Failure => new Failure(message, echo);

  if (!isProxyProtocol(scheme)) throw fail(`unsupported proxy scheme "${scheme}"`);
  if (hostport.endsWith('/')) hostport = hostport.slice(0, -1);
  if (/[/?#]/.test(hostport)) throw fail('a proxy URL must not have a path, query or fragment');

  let host: string;
  let port: number | undefined;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) throw fail('unclosed IPv6 bracket in the proxy host');
    host = parseIPv6(hostport.slice(1, close), fail);
    const after = hostport.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw fail('unexpected characters after the IPv6 address');
    port = after === '' ? undefined : parsePort(after.slice(1), fail);
  } else {
    const c = hostport.indexOf(':');
    if (c >= 0 && hostport.indexOf(':', c + 1) >= 0 && looksLikeBareIPv6(hostport)) {
      throw fail('an IPv6 proxy host must be in brackets, e.g. [::1]:1080');
    }
    host = parseHostName(c < 0 ? hostport : hostport.slice(0, c), fail);
    port = c < 0 ? undefined : parsePort(hostport.slice(c + 1), fail);
  }

  // An empty userinfo (`http://@host`) means no credentials at all.
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined && userinfo !== '') {
    username = decodeLenient(colon < 0 ? userinfo : userinfo.slice(0, colon));
    password = colon < 0 ? undefined : decodeLenient(userinfo.slice(colon + 1));
  }
  return { protocol: scheme, host, port, username, password, echo };
}

/**
 * `host:port` or `host:port:user:pass`, split at the first three colons so
 * the password may contain `:`. Fields are literal (no percent-decoding):
 * vendors hand these lines out unencoded.
 */
function parseVendorForm(s: string, protocol: ProxyProtocol): Parsed {
  let hostField: string;
  let bracketed = false;
  let rest: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new Failure('unclosed IPv6 bracket in the proxy host', '[***');
    bracketed = true;
    hostField = s.slice(1, close);
    const after = s.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) {
      throw new Failure('unexpected characters after the IPv6 address', `[${hostField}]***`);
    }
    rest = after === '' ? undefined : after.slice(1);
  } else {
    const c = s.indexOf(':');
    hostField = c < 0 ? s : s.slice(0, c);
    rest = c < 0 ? undefined : s.slice(c + 1);
  }
  const hostEcho = bracketed ? `[${hostField}]` : hostField;
  if (rest === undefined) throw new Failure('missing port (expected host:port)', hostEcho);

  const c1 = rest.indexOf(':');
  const portField = c1 < 0 ? rest : rest.slice(0, c1);
  const creds = c1 < 0 ? undefined : rest.slice(c1 + 1);
  const c2 = creds === undefined ? -1 : creds.indexOf(':');
  const portOk = isValidPort(portField);
  // A port field that is not even a number may be a password (`user:secret`
  // has no host:port); then the fields after it are not known to be the user
  // either, so everything past the host is masked. A number is shown, valid
  // or not: `h:70000:user:***` says what is wrong.
  const portShown = looksLikePort(portField);
  const echo =
    creds === undefined
      ? `${hostEcho}:${portShown ? portField : '***'}`
      : portShown && c2 >= 0
        ? `${hostEcho}:${portField}:${creds.slice(0, c2)}:***`
        : `${hostEcho}:${portShown ? portField : '***'}:***`;
  const fail = (message: string): Failure => new Failure(message, echo);

  if (!bracketed && (hostField.includes('@') || portField.includes('@'))) {
    throw fail('credentials need a scheme (http://user:pass@host:port) or the vendor form host:port:user:pass');
  }
  if (!bracketed && (hostField === '' || !portOk) && looksLikeBareIPv6(s)) {
    throw fail('an IPv6 proxy host must be in brackets, e.g. [::1]:8080');
  }
  if (creds !== undefined && c2 < 0) throw fail('expected host:port or host:port:user:pass');
  const host = bracketed ? parseIPv6(hostField, fail) : parseHostName(hostField, fail);
  const port = portField === '' ? missingPort(fail) : parsePort(portField, fail);
  return {
    protocol,
    host,
    port,
    username: creds === undefined ? undefined : creds.slice(0, c2),
    password: creds === undefined ? undefined : creds.slice(c2 + 1),
    echo,
  };
}

function missingPort(fail: (m: string) => Failure): never {
  throw fail('missing port (expected host:port)');
}

function looksLikeBareIPv6(s: string): boolean {
  const last = s.lastIndexOf(':');
  return isIPv6(s) || (last > 0 && isIPv6(s.slice(0, last)));
}

function parseHostName(raw: string, fail: (m: string) => Failure): string {
  if (raw === '') throw fail('empty proxy host');
  rejectControls(raw, fail);
  if (/\s/.test(raw)) throw fail('spaces inside the proxy host');
  let host = raw.toLowerCase();
  if (/[^\x00-\x7f]/.test(host)) {
    host = domainToASCII(host);
    if (host === '') throw fail('invalid international proxy host name');
  }
  if (!/^[a-z0-9._-]+$/.test(host)) throw fail('invalid character in the proxy host');
  // All digits and dots is an IPv4 address to every resolver: insist it is a well-formed one.
  if (/^[\d.]+$/.test(host) && !isIPv4(host)) throw fail('malformed IPv4 address');
  return host;
}

/** Returns the canonical form (`0:0:0:0:0:0:0:1` → `::1`) without brackets. */
function parseIPv6(raw: string, fail: (m: string) => Failure): string {
  if (raw === '') throw fail('empty IPv6 address in brackets');
  rejectControls(raw, fail);
  if (/\s/.test(raw)) throw fail('spaces inside the proxy host');
  if (raw.includes('%')) throw fail('IPv6 zone identifiers are not supported in proxy hosts');
  if (!isIPv6(raw)) throw fail('malformed IPv6 address');
  // WHATWG serializes IPv6 canonically (RFC 5952), which keeps identity keys stable.
  return new URL(`http://[${raw}]/`).hostname.slice(1, -1);
}

/** CR, LF, NUL, other C0 controls (not tab: that is a space here) and DEL; credentials are checked by ProxyEndpoint. */
function rejectControls(host: string, fail: (m: string) => Failure): void {
  const at = controlCharacterIn(host);
  if (at !== undefined) throw fail(`proxy host contains a control character (${at})`);
}

function isValidPort(p: string): boolean {
  return looksLikePort(p) && Number(p) >= 1 && Number(p) <= 65535;
}

/** Digits a user would write as a port, in range or not; a password rarely is 1-5 digits. */
function looksLikePort(p: string): boolean {
  return /^\d{1,5}$/.test(p);
}

// Messages never include the rejected text: a "port" that is not one is
// often a password that lost its host (`http://user:secret`).
function parsePort(p: string, fail: (m: string) => Failure): number {
  if (p === '') throw fail('empty port after ":"');
  if (/^-\d+$/.test(p)) throw fail('port must not be negative');
  const m = /^(\d+)([\s\S]*)$/.exec(p);
  if (!m) throw fail('port is not a number');
  if (m[2] !== '') throw fail('unexpected characters after the port');
  const n = Number(m[1]);
  if (n === 0) throw fail('port 0 is not allowed');
  if (n > 65535) throw fail('port is out of range (1-65535)');
  return n;
}

/**
 * A URL with no credentials: the host and, if it reads as a port number (and
 * a path after it), the rest; anything else after the `:` may be the password
 * of `http://user:secret` and is masked.
 */
function echoHostPort(hp: string): string {
  let host: string;
  let after: string;
  if (hp.startsWith('[')) {
    const close = hp.indexOf(']');
    if (close < 0) return '[***';
    host = hp.slice(0, close + 1);
    after = hp.slice(close + 1);
  } else {
    const c = hp.indexOf(':');
    host = c < 0 ? hp : hp.slice(0, c);
    after = c < 0 ? '' : hp.slice(c);
  }
  if (after === '' || after === '/') return host + after;
  const port = after.startsWith(':') ? /^\d{1,5}(?=$|[/?#])/.exec(after.slice(1)) : null;
  return port ? host + after : `${host}:***`;
}

/**
 * Percent-decodes what is well formed and leaves the rest literal: a password
 * `50%off` given raw must not make the whole URL unusable.
 */
function decodeLenient(s: string): string {
  return s.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      // Not valid UTF-8 as a whole: decode the ASCII escapes, keep the others as written.
      return run.replace(/%([0-7][0-9a-fA-F])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
  });
}
