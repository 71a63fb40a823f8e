import { createHash } from 'node:crypto';
import { format, inspect } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, ProxyUrlError } from '../../src/errors.js';
import { isProxyEndpoint, parseProxy, parseProxyList, ProxyEndpoint, type ParseOptions } from '../../src/proxy/parse.js';

// Distinctive enough that a hit in any output can only be a leak.
const SECRET = 'Zq9xK-S3CR3T-wv7';

interface Good {
  input: unknown;
  options?: ParseOptions;
  protocol: string;
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** Redacted URL. */
  url: string;
}

function name(input: unknown): string {
  if (typeof input === 'string') return JSON.stringify(input);
  if (input instanceof URL) return `URL(${input.href})`;
  return inspect(input, { breakLength: Infinity });
}

const schemes: Good[] = [
  // http
  { input: 'http://proxy.example.com:3128', protocol: 'http', host: 'proxy.example.com', port: 3128, url: 'http://proxy.example.com:3128' },
  { input: 'http://proxy.example.com', protocol: 'http', host: 'proxy.example.com', port: 80, url: 'http://proxy.example.com:80' },
  { input: 'http://proxy.example.com/', protocol: 'http', host: 'proxy.example.com', port: 80, url: 'http://proxy.example.com:80' },
  { input: 'HTTP://Proxy.EXAMPLE.com:8080/', protocol: 'http', host: 'proxy.example.com', port: 8080, url: 'http://proxy.example.com:8080' },
  { input: 'http://proxy:80', protocol: 'http', host: 'proxy', port: 80, url: 'http://proxy:80' },
  { input: 'http://10.0.0.1:8080', protocol: 'http', host: '10.0.0.1', port: 8080, url: 'http://10.0.0.1:8080' },
  { input: 'http://[::1]:3128', protocol: 'http', host: '::1', port: 3128, url: 'http://[::1]:3128' },
  { input: 'http://[2001:DB8:0:0:0:0:0:1]', protocol: 'http', host: '2001:db8::1', port: 80, url: 'http://[2001:db8::1]:80' },
  { input: 'http://alice:pw@proxy:1', protocol: 'http', host: 'proxy', port: 1, username: 'alice', password: 'pw', url: 'http://alice:***@proxy:1' },
  { input: '  http://proxy:1\n', protocol: 'http', host: 'proxy', port: 1, url: 'http://proxy:1' },
  // https
  { input: 'https://secure.example.com', protocol: 'https', host: 'secure.example.com', port: 443, url: 'https://secure.example.com:443' },
  { input: 'https://secure.example.com:8443', protocol: 'https', host: 'secure.example.com', port: 8443, url: 'https://secure.example.com:8443' },
  { input: 'HTTPS://u:p@[FD00::5]:443/', protocol: 'https', host: 'fd00::5', port: 443, username: 'u', password: 'p', url: 'https://u:***@[fd00::5]:443' },
  { input: 'https://192.168.0.1', protocol: 'https', host: '192.168.0.1', port: 443, url: 'https://192.168.0.1:443' },
  // socks4
  { input: 'socks4://10.1.1.1', protocol: 'socks4', host: '10.1.1.1', port: 1080, url: 'socks4://10.1.1.1:1080' },
  { input: 'socks4://user@10.1.1.1:9050', protocol: 'socks4', host: '10.1.1.1', port: 9050, username: 'user', url: 'socks4://user@10.1.1.1:9050' },
  { input: 'SOCKS4://Gateway.local:1081', protocol: 'socks4', host: 'gateway.local', port: 1081, url: 'socks4://gateway.local:1081' },
  // socks4a
  { input: 'socks4a://tor.local:9050', protocol: 'socks4a', host: 'tor.local', port: 9050, url: 'socks4a://tor.local:9050' },
  { input: 'socks4a://[::1]', protocol: 'socks4a', host: '::1', port: 1080, url: 'socks4a://[::1]:1080' },
  { input: 'socks4a://ident@1.2.3.4/', protocol: 'socks4a', host: '1.2.3.4', port: 1080, username: 'ident', url: 'socks4a://ident@1.2.3.4:1080' },
  // socks5
  { input: 'socks5://127.0.0.1:1080', protocol: 'socks5', host: '127.0.0.1', port: 1080, url: 'socks5://127.0.0.1:1080' },
  { input: 'socks5://bob:hunter2@127.0.0.1', protocol: 'socks5', host: '127.0.0.1', port: 1080, username: 'bob', password: 'hunter2', url: 'socks5://bob:***@127.0.0.1:1080' },
  { input: 'socks5://[::ffff:127.0.0.1]:1080', protocol: 'socks5', host: '::ffff:7f00:1', port: 1080, url: 'socks5://[::ffff:7f00:1]:1080' },
  // socks5h
  { input: `socks5h://bob:${SECRET}@127.0.0.1:1080`, protocol: 'socks5h', host: '127.0.0.1', port: 1080, username: 'bob', password: SECRET, url: 'socks5h://bob:***@127.0.0.1:1080' },
  { input: 'socks5h://proxy.internal', protocol: 'socks5h', host: 'proxy.internal', port: 1080, url: 'socks5h://proxy.internal:1080' },
  { input: 'Socks5H://[0:0:0:0:0:0:0:1]:9999/', protocol: 'socks5h', host: '::1', port: 9999, url: 'socks5h://[::1]:9999' },
  // international host names become punycode
  { input: 'http://bücher.de:8080', protocol: 'http', host: 'xn--bcher-kva.de', port: 8080, url: 'http://xn--bcher-kva.de:8080' },
];

