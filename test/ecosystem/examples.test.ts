/**
 * Every example runs offline against dist/ (child process, bounded) and
 * prints what it promises.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, needsDist, root, run } from './support/run.js';

const example = (name: string) => run([join(root, 'examples', name, 'index.mjs')], { env: cleanEnv(), timeoutMs: 30_000 });

describe.skipIf(needsDist)('examples', () => {
  it('npm run demo: two accounts, each request from its own proxy, the rotation, no direct connection', async () => {
    const r = await run([join(root, 'examples', 'demo.mjs')], { env: cleanEnv(), timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => l.includes("'alice'") || l.includes("'bob'"));
    // alice and bob concurrently (fetch, http.request, ws), then alice after rotate().
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/'alice'.*'127\.0\.0\.2'.*'127\.0\.0\.2'.*'127\.0\.0\.2'/);
    expect(rows[1]).toMatch(/'bob'.*'127\.0\.0\.3'.*'127\.0\.0\.3'.*'127\.0\.0\.3'/);
    expect(rows[2]).toMatch(/'alice'.*'127\.0\.0\.4'.*'127\.0\.0\.4'.*'127\.0\.0\.4'/);
    expect(r.stdout).toContain('(a leak): 0');
    expect(r.stdout).not.toContain('demo-secret');
  });

  it('trading-bot: two ccxt accounts, one egress IP each', async () => {
    const r = await example('trading-bot');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^alice via socks5h:\/\/alice:\*\*\*@127\.0\.0\.1:\d+: BTC\/USDT last 50000, exchange saw 127\.0\.0\.2$/m);
    expect(r.stdout).toMatch(/^bob\s+via http:\/\/127\.0\.0\.1:\d+: BTC\/USDT last 50000, exchange saw 127\.0\.0\.3$/m);
    expect(r.stdout).toMatch(/one IP per account$/m);
    expect(r.stdout).not.toContain('alice-secret');
  }, 40_000);

  it('rotate-on-429: alice is rotated off the rate-limited IP and retried', async () => {
    const r = await example('rotate-on-429');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'alice: rate limited (DDoSProtection) on attempt 1, rotating',
      expect.stringMatching(/^alice: rotated http:\/\/127\.0\.0\.1:\d+ → socks5h:\/\/127\.0\.0\.1:\d+ \(manual\)$/),
      'alice: BTC/USDT last 50000, served to 127.0.0.4',
      'bob: BTC/USDT last 50000, served to 127.0.0.3',
      '429s: alice@127.0.0.2',
    ]);
  }, 40_000);

  it('preload: an app with no proxy code, routed by --import / -r and SESSION_PROXY_ACCOUNT', async () => {
    const r = await example('preload');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['unscoped (--import):  egress 127.0.0.4', 'alice (-r + account): egress 127.0.0.2', 'bob (-r + account):   egress 127.0.0.3']);
    expect(r.stderr).toBe('');
  }, 40_000);
});
