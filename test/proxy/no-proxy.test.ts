import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { LOOPBACK_NO_PROXY, NoProxyMatcher } from '../../src/proxy/no-proxy.js';

type Case = [entries: string | string[], host: string, port: number, expected: boolean];

const hostCases: Case[] = [
  // "*" matches everything, with or without a port restriction.
  ['*', 'example.com', 80, true],
  ['*', '10.0.0.1', 443, true],
  ['*', '::1', 1, true],
  ['*:443', 'example.com', 443, true],
  ['*:443', 'example.com', 80, false],
  // Domain suffix semantics (curl): the domain and its subdomains, on label boundaries.
  ['example.com', 'example.com', 80, true],
  ['example.com', 'sub.example.com', 80, true],
  ['example.com', 'a.b.example.com', 443, true],
  ['example.com', 'notexample.com', 80, false],
  ['example.com', 'example.com.evil.org', 80, false],
  ['example.com', 'example.co', 80, false],
  ['example.com', 'com', 80, false],
  ['.example.com', 'example.com', 80, true],
  ['.example.com', 'sub.example.com', 80, true],
  ['.example.com', 'notexample.com', 80, false],
  ['*.example.com', 'example.com', 80, true],
  ['*.example.com', 'deep.sub.example.com', 80, true],
  ['*.example.com', 'notexample.com', 80, false],
  ['*example.com', 'notexample.com', 80, false],
  ['..example.com', 'sub.example.com', 80, true],
  // Case and trailing dots, on both sides.
  ['EXAMPLE.com', 'Sub.Example.COM', 80, true],
  ['example.com.', 'example.com', 80, true],
  ['example.com', 'example.com.', 80, true],
  ['localhost', 'localhost', 80, true],
  ['localhost', 'localhost.', 80, true],
  ['localhost', 'LOCALHOST', 80, true],
  ['localhost', 'app.localhost', 80, true],
  ['localhost', 'localhost.localdomain', 80, false],
  ['localhost', '127.0.0.1', 80, false], // no DNS
  // Port-specific entries.
  ['example.com:8080', 'example.com', 8080, true],
  ['example.com:8080', 'example.com', 80, false],
  ['example.com:8080', 'sub.example.com', 8080, true],
  ['.example.com:443', 'api.example.com', 443, true],
  ['.example.com:443', 'api.example.com', 8443, false],
  // IPv4 literals and CIDR.
  ['10.1.2.3', '10.1.2.3', 1234, true],
  ['10.1.2.3', '10.1.2.4', 1234, false],
  ['10.1.2.3', '10.1.2.3.', 1234, true],
  ['10.1.2.3:8080', '10.1.2.3', 8080, true],
  ['10.1.2.3:8080', '10.1.2.3', 80, false],
  ['127.0.0.0/8', '127.0.0.1', 80, true],
  ['127.0.0.0/8', '127.0.0.9', 80, true],
  ['127.0.0.0/8', '127.255.255.255', 80, true],
  ['127.0.0.0/8', '128.0.0.1', 80, false],
  ['127.0.0.0/8', 'localhost', 80, false],
  ['127.0.0.0/8', '::ffff:127.0.0.9', 80, true],
  ['127.0.0.0/8', '[::ffff:7f00:9]', 80, true],
  ['192.168.1.77/24', '192.168.1.5', 80, true],
  ['192.168.1.77/24', '192.168.2.5', 80, false],
  ['172.16.0.0/12', '172.31.255.1', 80, true],
  ['172.16.0.0/12', '172.32.0.1', 80, false],
  ['10.0.0.0/8:443', '10.9.9.9', 443, true],
  ['10.0.0.0/8:443', '10.9.9.9', 80, false],
  ['0.0.0.0/0', '203.0.113.7', 80, true],
  ['0.0.0.0/0', 'example.com', 80, false],
  ['203.0.113.7/32', '203.0.113.7', 80, true],
  ['203.0.113.7/32', '203.0.113.8', 80, false],
  // An IP entry never matches a host name made of the same text, and vice versa.
  ['1.2.3.4', '1.2.3.4.nip.io', 80, false],
  // IPv6, bracketed or not, compared canonically.
  ['::1', '::1', 80, true],
  ['::1', '[::1]', 80, true],
  ['::1', '0:0:0:0:0:0:0:1', 80, true],
  ['::1', '::2', 80, false],
  ['::1', '127.0.0.1', 80, false],
  ['[::1]', '::1', 80, true],
  ['0:0:0:0:0:0:0:1', '[::1]', 80, true],
  ['[::1]:8080', '::1', 8080, true],
  ['[::1]:8080', '[::1]', 80, false],
  ['::1:8080', '::1:8080', 1, true], // a bare IPv6 entry has no port
  ['::1:8080', '::1', 8080, false],
  ['2001:DB8::1', '2001:db8:0:0:0:0:0:1', 80, true],
  ['fd00::/8', 'fd12:3456::1', 80, true],
  ['fd00::/8', '[fdff::]', 80, true],
  ['fd00::/8', 'fe80::1', 80, false],
  ['[fd00::/8]:443', 'fd00::1', 443, true],
  ['[fd00::/8]:443', 'fd00::1', 80, false],
  ['2001:db8::/32', '2001:db8:ffff::1', 80, true],
  ['2001:db8::/32', '2001:db9::1', 80, false],
  ['fe80::/10', 'febf::1', 80, true],
  ['fe80::/10', 'fec0::1', 80, false],
  ['fe80::1', 'fe80::1%eth0', 80, true],
  // IPv4-mapped IPv6 is the IPv4 address.
  ['::ffff:127.0.0.1', '127.0.0.1', 80, true],
  ['::ffff:10.0.0.0/104', '10.200.0.1', 80, true],
  ['::ffff:10.0.0.0/104', '11.0.0.1', 80, false],
  ['127.0.0.1', '::ffff:127.0.0.1', 80, true],
  // International names compare as punycode.
  ['bücher.de', 'xn--bcher-kva.de', 80, true],
  ['xn--bcher-kva.de', 'shop.bücher.de', 80, true],
  // Lists: commas and/or whitespace; arrays may hold comma-joined strings.
  ['localhost, 127.0.0.0/8 ::1,,.corp.example\t*.internal', 'db.internal', 5432, true],
  ['localhost, 127.0.0.0/8 ::1,,.corp.example\t*.internal', 'git.corp.example', 22, true],
  ['localhost, 127.0.0.0/8 ::1,,.corp.example\t*.internal', 'example.org', 80, false],
  [['a.com,b.com', 'c.com'], 'b.com', 80, true],
  [['a.com,b.com', ' c.com '], 'x.c.com', 80, true],
  [['a.com,b.com', 'c.com'], 'd.com', 80, false],
  // Empty lists match nothing.
  ['', 'example.com', 80, false],
  [' , ,\n', 'example.com', 80, false],
  [[], 'example.com', 80, false],
  // Entries that normalize to nothing are ignored rather than matching everything.
  ['.', 'example.com', 80, false],
  ['*.', 'example.com', 80, false],
  // Targets that are not hosts.
  ['*', '', 80, false],
];