const vendor: Good[] = [
  { input: 'proxy.example.com:8080', protocol: 'http', host: 'proxy.example.com', port: 8080, url: 'http://proxy.example.com:8080' },
  { input: '10.0.0.2:3128', protocol: 'http', host: '10.0.0.2', port: 3128, url: 'http://10.0.0.2:3128' },
  { input: '[::1]:8080', protocol: 'http', host: '::1', port: 8080, url: 'http://[::1]:8080' },
  { input: '[::1]:8080:user:pass', protocol: 'http', host: '::1', port: 8080, username: 'user', password: 'pass', url: 'http://user:***@[::1]:8080' },
  { input: 'gate.vendor.io:7000:cust-123:pw', protocol: 'http', host: 'gate.vendor.io', port: 7000, username: 'cust-123', password: 'pw', url: 'http://cust-123:***@gate.vendor.io:7000' },
  { input: 'gate.vendor.io:7000:cust:p:w:x', protocol: 'http', host: 'gate.vendor.io', port: 7000, username: 'cust', password: 'p:w:x', url: 'http://cust:***@gate.vendor.io:7000' },
  { input: 'Gate.Vendor.IO:7000:Cust:PW', protocol: 'http', host: 'gate.vendor.io', port: 7000, username: 'Cust', password: 'PW', url: 'http://Cust:***@gate.vendor.io:7000' },
  // Vendor fields are literal: no percent-decoding.
  { input: 'h:1:u%41:p%40', protocol: 'http', host: 'h', port: 1, username: 'u%41', password: 'p%40', url: 'http://u%2541:***@h:1' },
  { input: 'h:1::only-pass', protocol: 'http', host: 'h', port: 1, username: '', password: 'only-pass', url: 'http://:***@h:1' },
  { input: 'h:1:user:', protocol: 'http', host: 'h', port: 1, username: 'user', password: '', url: 'http://user:***@h:1' },
  { input: 'h:1080', options: { defaultProtocol: 'socks5' }, protocol: 'socks5', host: 'h', port: 1080, url: 'socks5://h:1080' },
  { input: 'h:1080:u:p', options: { defaultProtocol: 'socks5h' }, protocol: 'socks5h', host: 'h', port: 1080, username: 'u', password: 'p', url: 'socks5h://u:***@h:1080' },
  // defaultProtocol does not apply when a scheme is given.
  { input: 'https://h:1', options: { defaultProtocol: 'socks5' }, protocol: 'https', host: 'h', port: 1, url: 'https://h:1' },
];

const objects: Good[] = [
  { input: new URL('http://u:p%40ss@host:8080'), protocol: 'http', host: 'host', port: 8080, username: 'u', password: 'p@ss', url: 'http://u:***@host:8080' },
  { input: new URL('socks5h://[::1]:1080'), protocol: 'socks5h', host: '::1', port: 1080, url: 'socks5h://[::1]:1080' },
  { input: new URL('http://h:80/'), protocol: 'http', host: 'h', port: 80, url: 'http://h:80' },
  { input: { url: 'http://user:urlpw@host:1', password: SECRET }, protocol: 'http', host: 'host', port: 1, username: 'user', password: SECRET, url: 'http://user:***@host:1' },
  { input: { url: 'http://user:urlpw@host:1', username: 'other' }, protocol: 'http', host: 'host', port: 1, username: 'other', password: 'urlpw', url: 'http://other:***@host:1' },
  { input: { url: 'http://host:1', password: 'only' }, protocol: 'http', host: 'host', port: 1, username: '', password: 'only', url: 'http://:***@host:1' },
  { input: { url: new URL('socks5://a:b@h:1') }, protocol: 'socks5', host: 'h', port: 1, username: 'a', password: 'b', url: 'socks5://a:***@h:1' },
  { input: { url: 'h:8080:u:p', username: 'v' }, protocol: 'http', host: 'h', port: 8080, username: 'v', password: 'p', url: 'http://v:***@h:8080' },
];

function check(c: Good): void {
  const e = parseProxy(c.input, c.options);
  expect(e).toBeInstanceOf(ProxyEndpoint);
  expect(e.protocol).toBe(c.protocol);
  expect(e.host).toBe(c.host);
  expect(e.port).toBe(c.port);
  expect(e.username).toBe(c.username);
  expect(e.getPassword()).toBe(c.password);
  expect(e.hasPassword).toBe(c.password !== undefined);
  expect(e.url).toBe(c.url);
  expect(String(e)).toBe(c.url);
  expect(e.remoteDns).toBe(c.protocol !== 'socks4');
  expect(e.connectTimeout).toBe(10_000);
}

describe('parseProxy: schemes, hosts and ports', () => {
  it.each(schemes.map((c) => [name(c.input), c] as const))('%s', (_, c) => check(c));
});

describe('parseProxy: vendor forms', () => {
  it.each(vendor.map((c) => [name(c.input), c] as const))('%s', (_, c) => check(c));
});

