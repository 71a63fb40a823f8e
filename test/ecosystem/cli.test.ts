/**
 * The built CLI (node dist/cli.mjs …) against mock proxies and the echo
 * server's /ip endpoint: table content, --json shape, exit codes, and that
 * no password ever appears in check/verify output.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { progress, table } from '../../src/cli/output.js';
import { shellQuote } from '../../src/cli/env.js';
import { parseArgs } from '../../src/cli/args.js';
import { cleanEnv, needsDist, root, run, type RunResult } from './support/run.js';

const PASSWORD = "cl1-Pa55'word";
const cli = join(root, 'dist/cli.mjs');

let echo: EchoServer;
let alice: MockProxy;
let bob: MockProxy;
let carol: MockProxy;
let dir: string;
let endpoint: string;

beforeAll(async () => {
  echo = await startEchoServer();
  endpoint = `${echo.httpUrl}/ip`;
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: PASSWORD } });
  bob = await startMockProxy({ egressIp: '127.0.0.3' });
  carol = await startMockProxy({ egressIp: '127.0.0.3' });
  dir = mkdtempSync(join(tmpdir(), 'sp-cli-'));
});

afterAll(async () => {
  await Promise.all([echo?.close(), alice?.close(), bob?.close(), carol?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const sp = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<RunResult> => run([cli, ...args], { env: cleanEnv(env), input, timeoutMs: 20_000 });

function noSecrets(r: RunResult): void {
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(encodeURIComponent(PASSWORD));
  }
}

describe.skipIf(needsDist)('session-proxy check', () => {
  it('checks a list file: table with redacted proxy, protocol, egress IP, latency, status; exit 1 on any failure', async () => {
    const list = join(dir, 'list.txt');
    writeFileSync(
      list,
      [
        '# vendor list',
        alice.urlFor('http'),
        `127.0.0.1:${bob.port}`,
        `127.0.0.1:${alice.port}:alice:${PASSWORD}`,
        `socks5h://alice:${encodeURIComponent(PASSWORD)}@127.0.0.1:${alice.port}`,
        `http://alice:wrong-password@127.0.0.1:${alice.port}`,
        'http://127.0.0.1:1',
        `not a proxy:${PASSWORD}`,
        '',
      ].join('\n'),
    );
    const r = await sp(['check', list, '--endpoint', endpoint, '--timeout', '3000']);
    noSecrets(r);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^PROXY\s+PROTOCOL\s+EGRESS IP\s+LATENCY\s+STATUS$/);
    const row = (i: number): string[] => lines[2 + i]!.trim().split(/\s{2,}/);
    expect(row(0)).toEqual([`http://alice:***@127.0.0.1:${alice.port}`, 'http', '127.0.0.2', expect.stringMatching(/^\d+ ms$/), 'ok']);
    expect(row(1)).toEqual([`http://127.0.0.1:${bob.port}`, 'http', '127.0.0.3', expect.stringMatching(/^\d+ ms$/), 'ok']);
    expect(row(2)).toEqual([`http://alice:***@127.0.0.1:${alice.port}`, 'http', '127.0.0.2', expect.stringMatching(/ ms$/), 'ok']);
    expect(row(3)).toEqual([`socks5h://alice:***@127.0.0.1:${alice.port}`, 'socks5h', '127.0.0.2', expect.stringMatching(/ ms$/), 'ok']);
    expect(row(4)).toEqual([`http://alice:***@127.0.0.1:${alice.port}`, 'http', '-', '-', 'auth-failed']);
    expect(row(5)).toEqual(['http://127.0.0.1:1', 'http', '-', '-', 'unreachable']);
    expect(row(6)!.at(-1)).toBe('invalid');
    expect(r.stdout).toContain('7 proxies: 4 ok, 3 failed');
    expect(r.stdout).toMatch(/list\.txt:6\): proxy answered CONNECT with 407/);
    // The failure lines say what the user gave: a proxy, no account (before: `account "check"`), the proxy once.
    expect(r.stdout).not.toMatch(/account "/);
    const failures = r.stdout.slice(r.stdout.indexOf('Failures:')).split('\n').slice(1).filter(Boolean);
    expect(failures).toHaveLength(3);
    for (const line of failures) {
      const shown = line.trim().slice(0, line.trim().indexOf(' ('));
      expect(line.split(shown).length - 1, line).toBe(1);
    }
  });

  it('--json: one result per proxy and a summary; exit 0 when all work', async () => {
    const r = await sp(['check', alice.urlFor('socks5h'), bob.url, '--endpoint', endpoint, '--json', '--concurrency', '1']);
    noSecrets(r);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.summary).toEqual({ total: 2, ok: 2, failed: 0 });
    expect(out.results).toEqual([
      expect.objectContaining({ source: 'arg 1', proxy: `socks5h://alice:***@127.0.0.1:${alice.port}`, protocol: 'socks5h', host: '127.0.0.1', port: alice.port, ok: true, status: 'ok', ip: '127.0.0.2', endpoint, error: null, latencyMs: expect.any(Number) }),
      expect.objectContaining({ source: 'arg 2', proxy: bob.url, protocol: 'http', ok: true, ip: '127.0.0.3' }),
    ]);
    expect(r.stderr).toBe('');
  });

  it('reads a list from stdin with "-", and --protocol sets the scheme of host:port lines', async () => {
    const r = await sp(['check', '-', '--endpoint', endpoint, '--protocol', 'socks5', '--json'], {}, `127.0.0.1:${bob.port}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).results[0]).toMatchObject({ protocol: 'socks5', ip: '127.0.0.3' });
  });

  it('--ca trusts a private CA for https endpoints', async () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, echo.ca);
    const https = `${echo.httpsUrl}/ip`;
    const ok = await sp(['check', bob.url, '--endpoint', https, '--ca', ca, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).results[0]).toMatchObject({ ip: '127.0.0.3', endpoint: https });
    const untrusted = await sp(['check', bob.url, '--endpoint', https, '--json']);
    expect(untrusted.code).toBe(1);
    expect(JSON.parse(untrusted.stdout).results[0].error).toMatch(/certificate/i);
  });

  it('a timeout is reported as such', async () => {
    bob.faults.stall(true);
    try {
      const r = await sp(['check', bob.url, '--endpoint', endpoint, '--timeout', '300', '--json']);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).results[0]).toMatchObject({ ok: false, status: 'timeout' });
    } finally {
      bob.faults.stall(false);
    }
  });

  it('usage errors exit 2', async () => {
    for (const args of [['check'], ['check', '--bogus'], ['check', bob.url, '--concurrency', 'x'], ['check', bob.url, '--endpoint', 'ftp://x'], ['check', './missing.txt'], ['check', `ftp://u:${PASSWORD}@h:1`], ['nope']]) {
      const r = await sp(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      noSecrets(r);
    }
  });
});

describe.skipIf(needsDist)('session-proxy verify', () => {
  const config = (accounts: Record<string, string | string[]>, extra: object = {}): string => {
    const file = join(dir, `verify-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({ accounts, ...extra }));
    return file;
  };

  it('verifies every account and exits 0 when all egress IPs differ', async () => {
    const file = config({ alice: `http://alice:\${ALICE_PASSWORD}@127.0.0.1:${alice.port}`, bob: bob.urlFor('socks5h') });
    const r = await sp(['verify', '--config', file, '--endpoint', endpoint], { ALICE_PASSWORD: PASSWORD });
    noSecrets(r);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^ACCOUNT\s+PROXY\s+PROTOCOL\s+EGRESS IP\s+LATENCY\s+STATUS$/);
    expect(lines[2]!.split(/\s{2,}/)).toEqual(['alice', `http://alice:***@127.0.0.1:${alice.port}`, 'http', '127.0.0.2', expect.stringMatching(/ ms$/), 'ok']);
    expect(lines[3]!.split(/\s{2,}/)).toEqual(['bob', `socks5h://127.0.0.1:${bob.port}`, 'socks5h', '127.0.0.3', expect.stringMatching(/ ms$/), 'ok']);
    expect(r.stdout).toContain('2 accounts: 2 ok, 0 failed, 0 shared IPs');
  });

  it('flags accounts egressing from the same IP, and failures; exit 1; --json', async () => {
    const file = config({ alice: `http://alice:${encodeURIComponent(PASSWORD)}@127.0.0.1:${alice.port}`, bob: bob.url, carol: carol.url, dave: 'http://127.0.0.1:1' }, { proxy: `http://alice:nope@127.0.0.1:${alice.port}` });
    const text = await sp(['verify', '-c', file, '--endpoint', endpoint]);
    noSecrets(text);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^bob .*127\.0\.0\.3 .*duplicate \(same IP as carol\)$/m);
    expect(text.stdout).toMatch(/^carol .*duplicate \(same IP as bob\)$/m);
    expect(text.stdout).toMatch(/^default .*auth-failed$/m);
    expect(text.stdout).toMatch(/^dave .*unreachable$/m);
    expect(text.stdout).toContain('127.0.0.3 is the egress of bob, carol');

    const json = await sp(['verify', '-c', file, '--endpoint', endpoint, '--json']);
    noSecrets(json);
    expect(json.code).toBe(1);
    const out = JSON.parse(json.stdout);
    expect(out.duplicates).toEqual([{ ip: '127.0.0.3', accounts: ['bob', 'carol'] }]);
    expect(out.summary).toEqual({ total: 5, ok: 1, failed: 2, duplicates: 1 });
    expect(out.accounts.map((a: { account: string; status: string }) => [a.account, a.status])).toEqual([
      ['default', 'auth-failed'],
      ['alice', 'ok'],
      ['bob', 'duplicate'],
      ['carol', 'duplicate'],
      ['dave', 'unreachable'],
    ]);
    // The API's name (verifyAll() rows), not `sharesIpWith`.
    expect(out.accounts[2]).toMatchObject({ ip: '127.0.0.3', sameIpAs: ['carol'], ok: false });
    expect(out.accounts[2]).not.toHaveProperty('sharesIpWith');
    // A failure line names the account and proxy once, at its start.
    const failure = text.stdout.split('\n').find((l) => l.startsWith('  default '))!;
    expect(failure).toMatch(/^  default http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+: proxy answered CONNECT with 407/);
    expect(failure).not.toMatch(/account "|proxy http/);
  });

  it('picks each account’s active proxy as the manager does (exclusive: the first one not already held)', async () => {
    const aliceUrl = `http://alice:${encodeURIComponent(PASSWORD)}@127.0.0.1:${alice.port}`;
    const exclusive = await sp(['verify', '-c', config({ first: bob.url, second: [bob.url, aliceUrl] }), '--endpoint', endpoint, '--json']);
    expect(exclusive.code, exclusive.stdout).toBe(0);
    expect(JSON.parse(exclusive.stdout).accounts.map((a: { ip: string }) => a.ip)).toEqual(['127.0.0.3', '127.0.0.2']);
    const shared = await sp(['verify', '-c', config({ first: bob.url, second: [bob.url, aliceUrl] }, { exclusive: false }), '--endpoint', endpoint, '--json']);
    expect(shared.code).toBe(1);
    expect(JSON.parse(shared.stdout).duplicates).toEqual([{ ip: '127.0.0.3', accounts: ['first', 'second'] }]);
  });

  it('a config error exits 2 with the key path and no password', async () => {
    const file = config({ alice: `ftp://u:${encodeURIComponent(PASSWORD)}@127.0.0.1:21` });
    const r = await sp(['verify', '--config', file, '--endpoint', endpoint]);
    noSecrets(r);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ConfigError: accounts\.alice: unsupported proxy scheme "ftp"/);
    const missing = await sp(['verify', '--endpoint', endpoint]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/verify needs --config FILE/);
  });
});

describe.skipIf(needsDist)('session-proxy env', () => {
  it('prints single-quoted export lines for the account’s proxy and NO_PROXY', async () => {
    const file = join(dir, 'env.json');
    writeFileSync(file, JSON.stringify({ proxy: bob.url, accounts: { alice: [`http://alice:\${P}@127.0.0.1:${alice.port}`, bob.url] }, noProxy: ['.internal.test', '10.0.0.0/8'] }));
    const r = await sp(['env', 'alice', '--config', file], { P: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    const url = `http://alice:${encodeURIComponent(PASSWORD)}@127.0.0.1:${alice.port}`;
    expect(r.stdout.trim().split('\n')).toEqual([
      ...['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'].map((v) => `export ${v}=${shellQuote(url)}`),
      "export NO_PROXY='internal.test,10.0.0.0/8'",
      "export no_proxy='internal.test,10.0.0.0/8'",
    ]);
    // The shell reads back exactly the URL.
    const sh = await import('node:child_process');
    const echoed = sh.execFileSync('sh', ['-c', `${r.stdout}\nprintf %s "$HTTPS_PROXY"`], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(echoed).toBe(url);
    const dflt = await sp(['env', 'default', '--config', file], { P: PASSWORD });
    expect(dflt.stdout).toContain(`export HTTP_PROXY=${shellQuote(bob.url)}`);
    const unknown = await sp(['env', 'mallory', '--config', file], { P: PASSWORD });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown account "mallory" \(configured: "default", "alice"\)/);
  });
});

describe.skipIf(needsDist)('--help', () => {
  it.each([[['--help']], [['help']], [['check', '--help']], [['verify', '-h']], [['env', '--help']], [['help', 'check']]])('%j prints usage and exits 0', async (args) => {
    const r = await sp(args);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: session-proxy/);
  });
  it('no command prints usage and exits 2; --version prints the version', async () => {
    const r = await sp([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^Usage: session-proxy <command>/);
    const v = await sp(['--version']);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('output helpers', () => {
  it('table pads columns', () => {
    expect(table(['A', 'BB'], [['xxx', 'y']])).toBe('A    BB\n---  --\nxxx  y');
  });
  it('the progress bar draws only on a TTY and for long lists', () => {
    const writes: string[] = [];
    const tty = { isTTY: true, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const bar = progress(5, tty);
    for (let i = 0; i < 5; i++) bar.tick(i !== 2);
    bar.done();
    expect(writes.at(-2)).toBe(`\r[${'#'.repeat(30)}] 5/5  failed 1`);
    expect(writes.at(-1)).toBe('\r\x1b[K');
    const none: string[] = [];
    progress(5, { isTTY: false, write: (s: string) => none.push(s) } as unknown as NodeJS.WriteStream).tick(true);
    progress(2, { isTTY: true, write: (s: string) => none.push(s) } as unknown as NodeJS.WriteStream).tick(true);
    expect(none).toEqual([]);
  });
  it('shellQuote survives quotes', () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
  it('parseArgs', () => {
    expect(parseArgs(['x', '--endpoint=a', '--endpoint', 'b', '--json', '--', '--y'], { endpoint: 'strings', json: 'boolean' })).toEqual({ positionals: ['x', '--y'], flags: { endpoint: ['a', 'b'], json: true } });
  });
});