describe('NoProxyMatcher.matches', () => {
  it.each(hostCases)('%j matches(%j, %i) → %s', (entries, host, port, expected) => {
    expect(new NoProxyMatcher(entries).matches(host, port)).toBe(expected);
  });
});

describe('NoProxyMatcher.matches with what is not a host name or port', () => {
  // Found by test/fuzz/no-proxy.test.ts: matches(Symbol(), 0) threw a TypeError.
  it.each([
    [Symbol('host'), 80, false],
    [undefined, 80, false],
    [42, 80, false],
    [{}, 80, false],
    ['example.com', Symbol('port'), true], // "*" matches any port
    ['example.com', { toString: 0 }, true],
  ])('matches(%s, %s) → %s', (host, port, expected) => {
    const m = new NoProxyMatcher('*, example.com:443');
    expect(m.matches(host as never, port as never)).toBe(expected);
    expect(m.matches(host as never, port as never)).toBe(expected);
  });
});

const urlCases: Array<[string, string, boolean]> = [
  // Default ports come from the scheme.
  ['host:443', 'https://host/', true],
  ['host:443', 'https://host:443/x', true],
  ['host:443', 'http://host/', false],
  ['host:443', 'http://host:443/', true],
  ['host:443', 'wss://host/socket', true],
  ['host:80', 'ws://host/', true],
  ['host:80', 'wss://host/', false],
  ['host:80', 'HTTP://HOST/', true],
  ['host:8443', 'https://host:8443/', true],
  ['host:8443', 'https://host/', false],
  ['host', 'https://user:pw@host:1234/path?q#f', true],
  ['.example.com', 'https://api.example.com/v1', true],
  ['.example.com', 'https://example.com', true],
  ['example.com', 'https://notexample.com', false],
  ['::1', 'http://[::1]:3000/', true],
  ['[::1]:3000', 'http://[::1]:3000/', true],
  ['[::1]:3000', 'http://[::1]/', false],
  ['fd00::/8', 'https://[fd00::abcd]/', true],
  ['127.0.0.0/8', 'http://127.0.0.2:9000/', true],
  // WHATWG normalizes IPv4 shorthands before we see them.
  ['127.0.0.0/8', 'http://127.1/', true],
  ['localhost', 'http://localhost./', true],
  // Unknown schemes have no default port: only port-less entries apply.
  ['host', 'socks5://host', true],
  ['host:1080', 'socks5://host', false],
];