describe('parseProxy: URL instances and objects', () => {
  it.each(objects.map((c) => [name(c.input), c] as const))('%s', (_, c) => check(c));

  it('returns an existing ProxyEndpoint as is', () => {
    const e = parseProxy('http://h:1');
    expect(parseProxy(e)).toBe(e);
  });

  it('takes label, tls and connectTimeout from the object', () => {
    const ca = Buffer.from('-----BEGIN CERTIFICATE-----');
    const input = { url: 'https://h', label: 'acct-1', tls: { ca: [ca], rejectUnauthorized: false, servername: 'proxy.test' }, connectTimeout: 5000 };
    const e = parseProxy(input);
    expect(e.label).toBe('acct-1');
    expect(e.tls).toEqual({ ca: [ca], rejectUnauthorized: false, servername: 'proxy.test' });
    expect(e.connectTimeout).toBe(5000);
    // A later change to the caller's object must not reach the endpoint.
    input.tls.rejectUnauthorized = true;
    input.tls.ca.push(Buffer.from('x'));
    expect(e.tls?.rejectUnauthorized).toBe(false);
    expect(e.tls?.ca).toHaveLength(1);
  });

  it('uses options.connectTimeout unless the object sets its own', () => {
    expect(parseProxy('h:1', { connectTimeout: 2500 }).connectTimeout).toBe(2500);
    expect(parseProxy({ url: 'h:1', connectTimeout: 700 }, { connectTimeout: 2500 }).connectTimeout).toBe(700);
  });

  it('labels default to the credential-free URL', () => {
    expect(parseProxy(`socks5://bob:${SECRET}@[::1]`).label).toBe('socks5://[::1]:1080');
    expect(parseProxy({ url: 'http://h:1', label: '' }).label).toBe('http://h:1');
  });
});

// Each special character, in the user name and in the password.
const SPECIALS = ['@', ':', '%', ';', '=', '/', '#', ' ', '?', '&', '+', '!', "'", '"', '\\', 'é', '🔑'];

describe('credentials round-trip exactly', () => {
  const rows = SPECIALS.map((ch) => [JSON.stringify(ch), ch] as const);

  it.each(rows)('%s percent-encoded in a URL', (_, ch) => {
    const user = `u${ch}x${ch}`;
    const pass = `${ch}p${ch}${ch}w${ch}`;
    const e = parseProxy(`http://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@h:1`);
    expect(e.username).toBe(user);
    expect(e.getPassword()).toBe(pass);
  });

  it.each(rows)('%s raw in a vendor line', (_, ch) => {
    // The user name is the third field, so it cannot hold a raw ":".
    const user = ch === ':' ? 'user' : `u${ch}x${ch}`;
    const pass = `${ch}p${ch}${ch}w${ch}`;
    const e = parseProxy(`h:1:${user}:${pass}`);
    expect(e.username).toBe(user);
    expect(e.getPassword()).toBe(pass);
  });

  it.each(rows)('%s raw in object fields', (_, ch) => {
    const user = `u${ch}x${ch}`;
    const pass = `${ch}p${ch}${ch}w${ch}`;
    const e = parseProxy({ url: 'socks5://h:1', username: user, password: pass });
    expect(e.username).toBe(user);
    expect(e.getPassword()).toBe(pass);
  });

  it.each(rows)('%s survives toEnvUrl → parseProxy', (_, ch) => {
    const user = `u${ch}x`;
    const pass = `${ch}p${ch}w`;
    const e = parseProxy({ url: 'https://h:1', username: user, password: pass });
    const again = parseProxy(e.toEnvUrl());
    expect(again.username).toBe(user);
    expect(again.getPassword()).toBe(pass);
    expect(again.identityKey).toBe(e.identityKey);
  });

  // Raw (unencoded) characters in a URL: the last "@" ends the credentials,
  // the first ":" ends the user name, and malformed escapes stay literal.
  it.each([
    ['http://user:p@ss@host:1', 'user', 'p@ss'],
    ['http://user:@@@host:1', 'user', '@@'],
    ['http://john@example.com:pw@host:1', 'john@example.com', 'pw'],
    ['http://user:a:b:c@host:1', 'user', 'a:b:c'],
    ['http://user:p#ss@host:1', 'user', 'p#ss'],
    ['http://user:p/ss@host:1', 'user', 'p/ss'],
    ['http://us/er:p?ss@host:1', 'us/er', 'p?ss'],
    ['http://user:p;s=s@host:1', 'user', 'p;s=s'],
    ['http://user:my pass@host:1', 'user', 'my pass'],
    ['http://user:100%@host:1', 'user', '100%'],
    ['http://user:50%off@host:1', 'user', '50%off'],
    ['http://user:%zz%41@host:1', 'user', '%zzA'],
    ['http://user:%ff%41@host:1', 'user', '%ffA'],
    ['http://user@host:1', 'user', undefined],
    ['http://:pw@host:1', '', 'pw'],
    ['http://user:@host:1', 'user', ''],
    ['http://@host:1', undefined, undefined],
    // Whitespace: surrounding blanks and line breaks go, except that a vendor
    // password keeps its trailing spaces (vendor fields are literal).
    ['  http://user:pw@host:1  \r\n', 'user', 'pw'],
    ['host:1:user:pw\n', 'user', 'pw'],
    ['host:1:user:pw \t\r\n', 'user', 'pw \t'],
    ['\thost:1:user: pw ', 'user', ' pw '],
    ['host:1 \n', undefined, undefined],
  ] as const)('%j', (input, user, pass) => {
    const e = parseProxy(input);
    expect(e.host).toBe('host');
    expect(e.port).toBe(1);
    expect(e.username).toBe(user);
    expect(e.getPassword()).toBe(pass);
  });
});

