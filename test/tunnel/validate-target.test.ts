/**
 * The target validator on its own: what a CONNECT authority or a SOCKS
 * request may carry, what it may not, and that every message is escaped.
 */
import { describe, expect, it } from 'vitest';
import { InvalidTargetError } from '../../src/errors.js';
import { invalidTarget, printableAuthority, validateTarget } from '../../src/tunnel/validate-target.js';

describe('validateTarget: accepted', () => {
  it.each([
    ['example.com', 443, 'example.com'],
    ['Example.COM', 443, 'Example.COM'],
    ['example.com.', 443, 'example.com.'],
    ['my_host.internal', 80, 'my_host.internal'],
    ['_srv._tcp.example.com', 80, '_srv._tcp.example.com'],
    ['-odd-.example', 80, '-odd-.example'],
    ['localhost', 1, 'localhost'],
    ['123.example', 65535, '123.example'],
    ['127.0.0.1', 8080, '127.0.0.1'],
    ['::1', 443, '::1'],
    ['2001:db8::1', 443, '2001:db8::1'],
    ['::ffff:127.0.0.1', 443, '::ffff:127.0.0.1'],
    ['bücher.de', 443, 'xn--bcher-kva.de'],
    [`${'a'.repeat(63)}.test`, 443, `${'a'.repeat(63)}.test`],
  ])('%j:%i', (host, port, sent) => {
    expect(validateTarget({ host, port })).toEqual({ host: sent, port });
  });

  it('a 255-byte name fits SOCKS5; a longer one only CONNECT', () => {
    const name = (n: number): string => `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(n - 192 - 5)}.test`;
    expect(name(255)).toHaveLength(255);
    expect(validateTarget({ host: name(255), port: 1 }, { protocol: 'socks5h' }).host).toBe(name(255));
    expect(validateTarget({ host: name(256), port: 1 }, { protocol: 'http' }).host).toBe(name(256));
    for (const protocol of ['socks5', 'socks5h'] as const) {
      expect(() => validateTarget({ host: name(256), port: 1 }, { protocol })).toThrow('target host is longer than 255 bytes (256), the most a SOCKS5 request can carry');
    }
  });
});

describe('validateTarget: refused', () => {
  it.each([
    ['example.test\r\nX: y', 443, 'target host contains a control character (\\r at 12)'],
    ['example.test\nX', 443, 'control character (\\n at 12)'],
    ['echo.test\0evil', 443, 'control character (\\u0000 at 9)'],
    ['a\x7fb', 443, 'control character (\\u007f at 1)'],
    ['a\x85b', 443, 'control character (\\u0085 at 1)'],
    ['a\tb', 443, 'control character (\\t at 1)'],
    ['a b', 443, 'target host contains a space (at 1)'],
    ['a\u00a0b', 443, 'space (\\u00a0 at 1)'],
    ['a\u2028b', 443, 'space (\\u2028 at 1)'],
    ['user@host', 443, 'forbidden character ("@" at 4)'],
    ['host/path', 443, 'forbidden character ("/" at 4)'],
    ['host\\x', 443, 'forbidden character ("\\\\" at 4)'],
    ['host#x', 443, 'forbidden character ("#" at 4)'],
    ['host?x', 443, 'forbidden character ("?" at 4)'],
    ['host%0d', 443, 'forbidden character ("%" at 4)'],
    ['host:80', 443, 'forbidden character (":" at 4)'],
    ['[::1]', 443, 'forbidden character ("[" at 0)'],
    ['::g', 443, 'forbidden character (":" at 0)'],
    ['fe80::1%eth0', 443, 'zone id ("%eth0")'],
    ['a..b', 443, 'empty label'],
    ['.a', 443, 'empty label'],
    [`${'a'.repeat(64)}.test`, 443, 'label longer than 63 bytes'],
    ['', 443, 'target host is empty'],
    ['a\uff0fb', 443, 'not a valid international domain name'],
    ['host', 0, 'target port must be an integer from 1 to 65535, got 0'],
    ['host', 65536, 'got 65536'],
    ['host', -1, 'got -1'],
    ['host', 1.5, 'got 1.5'],
    ['host', Number.NaN, 'got NaN'],
  ])('%j:%s', (host, port, message) => {
    let error: unknown;
    try {
      validateTarget({ host, port }, { account: 'alice' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidTargetError);
    const err = error as InvalidTargetError;
    expect(err.code).toBe('SP_ERR_INVALID_TARGET');
    expect(err.message).toContain(message);
    expect(err.message).toContain('account "alice"');
    expect(err.message).not.toMatch(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/);
    expect(err.target).not.toMatch(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/);
  });

  it('types that are not a host or a port', () => {
    expect(() => validateTarget({ host: 5 as unknown as string, port: 1 })).toThrow('target host must be a string, got number');
    expect(() => validateTarget({ host: 'h', port: '80' as unknown as number })).toThrow('target port must be an integer from 1 to 65535, got string');
  });

  it('invalidTarget returns the error instead of throwing it, and names the proxy when given', () => {
    expect(invalidTarget({ host: 'ok.test', port: 1 })).toBeUndefined();
    const err = invalidTarget({ host: 'a\r\nb', port: 1 }, { account: 'bob', proxy: 'socks5h://bob:***@127.0.0.1:1080' });
    expect(err?.message).toBe('target host contains a control character (\\r at 1) (account "bob", proxy socks5h://bob:***@127.0.0.1:1080, target "a\\r\\nb":1)');
  });
});

describe('printableAuthority', () => {
  it('is formatAuthority for clean hosts and escapes the rest', () => {
    expect(printableAuthority('example.com', 443)).toBe('example.com:443');
    expect(printableAuthority('::1', 443)).toBe('[::1]:443');
    expect(printableAuthority('a\r\nb', 443)).toBe('"a\\r\\nb":443');
    expect(printableAuthority('a b', 443)).toBe('"a b":443');
    expect(printableAuthority('h', '1\n2')).toBe('h:"1\\n2"');
    expect(printableAuthority('x'.repeat(500), 1)).toBe(`"${'x'.repeat(200)}…":1`);
  });
});