describe('NoProxyMatcher.matchesUrl', () => {
  it.each(urlCases)('%j matchesUrl(%j) → %s', (entries, url, expected) => {
    const m = new NoProxyMatcher(entries);
    expect(m.matchesUrl(url)).toBe(expected);
    expect(m.matchesUrl(new URL(url))).toBe(expected);
  });

  it('throws on an unparsable URL', () => {
    expect(() => new NoProxyMatcher('*').matchesUrl('not a url')).toThrow(TypeError);
  });
});

describe('NoProxyMatcher: bad entries', () => {
  it.each([
    ['10.0.0.0/33', 'prefix length must be 0-32'],
    ['::/129', 'prefix length must be 0-128'],
    ['10.0.0.0/x', 'prefix length'],
    ['10.0.0.0/', 'prefix length'],
    ['10.0.0.0/-1', 'prefix length'],
    ['example.com/8', 'needs an IP address'],
    ['10.0.0/8', 'needs an IP address'],
    ['host:0', 'port must be a number from 1 to 65535'],
    ['host:99999', 'port'],
    ['host:abc', 'port'],
    ['host:', 'port'],
    ['[::1', 'unclosed'],
    ['[::1]x', 'unexpected characters'],
    ['[::1]:', 'port'],
    ['[example.com]', 'not an IPv6 address'],
    ['ex*ample.com', '"*"'],
    ['*.*.example.com', '"*"'],
    ['192.168.*', '"*"'],
    ['http://example.com', 'not URLs'],
    // Found by test/fuzz/no-proxy.test.ts: these were name rules that never matched,
    // printed (for child processes' NO_PROXY) as the bare address, which bypasses.
    ['.10.0.0.1', 'an IP address has none'],
    ['*.10.0.0.1', 'an IP address has none'],
    ['*::1', 'an IP address has none'],
    ['.::ffff:10.0.0.1', 'an IP address has none'],
    ['.[', 'an IP address has none'],
    ['*[::1]', 'an IP address has none'],
  ])('%j', (entry, message) => {
    const list = `ok.example, ${entry}, other.example`;
    let error: unknown;
    try {
      new NoProxyMatcher(list);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`"${entry}"`);
    expect((error as Error).message).toContain(message);
  });

  // Found by test/fuzz/no-proxy.test.ts: "[\u0000:1]:8080" reached the message raw.
  it.each([
    ['[\0:1]:8080', 'invalid NO_PROXY entry "[\\u0000:1]:8080": not an IPv6 address'],
    ['a\x1b[2J*b', 'invalid NO_PROXY entry "a\\u001b[2J*b": "*" is only supported'],
    ['x\x7f/8', 'invalid NO_PROXY entry "x\\u007f/8": a CIDR range needs an IP address'],
  ])('control characters in an entry are escaped in the message (%j)', (entry, message) => {
    let error: unknown;
    try {
      new NoProxyMatcher(entry);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toMatch(/[\x00-\x1f\x7f]/);
  });

  it('rejects non-strings', () => {
    expect(() => new NoProxyMatcher(undefined as never)).toThrow(ConfigError);
    expect(() => new NoProxyMatcher(['a.com', 5] as never)).toThrow(/got number/);
  });
});

describe('NoProxyMatcher: normalized entries', () => {
  it('normalizes, dedupes and prints them', () => {
    const m = new NoProxyMatcher(
      '.Example.COM., *.foo.org, [0:0::1]:8080, 10.1.2.3/8, ::ffff:127.0.0.1, FD00::1/8, *, example.com, *:443, 2001:db8::1, ::ffff:0:0/96',
    );
    expect(m.entries).toEqual([
      'example.com',
      'foo.org',
      '[::1]:8080',
      '10.0.0.0/8',
      '127.0.0.1',
      'fd00::/8',
      '*',
      '*:443',
      '2001:db8::1',
      '0.0.0.0/0',
    ]);
    expect(m.toString()).toBe(m.entries.join(','));
    expect(m.isEmpty).toBe(false);
    expect(Object.isFrozen(m.entries)).toBe(true);
  });

  // Found by test/fuzz/no-proxy.test.ts: "example.com..." kept a dot ("example.com.." never
  // matched, yet read back as "example.com."), and IDNA turned "İ.." into "xn--i-9bb.".
  it.each([
    ['example.com...', 'example.com'],
    ['..example.com..:443', 'example.com:443'],
    ['İ..', 'xn--i-9bb'],
    ['example.com\u3002', 'example.com'],
    ['\u3002example.com', 'example.com'],
  ])('trailing dots, and dots IDNA makes, are trimmed: %j → %j', (entry, normalized) => {
    const m = new NoProxyMatcher(entry);
    expect(m.entries).toEqual([normalized]);
    expect(new NoProxyMatcher(m.entries).entries).toEqual([normalized]);
    const host = normalized.replace(/:\d+$/, '');
    expect(m.matches(`api.${host}`, 443)).toBe(true);
  });

  it('is empty for blank input', () => {
    expect(new NoProxyMatcher('').isEmpty).toBe(true);
    expect(new NoProxyMatcher([' ', ',']).isEmpty).toBe(true);
    expect(new NoProxyMatcher('').toString()).toBe('');
  });
});

describe('NoProxyMatcher.fromEnv', () => {
  const saved = { NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it.each([
    [{ NO_PROXY: 'a.com' }, ['a.com']],
    [{ no_proxy: 'b.com' }, ['b.com']],
    [{ NO_PROXY: 'a.com', no_proxy: 'b.com' }, ['a.com']],
    [{ NO_PROXY: '', no_proxy: 'b.com' }, ['b.com']],
    [{}, []],
  ])('%j', (env, entries) => {
    expect(NoProxyMatcher.fromEnv(env).entries).toEqual(entries);
  });

  it('skips entries it cannot read with a warning instead of failing (those targets are proxied)', () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    const m = NoProxyMatcher.fromEnv({ NO_PROXY: 'ok.test, 192.168.*, 10.0.0.0/33, [::1' });
    expect(m.entries).toEqual(['ok.test']);
    expect(m.matches('192.168.1.1', 80)).toBe(false);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        process.off('warning', onWarning);
        expect(warnings.join()).toMatch(/192\.168\.\*, 10\.0\.0\.0\/33, \[::1/);
        resolve();
      }),
    );
  });

  it('the warning shows unreadable entries escaped', () => {
    const warnings: string[] = [];
    const emitWarning = process.emitWarning;
    process.emitWarning = ((w: string) => void warnings.push(w)) as typeof process.emitWarning;
    try {
      NoProxyMatcher.fromEnv({ NO_PROXY: 'ok.test,a\x1b[2J*b' });
    } finally {
      process.emitWarning = emitWarning;
    }
    expect(warnings).toEqual(['ignoring NO_PROXY entries it cannot read: a\\u001b[2J*b']);
  });

  it('reads process.env by default', () => {
    delete process.env.no_proxy;
    process.env.NO_PROXY = 'from-env.test,10.0.0.0/8';
    const m = NoProxyMatcher.fromEnv();
    expect(m.matches('api.from-env.test', 443)).toBe(true);
    expect(m.matches('10.2.3.4', 80)).toBe(true);
  });
});