interface Bad {
  input: unknown;
  message: string;
  options?: ParseOptions;
}

const bad: Bad[] = [
  { input: `ftp://u:${SECRET}@h:21`, message: 'unsupported proxy scheme "ftp"' },
  { input: 'HTTPX://h', message: 'unsupported proxy scheme "httpx"' },
  { input: `ws://u:${SECRET}@h`, message: 'unsupported proxy scheme "ws"' },
  { input: 'host', message: 'missing port' },
  { input: 'host:', message: 'missing port' },
  { input: '[::1]', message: 'missing port' },
  { input: 'http://h:', message: 'empty port' },
  { input: 'http://h:0', message: 'port 0' },
  { input: `host:0:u:${SECRET}`, message: 'port 0' },
  { input: `http://u:${SECRET}@h:-5`, message: 'negative' },
  { input: 'h:-1', message: 'negative' },
  { input: 'http://h:65536', message: 'out of range' },
  { input: `h:70000:u:${SECRET}`, message: 'out of range' },
  { input: 'http://h:99999999999999999999', message: 'out of range' },
  { input: 'http://h:abc', message: 'not a number' },
  { input: 'h:abc', message: 'not a number' },
  { input: `http://u:${SECRET}@h:80x`, message: 'unexpected characters after the port' },
  { input: 'http://h:8080 extra', message: 'unexpected characters after the port' },
  { input: `http://host:8080:user:${SECRET}`, message: 'unexpected characters after the port' },
  { input: `http://u:${SECRET}@`, message: 'empty proxy host' },
  { input: 'http://:8080', message: 'empty proxy host' },
  { input: ':8080', message: 'empty proxy host' },
  { input: `:8080:u:${SECRET}`, message: 'empty proxy host' },
  { input: 'http://[::1', message: 'unclosed IPv6 bracket' },
  { input: `http://u:${SECRET}@[::1:1080`, message: 'unclosed IPv6 bracket' },
  { input: '[::1:8080', message: 'unclosed IPv6 bracket' },
  { input: 'http://[::1]x:80', message: 'unexpected characters after the IPv6 address' },
  { input: '[::1]8080', message: 'unexpected characters after the IPv6 address' },
  { input: 'http://[nothex::1]:80', message: 'malformed IPv6 address' },
  { input: 'http://[]:80', message: 'empty IPv6 address' },
  { input: 'http://[fe80::1%25eth0]:80', message: 'zone' },
  { input: 'http://::1:8080', message: 'must be in brackets' },
  { input: '::1:8080', message: 'must be in brackets' },
  { input: 'fe80::1:8080', message: 'must be in brackets' },
  { input: 'http://pro xy:8080', message: 'spaces inside the proxy host' },
  { input: `http://u:${SECRET}@pro\txy:8080`, message: 'spaces inside the proxy host' },
  { input: 'pro xy:8080', message: 'spaces inside the proxy host' },
  { input: 'http://[::1 ]:8080', message: 'spaces inside the proxy host' },
  { input: 'http://h_!:1', message: 'invalid character in the proxy host' },
  { input: 'http://h%41:1', message: 'invalid character in the proxy host' },
  { input: 'http://256.1.1.1:80', message: 'malformed IPv4 address' },
  { input: 'http://1.2.3:80', message: 'malformed IPv4 address' },
  { input: `http://u:${SECRET}@h:1/path`, message: 'path, query or fragment' },
  { input: 'http://h:1/?', message: 'path, query or fragment' },
  { input: 'http://h:1?x=1', message: 'path, query or fragment' },
  { input: 'http://h:1#frag', message: 'path, query or fragment' },
  { input: 'http://h:1//', message: 'path, query or fragment' },
  { input: `http://user:${SECRET}`, message: 'not a number' },
  { input: `user:${SECRET}@host:8080`, message: 'credentials need a scheme' },
  { input: `user@host:8080`, message: 'credentials need a scheme' },
  { input: `host:8080:${SECRET}`, message: 'expected host:port or host:port:user:pass' },
  { input: '', message: 'empty proxy URL' },
  { input: '  \t ', message: 'empty proxy URL' },
  { input: undefined, message: 'got undefined' },
  { input: null, message: 'got null' },
  { input: 8080, message: 'got number' },
  { input: true, message: 'got boolean' },
  { input: [], message: 'got array' },
  { input: Symbol('x'), message: 'got symbol' },
  { input: {}, message: 'needs a "url" string or URL, got undefined' },
  { input: { url: 5 }, message: 'got number' },
  { input: { url: null }, message: 'got null' },
  { input: { url: 'http://h:1', password: 12345 }, message: 'password must be a string, got number' },
  { input: { url: `http://u:${SECRET}@h:1`, username: 7 }, message: 'username must be a string, got number' },
  { input: { url: 'http://h:1', label: {} }, message: 'label must be a string, got object' },
  { input: { url: `http://u:${SECRET}@h:1`, connectTimeout: 0 }, message: 'connectTimeout' },
  { input: { url: 'http://h:1', connectTimeout: SECRET }, message: 'connectTimeout' },
  { input: { url: 'https://h:1', tls: 'yes' }, message: 'tls options must be an object' },
  { input: { url: 'https://h:1', tls: { ca: 5 } }, message: 'tls.ca' },
  { input: { url: 'https://h:1', tls: { rejectUnauthorized: 'no' } }, message: 'rejectUnauthorized' },
  { input: { url: `ftp://u:${SECRET}@h`, password: SECRET }, message: 'unsupported proxy scheme "ftp"' },
];

