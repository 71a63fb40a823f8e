import { describe, expect, it } from 'vitest';
import { parseProxy } from '../../src/proxy/parse.js';
import { redactUrl } from '../../src/proxy/redact.js';

const SECRET = 'Zq9xK-S3CR3T-wv7';

describe('redactUrl', () => {
  it.each([
    // Plain cases, every scheme.
    ['http://bob:hunter2@proxy:8080', 'http://bob:***@proxy:8080'],
    ['https://bob:hunter2@proxy', 'https://bob:***@proxy'],
    ['socks4a://bob:hunter2@proxy:1080', 'socks4a://bob:***@proxy:1080'],
    ['socks5h://bob:hunter2@127.0.0.1:1080', 'socks5h://bob:***@127.0.0.1:1080'],
    ['SOCKS5://Bob:Hunter2@Proxy:1080', 'SOCKS5://Bob:***@Proxy:1080'],
    ['postgres://app:pw@db:5432/app', 'postgres://app:***@db:5432/app'],
    ['http://bob:hunter2@[::1]:8080/', 'http://bob:***@[::1]:8080/'],
    // Inside arbitrary text.
    ['connect ECONNREFUSED via http://bob:hunter2@proxy:8080 (after 3 tries)', 'connect ECONNREFUSED via http://bob:***@proxy:8080 (after 3 tries)'],
    ['proxy "http://bob:hunter2@proxy:8080" failed', 'proxy "http://bob:***@proxy:8080" failed'],
    ["proxy 'http://bob:hunter2@proxy:8080', retrying", "proxy 'http://bob:***@proxy:8080', retrying"],
    ['<http://bob:hunter2@proxy:8080>', '<http://bob:***@proxy:8080>'],
    ['a http://u:p1@h1:1 and b socks5://v:p2@h2:2', 'a http://u:***@h1:1 and b socks5://v:***@h2:2'],
    ['line1\nhttp://u:p@h:1\nline3', 'line1\nhttp://u:***@h:1\nline3'],
    // Encoded and raw special characters in the password.
    ['http://bob:p%40ss%3Aw%2F%23@proxy:1', 'http://bob:***@proxy:1'],
    ['http://bob:p@ss@proxy:1', 'http://bob:***@proxy:1'],
    ['http://bob:p:a:ss@proxy:1', 'http://bob:***@proxy:1'],
    ['http://bob:p/ss#x?y@proxy:1', 'http://bob:***@proxy:1'],
    ['http://bob:p;s=s&t@proxy:1 ok', 'http://bob:***@proxy:1 ok'],
    // E-mail style user names keep the user, lose the password.
    ['http://john@corp.com:pw@proxy:1', 'http://john@corp.com:***@proxy:1'],
    ['http://:pw@proxy:1', 'http://:***@proxy:1'],
    // Nothing to redact.
    ['http://proxy:8080', 'http://proxy:8080'],
    ['http://bob@proxy:8080', 'http://bob@proxy:8080'],
    ['http://bob:@proxy:8080', 'http://bob:@proxy:8080'],
    ['https://registry.example/@scope/pkg', 'https://registry.example/@scope/pkg'],
    ['mailto:bob@example.com', 'mailto:bob@example.com'],
    ['bob:pw@host (no scheme)', 'bob:pw@host (no scheme)'],
    ['ratio 3:2 @ noon', 'ratio 3:2 @ noon'],
    ['', ''],
    // Idempotent on already redacted text.
    ['http://bob:***@proxy:8080', 'http://bob:***@proxy:8080'],
    // Over-redaction is the accepted failure mode: a port and path before a later "@".
    ['https://registry:443/@scope/pkg', 'https://registry:***@scope/pkg'],
    ['{"a":"http://u:p@h:1","b":"x@y"}', '{"a":"http://u:***@y"}'],
  ])('%j', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  it('scrubs the proxy URLs our endpoints produce, whatever the password holds', () => {
    const chars = ['@', ':', '%', ';', '=', '/', '#', '?', '&', "'", '"', 'é'];
    for (const ch of chars) {
      const password = `${SECRET}${ch}${SECRET}`;
      const e = parseProxy({ url: 'socks5://h:1080', username: `u${ch}`, password });
      const message = `Error: connect to ${e.toEnvUrl()} timed out`;
      const out = redactUrl(message);
      expect(out, ch).not.toContain(SECRET);
      expect(out).toBe(`Error: connect to ${e.url.replace('socks5://', 'socks5h://')} timed out`);
    }
  });

  it('leaves a raw password with spaces to the caller', () => {
    expect(redactUrl(`http://u:my ${SECRET}@h:1`)).toContain(SECRET);
  });

  it('also removes known secrets that no pattern can find', () => {
    const text = `vendor line h:1:u:${SECRET} and raw http://u:my ${SECRET}@h:1 and ${encodeURIComponent(`${SECRET} x`)}`;
    const out = redactUrl(text, [SECRET, `my ${SECRET}`, `${SECRET} x`, undefined, '']);
    expect(out).not.toContain(SECRET);
    expect(out).toBe('vendor line h:1:u:*** and raw http://u:***@h:1 and ***');
  });
});