describe('LOOPBACK_NO_PROXY', () => {
  const m = new NoProxyMatcher(LOOPBACK_NO_PROXY);

  it('is the frozen loopback list', () => {
    expect(LOOPBACK_NO_PROXY).toEqual(['localhost', '127.0.0.0/8', '::1']);
    expect(Object.isFrozen(LOOPBACK_NO_PROXY)).toBe(true);
  });

  it.each([
    ['localhost', true],
    ['localhost.', true],
    ['127.0.0.1', true],
    ['127.9.9.9', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['10.0.0.1', false],
    ['localhost.example.com', false],
    ['::2', false],
  ])('%s → %s', (host, expected) => {
    expect(m.matches(host, 80)).toBe(expected);
  });
});

// proxy-from-env is what axios and others use; where both define the same
// thing we must agree, and where we deliberately follow curl we must differ
// exactly as documented in no-proxy.ts.
describe('compared with proxy-from-env', () => {
  const require = createRequire(import.meta.url);
  const { getProxyForUrl } = require('proxy-from-env') as { getProxyForUrl(url: string): string };
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['NO_PROXY', 'no_proxy', 'http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  function theirs(entries: string, url: string): boolean {
    delete process.env.NO_PROXY;
    process.env.no_proxy = entries;
    process.env.http_proxy = process.env.https_proxy = 'http://proxy.test:3128';
    return getProxyForUrl(url) === '';
  }

  it.each([
    ['example.com', 'http://example.com/'],
    ['example.com', 'http://other.com/'],
    ['*', 'https://anything.test/'],
    ['.example.com', 'https://api.example.com/'],
    ['*.example.com', 'https://api.example.com/'],
    ['example.com:8080', 'http://example.com:8080/'],
    ['example.com:8080', 'http://example.com/'],
    ['host:443', 'https://host/'],
    ['10.0.0.1', 'http://10.0.0.1/'],
    ['a.com,b.com', 'http://b.com/'],
    ['a.com b.com', 'http://c.com/'],
    ['[::1]', 'http://[::1]/'],
  ])('agrees: %j vs %s', (entries, url) => {
    expect(new NoProxyMatcher(entries).matchesUrl(url)).toBe(theirs(entries, url));
  });

  it.each([
    // [entries, url, ours]
    ['example.com', 'http://sub.example.com/', true],
    ['.example.com', 'http://example.com/', true],
    ['*example.com', 'http://notexample.com/', false],
    ['10.0.0.0/8', 'http://10.1.2.3/', true],
    ['::1', 'http://[::1]/', true],
  ])('differs on purpose: %j vs %s', (entries, url, ours) => {
    expect(new NoProxyMatcher(entries).matchesUrl(url)).toBe(ours);
    expect(theirs(entries, url)).toBe(!ours);
  });
});