function leaks(text: string): boolean {
  return text.includes(SECRET) || text.includes(encodeURIComponent(SECRET));
}

describe('parseProxy: bad input', () => {
  it.each(bad.map((c) => [name(c.input), c] as const))('%s', (_, c) => {
    let error: unknown;
    try {
      parseProxy(c.input, c.options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyUrlError);
    const err = error as ProxyUrlError;
    expect(err.code).toBe('SP_ERR_PROXY_URL');
    expect(err.message).toContain(c.message);
    for (const text of [err.message, String(err.proxy), String(err), inspect(err), JSON.stringify(err), err.stack ?? '']) {
      expect(leaks(text), text).toBe(false);
    }
  });

  it('echoes a redacted form of the input', () => {
    const cases: Array<[string, string]> = [
      [`ftp://bob:${SECRET}@h:21`, 'ftp://bob:***@h:21'],
      // Only the password is masked: host, port (invalid ones too) and path say what is wrong.
      [`http://bob:${SECRET}@h:0`, 'http://bob:***@h:0'],
      [`http://user:${SECRET}@127.0.0.1:99999`, 'http://user:***@127.0.0.1:99999'],
      [`http://user:${SECRET}@127.0.0.1:80x`, 'http://user:***@127.0.0.1:80x'],
      [`http://user:${SECRET}@10.0.0.1:8080/path`, 'http://user:***@10.0.0.1:8080/path'],
      ['http://10.0.0.1:8080/path', 'http://10.0.0.1:8080/path'],
      ['http://10.0.0.1:99999', 'http://10.0.0.1:99999'],
      ['socks5://[::1]:70000', 'socks5://[::1]:70000'],
      [`h:0:bob:${SECRET}`, 'h:0:bob:***'],
      [`h:70000:bob:${SECRET}`, 'h:70000:bob:***'],
      ['h:99999', 'h:99999'],
      // With no "@", what follows the host's ":" may be a password whose host was forgotten.
      [`http://bob:${SECRET}`, 'http://bob:***'],
      [`http://bob:${SECRET}/x`, 'http://bob:***'],
      [`http://host:8080:user:${SECRET}`, 'http://host:***'],
      [`bob:${SECRET}`, 'bob:***'],
      [`h:1:bob`, 'h:1:***'],
      [`pro xy:8080:bob:${SECRET}`, 'pro xy:8080:bob:***'],
      ['host', 'host'],
    ];
    for (const [input, echo] of cases) {
      expect(() => parseProxy(input), input).toThrow(expect.objectContaining({ proxy: echo }));
    }
  });

  it('an out-of-range port is named in the message, the password alone masked', () => {
    expect(() => parseProxy(`http://user:${SECRET}@127.0.0.1:99999`)).toThrow('port is out of range (1-65535) (proxy http://user:***@127.0.0.1:99999)');
    expect(() => parseProxy('http://10.0.0.1:8080/path')).toThrow('a proxy URL must not have a path, query or fragment (proxy http://10.0.0.1:8080/path)');
  });

  it('rejects bad options with a ConfigError', () => {
    expect(() => parseProxy('h:1', { defaultProtocol: 'ftp' as never })).toThrow(ConfigError);
    expect(() => parseProxy('h:1', { connectTimeout: -1 })).toThrow(ConfigError);
    expect(() => parseProxy('h:1', { connectTimeout: Number.NaN })).toThrow(ConfigError);
    expect(() => parseProxy('h:1', 'http' as never)).toThrow(ConfigError);
  });
});

describe('control characters are refused at parse time, naming the field', () => {
  // CR, LF, NUL and the other C0 controls (tab excepted: a vendor password may
  // end in one, and it frames nothing) and DEL, in every parse path.
  const cases: Array<[string, () => unknown, string]> = [
    ['URL host CR/LF', () => parseProxy(`http://u:${SECRET}@pro\r\nxy:8080`), 'proxy host contains a control character (\\r at 3)'],
    ['URL host NUL', () => parseProxy(`socks5://u:${SECRET}@proxy\0:1080`), 'proxy host contains a control character (\\u0000 at 5)'],
    ['URL host BEL', () => parseProxy('http://pro\u0007xy:1'), 'proxy host contains a control character (\\u0007 at 3)'],
    ['URL IPv6 host LF', () => parseProxy(`http://u:${SECRET}@[::1\n]:8080`), 'proxy host contains a control character (\\n at 3)'],
    ['URL username CR/LF', () => parseProxy(`http://us\r\ner:${SECRET}@h:1`), 'proxy username contains a control character (\\r at 2)'],
    ['URL username %0D%0A', () => parseProxy(`http://us%0D%0Aer:${SECRET}@h:1`), 'proxy username contains a control character (\\r at 2)'],
    ['URL username %00', () => parseProxy(`socks4a://us%00er@h:1`), 'proxy username contains a control character (\\u0000 at 2)'],
    ['URL password CR/LF', () => parseProxy(`http://user:${SECRET}\r\nX@h:1`), 'proxy password contains a control character'],
    ['URL password %0D%0A', () => parseProxy(`http://user:${SECRET}%0D%0A@h:1`), 'proxy password contains a control character'],
    ['URL password %00', () => parseProxy(`socks5://user:${SECRET}%00@h:1`), 'proxy password contains a control character'],
    ['URL password %7F', () => parseProxy(`http://user:${SECRET}%7f@h:1`), 'proxy password contains a control character'],
    ['URL instance password', () => parseProxy(new URL(`http://user:${SECRET}%0A@h:1`)), 'proxy password contains a control character'],
    ['vendor host NUL', () => parseProxy(`pro\0xy:8080:user:${SECRET}`), 'proxy host contains a control character (\\u0000 at 3)'],
    ['vendor username', () => parseProxy(`proxy:8080:us\x01er:${SECRET}`), 'proxy username contains a control character (\\u0001 at 2)'],
    ['vendor password NUL', () => parseProxy(`proxy:8080:user:${SECRET}\0`), 'proxy password contains a control character'],
    ['vendor password CR', () => parseProxy(`proxy:8080:user:${SECRET}\rX`), 'proxy password contains a control character'],
    ['list line', () => parseProxyList(`ok:1\nh:1:u:${SECRET}\0`), 'line 2: proxy password contains a control character'],
    ['list line host', () => parseProxyList(`ok:1\nh\x1b[2J:1:u:${SECRET}`), 'line 2: proxy host contains a control character (\\u001b at 1)'],
    ['object username', () => parseProxy({ url: `http://h:1`, username: 'a\r\nb', password: SECRET }), 'proxy username contains a control character (\\r at 1)'],
    ['object password', () => parseProxy({ url: 'http://u@h:1', password: `${SECRET}\n` }), 'proxy password contains a control character'],
    ['object label', () => parseProxy({ url: `http://u:${SECRET}@h:1`, label: 'eu\n1' }), 'proxy label contains a control character (\\n at 2)'],
    ['object url host', () => parseProxy({ url: `http://u:${SECRET}@h\r\n:1` }), 'proxy host contains a control character (\\r at 1)'],
    ['ProxyEndpoint host', () => new ProxyEndpoint({ protocol: 'http', host: 'h\r\nx', port: 1, password: SECRET }), 'proxy host contains a control character (\\r at 1)'],
    ['ProxyEndpoint username', () => new ProxyEndpoint({ protocol: 'socks4a', host: 'h', username: 'u\0' }), 'proxy username contains a control character (\\u0000 at 1)'],
    ['ProxyEndpoint password', () => new ProxyEndpoint({ protocol: 'http', host: 'h', password: `${SECRET}\u007f` }), 'proxy password contains a control character'],
  ];

  it.each(cases)('%s', (_, parse, message) => {
    let error: unknown;
    try {
      parse();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyUrlError);
    const err = error as ProxyUrlError;
    expect(err.code).toBe('SP_ERR_PROXY_URL');
    expect(err.message).toContain(message);
    // Neither the message nor the redacted echo can split a log line, and the password is not in any view.
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f]/);
    expect(String(err.proxy ?? '')).not.toMatch(/[\x00-\x1f\x7f]/);
    for (const text of [err.message, String(err.proxy), String(err), inspect(err), JSON.stringify(err), err.stack ?? '']) {
      expect(leaks(text), text).toBe(false);
    }
  });

  it('the redacted echo shows the host escaped', () => {
    expect(() => parseProxy(`http://bob:${SECRET}@pro\r\nxy:8080`)).toThrow(expect.objectContaining({ proxy: 'http://bob:***@pro\\r\\nxy:8080' }));
    expect(() => parseProxy(`pro\0xy:8080:bob:${SECRET}`)).toThrow(expect.objectContaining({ proxy: 'pro\\u0000xy:8080:bob:***' }));
  });

  it('the password message never says which character or where', () => {
    const err = (() => {
      try {
        parseProxy(`http://user:ab\ncd@h:1`);
      } catch (e) {
        return e as Error;
      }
      throw new Error('not refused');
    })();
    expect(err.message).not.toMatch(/\\n| at \d/);
  });

  it('a tab still belongs to a vendor password, and a trailing line break still ends a URL', () => {
    expect(parseProxy('h:1:user:pw\t').getPassword()).toBe('pw\t');
    expect(parseProxy(`http://u:${SECRET}@h:1\r\n`).getPassword()).toBe(SECRET);
  });
});

// Found by test/fuzz/parse.test.ts: `h:1: \ud800h:1:…:only-pass` parsed, and then
// String(endpoint) — so every message naming the proxy — threw a URIError.
describe('a lone UTF-16 surrogate in the credentials is refused at parse time', () => {
  it.each([
    ['vendor username', () => parseProxy('h:1: \ud800h:only-pass'), 'proxy username is not well-formed Unicode (a lone UTF-16 surrogate; at 1)'],
    ['URL username', () => parseProxy(`http://proxy.ex\udc00e.com:${SECRET}@proxy.example.com`), 'proxy username is not well-formed Unicode'],
    ['URL password', () => parseProxy(`http://u:${SECRET}\ud800@h:1`), 'proxy password is not well-formed Unicode (a lone UTF-16 surrogate; where is not shown)'],
    ['vendor password', () => parseProxy(`h:1:u:\udfff${SECRET}`), 'proxy password is not well-formed Unicode'],
    ['object password', () => parseProxy({ url: 'socks5://u@h:1', password: `${SECRET}\ud83d` }), 'proxy password is not well-formed Unicode'],
    ['ProxyEndpoint username', () => new ProxyEndpoint({ protocol: 'http', host: 'h', username: '\udc00' }), 'proxy username is not well-formed Unicode'],
  ])('%s', (_, parse, message) => {
    let error: unknown;
    try {
      parse();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyUrlError);
    expect((error as Error).message).toContain(message);
    expect(leaks(String(error)) || leaks(inspect(error))).toBe(false);
  });

  it('a surrogate pair (an emoji) is fine', () => {
    const e = parseProxy('http://%F0%9F%94%91:p\u{1F511}@h:1');
    expect(e.username).toBe('\u{1F511}');
    expect(e.url).toBe('http://%F0%9F%94%91:***@h:1');
    expect(parseProxy(e.toEnvUrl()).getPassword()).toBe('p\u{1F511}');
  });
});

describe('ProxyEndpoint never shows its password', () => {
  const e = parseProxy(`socks5h://bob:${SECRET}@127.0.0.1:1080`);
  const views: Array<[string, () => string]> = [
    ['String()', () => String(e)],
    ['template', () => `${e}`],
    ['JSON.stringify', () => JSON.stringify(e)],
    ['JSON.stringify nested', () => JSON.stringify({ proxies: [e] })],
    ['util.inspect', () => inspect(e)],
    ['util.inspect showHidden', () => inspect(e, { showHidden: true, depth: Infinity })],
    ['util.inspect raw', () => inspect(e, { showHidden: true, customInspect: false, getters: true, depth: Infinity })],
    ['util.format %o', () => format('%o', e)],
    ['util.format %j', () => format('%j', e)],
    ['Object.keys', () => JSON.stringify(Object.keys(e))],
    ['Object.entries', () => inspect(Object.entries(e), { depth: Infinity })],
    ['spread', () => inspect({ ...e }, { showHidden: true, depth: Infinity })],
    ['own properties', () => inspect(Reflect.ownKeys(e).map((k) => (e as unknown as Record<PropertyKey, unknown>)[k]))],
    ['info()', () => JSON.stringify(e.info())],
    ['url', () => e.url],
    ['label', () => e.label],
    ['authority', () => e.authority],
    ['identityKey', () => e.identityKey],
  ];

  it.each(views)('%s', (_, view) => {
    expect(leaks(view())).toBe(false);
  });

  it('prints itself as ProxyEndpoint <redacted url>', () => {
    expect(inspect(e)).toBe('ProxyEndpoint <socks5h://bob:***@127.0.0.1:1080>');
    expect(e.toJSON()).toEqual({ url: 'socks5h://bob:***@127.0.0.1:1080', protocol: 'socks5h', host: '127.0.0.1', port: 1080, label: 'socks5h://127.0.0.1:1080' });
  });

  it('identityKey holds no plain sha256 of the password', () => {
    expect(e.identityKey).not.toContain(createHash('sha256').update(SECRET).digest('hex'));
  });

  it('is frozen', () => {
    expect(Object.isFrozen(e)).toBe(true);
    expect(() => {
      (e as { host: string }).host = 'evil';
    }).toThrow(TypeError);
  });

  it('getPassword and toEnvUrl are the only ways in', () => {
    expect(e.getPassword()).toBe(SECRET);
    expect(e.toEnvUrl()).toBe(`socks5h://bob:${SECRET}@127.0.0.1:1080`);
  });
});

describe('ProxyEndpoint accessors', () => {
  it.each([
    ['socks5://bob:p@ss@[::1]:1080', 'socks5h://bob:p%40ss@[::1]:1080', '[::1]:1080'],
    ['socks5h://h', 'socks5h://h:1080', 'h:1080'],
    ['socks4://u@h', 'socks4://u@h:1080', 'h:1080'],
    ['http://a%40b:c%20d@h', 'http://a%40b:c%20d@h:80', 'h:80'],
    ['https://h:8443/', 'https://h:8443', 'h:8443'],
  ])('%s → toEnvUrl %s, authority %s', (input, env, authority) => {
    const e = parseProxy(input);
    expect(e.toEnvUrl()).toBe(env);
    expect(e.authority).toBe(authority);
  });

  // Found by test/fuzz/parse.test.ts: { url, username: '' } sent Basic ":" itself, while
  // its env URL (http://@host) read back with no credentials in a child process.
  it.each([
    [{ url: 'http://proxy.example.com:3128', username: '' }],
    [{ url: 'socks5://h:1', username: '' }],
  ])('an empty username without a password is no credentials (%o)', (input) => {
    const e = parseProxy(input);
    expect(e.username).toBeUndefined();
    expect(e.url).not.toContain('@');
    expect(parseProxy(e.toEnvUrl()).username).toBeUndefined();
    expect(new ProxyEndpoint({ protocol: 'http', host: 'h', username: '' }).username).toBeUndefined();
    // With a password, the empty user stays: it is sent.
    expect(parseProxy({ ...input, password: 'pw' }).username).toBe('');
  });

  it('percent-encodes the user name in url', () => {
    expect(parseProxy({ url: 'http://h:1', username: 'a@b c', password: 'x' }).url).toBe('http://a%40b%20c:***@h:1');
  });

  it('remoteDns is false only for socks4', () => {
    const dns = ['http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'].map((p) => parseProxy(`${p}://h`).remoteDns);
    expect(dns).toEqual([true, true, false, true, true, true]);
  });
});

describe('identityKey', () => {
  const key = (input: unknown): string => parseProxy(input).identityKey;

  it.each([
    ['http://u:p@h:8080', 'h:8080:u:p'],
    ['http://u:p@h', 'http://u:p@h:80/'],
    ['HTTP://U:p@H.example:1', 'http://U:p@h.example:1'],
    ['socks5://[0:0:0:0:0:0:0:1]', 'socks5://[::1]:1080'],
    ['http://u:p%40x@h:1', { url: 'http://h:1', username: 'u', password: 'p@x' }],
    [{ url: 'http://h:1', label: 'a' }, { url: 'http://h:1', label: 'b' }],
    [{ url: 'https://h', tls: { rejectUnauthorized: false } }, { url: 'https://h', tls: { rejectUnauthorized: false } }],
  ])('%o equals %o', (a, b) => {
    expect(key(a)).toBe(key(b));
  });

  it.each([
    ['http://u:p1@h:1', 'http://u:p2@h:1'],
    ['http://u:p@h:1', 'http://u@h:1'],
    ['http://u:@h:1', 'http://u@h:1'],
    ['http://u1:p@h:1', 'http://u2:p@h:1'],
    ['http://u:p@h:1', 'http://u:p@h:2'],
    ['http://u:p@h1:1', 'http://u:p@h2:1'],
    ['socks5://h', 'socks5h://h'],
    ['http://h:443', 'https://h:443'],
    [{ url: 'https://h', tls: { rejectUnauthorized: false } }, 'https://h'],
    [{ url: 'https://h', tls: { ca: 'A' } }, { url: 'https://h', tls: { ca: 'B' } }],
  ])('%o differs from %o', (a, b) => {
    expect(key(a)).not.toBe(key(b));
  });
});

describe('isProxyEndpoint', () => {
  it('recognises endpoints and nothing else', () => {
    const e = parseProxy('http://h:1');
    expect(isProxyEndpoint(e)).toBe(true);
    for (const v of [undefined, null, 'http://h:1', new URL('http://h:1'), e.info(), { ...e }, {}]) {
      expect(isProxyEndpoint(v)).toBe(false);
    }
  });

  it('recognises endpoints made by another copy of the library', async () => {
    vi.resetModules();
    const copy = await import('../../src/proxy/endpoint.js');
    expect(copy.ProxyEndpoint).not.toBe(ProxyEndpoint);
    const foreign = new copy.ProxyEndpoint({ protocol: 'socks5', host: 'h', username: 'u', password: SECRET });
    expect(isProxyEndpoint(foreign)).toBe(true);
    expect(foreign instanceof ProxyEndpoint).toBe(true);
    expect(parseProxy(foreign)).toBe(foreign);
    expect(copy.isProxyEndpoint(parseProxy('http://h:1'))).toBe(true);
    // The identity salt is shared too, so pools keyed by either copy agree.
    expect(foreign.identityKey).toBe(parseProxy(`socks5://u:${SECRET}@h`).identityKey);
  });
});

describe('parseProxyList', () => {
  const text = [
    '# accounts for the EU pool',
    'http://a:1',
    '',
    `   socks5://u:${SECRET}@h:1080   `,
    '\t# indented comment',
    'h2:8080:user:p#ss:w',
    '[::1]:3128   ',
    'h3:1:user:ends-in-space ',
  ].join('\n');

  it.each([
    ['\\n', text],
    ['\\r\\n', text.replace(/\n/g, '\r\n')],
    ['\\r', text.replace(/\n/g, '\r')],
  ])('skips comments and blank lines (%s)', (_, t) => {
    const list = parseProxyList(t);
    expect(list.map(String)).toEqual([
      'http://a:1',
      'socks5://u:***@h:1080',
      'http://user:***@h2:8080',
      'http://[::1]:3128',
      'http://user:***@h3:1',
    ]);
    expect(list[1]!.getPassword()).toBe(SECRET);
    expect(list[2]!.getPassword()).toBe('p#ss:w');
    expect(list[4]!.getPassword()).toBe('ends-in-space ');
  });

  it('applies options to every line', () => {
    const list = parseProxyList('a:1\nb:2:u:p', { defaultProtocol: 'socks5', connectTimeout: 3000 });
    expect(list.map((e) => [e.protocol, e.connectTimeout])).toEqual([
      ['socks5', 3000],
      ['socks5', 3000],
    ]);
  });

  it('returns [] for empty text or only comments', () => {
    expect(parseProxyList('')).toEqual([]);
    expect(parseProxyList('\n# nothing\n\n')).toEqual([]);
  });

  it.each([
    [`http://a:1\n# c\n\nh:99999:u:${SECRET}\n`, 'line 4: port is out of range'],
    [`\n\nftp://u:${SECRET}@h`, 'line 3: unsupported proxy scheme "ftp"'],
    [`http://ok:1\r\nhttp://u:${SECRET}@h:1/x`, 'line 2: a proxy URL must not have a path'],
    [`user:${SECRET}@h:1`, 'line 1: credentials need a scheme'],
  ])('names the line of a bad entry (%#)', (t, message) => {
    let error: unknown;
    try {
      parseProxyList(t);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyUrlError);
    const err = error as ProxyUrlError;
    expect(err.message).toContain(message);
    expect(leaks(err.message) || leaks(String(err.proxy)) || leaks(inspect(err))).toBe(false);
  });

  it('rejects non-string text', () => {
    expect(() => parseProxyList(undefined as never)).toThrow(/got undefined/);
    expect(() => parseProxyList(['http://h:1'] as never)).toThrow(/got array/);
  });
});
