/**
 * The mock proxy against a client we did not write: Debian's curl. If curl
 * is missing the file is skipped with a message, except under CI, where a
 * missing curl is a failure (CI must exercise this).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const EGRESS = '127.0.0.9';
const USER = 'curl-user';
// Characters that need percent-encoding in a URL, so the encoding is tested too.
const PASSWORD = 'S3cr3t p@ss/word';
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD), Buffer.from(`${USER}:${PASSWORD}`).toString('base64')];

function curlAvailable(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

const hasCurl = curlAvailable();
const SKIP_MESSAGE = 'curl not found on PATH (install it: apt-get install -y curl)';

interface CurlResult {
  /** curl's exit code; -1 if it was killed by the timeout. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Proxy variables from the developer's shell must not reroute or bypass the proxy under test. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k) && k.toUpperCase() !== 'CURL_HOME'));
}

/**
 * Runs curl. Anything secret goes in `config` (curl's config syntax, read
 * from stdin with `-K -`), never in argv, so a failure message that quotes
 * the command line cannot print the password.
 */
function curl(args: string[], config = ''): Promise<CurlResult> {
  const argv = ['-q', '--silent', '--show-error', '--max-time', '10', '-K', '-', ...args];
  return new Promise<CurlResult>((resolve) => {
    const child = execFile('curl', argv, { timeout: 15_000, env: cleanEnv() }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(config);
  });
}

function expectNoSecrets(...outputs: string[]): void {
  for (const output of outputs) {
    for (const secret of SECRETS) expect(output.includes(secret), 'a test output contains the proxy password').toBe(false);
  }
}

/** Waits until the proxy has seen every tunnel close (curl is done, the proxy may be a moment behind). */
async function untilSettled(p: MockProxy): Promise<void> {
  for (let i = 0; i < 500 && p.log.some((e) => e.status === 'open'); i++) await new Promise((r) => setTimeout(r, 10));
}

if (!hasCurl && process.env.CI) {
  describe('mock proxy with curl', () => {
    it('needs curl when CI is set', () => {
      throw new Error(`${SKIP_MESSAGE}; CI must run this file`);
    });
  });
} else if (!hasCurl) {
  console.warn(`test/testing/curl.test.ts skipped: ${SKIP_MESSAGE}`);
}

describe.skipIf(!hasCurl)(hasCurl ? 'mock proxy with curl' : `mock proxy with curl (skipped: ${SKIP_MESSAGE})`, () => {
  let echo: EchoServer;
  let dir: string;
  let caFile: string;
  const proxies: MockProxy[] = [];
  const outputs: string[] = [];

  async function proxy(options: Parameters<typeof startMockProxy>[0] = {}): Promise<MockProxy> {
    const p = await startMockProxy({ egressIp: EGRESS, hosts: { 'echo.test': '127.0.0.1' }, ...options });
    proxies.push(p);
    return p;
  }

  async function run(args: string[], config?: string): Promise<CurlResult> {
    const result = await curl(args, config);
    outputs.push(result.stdout, result.stderr);
    return result;
  }

  beforeAll(async () => {
    echo = await startEchoServer();
    dir = await mkdtemp(join(tmpdir(), 'session-proxy-curl-'));
    caFile = join(dir, 'ca.pem');
    await writeFile(caFile, testCa);
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    expectNoSecrets(...outputs);
  });

  it('HTTP forward (-x http://) leaves from the egress IP', async () => {
    const p = await proxy();
    const result = await run(['-x', p.url, `${echo.httpUrl}/ip`]);
    expect(result).toMatchObject({ code: 0, stdout: EGRESS });
    expect(p.log[0]).toMatchObject({ protocol: 'http', targetHost: '127.0.0.1', targetPort: echo.httpPort, status: 'ok' });
  });

  it('HTTP forward with Basic credentials', async () => {
    const p = await proxy({ auth: { username: USER, password: PASSWORD } });
    const result = await run([`${echo.httpUrl}/ip`], `proxy = "${p.url}"\n`);
    expect(result).toMatchObject({ code: 0, stdout: EGRESS });
    expect(p.log[0]).toMatchObject({ protocol: 'http', username: USER, status: 'ok' });
  });

  it('CONNECT (-p) to an HTTP target and to an HTTPS target by name', async () => {
    const p = await proxy();
    const tunneled = await run(['-p', '-x', p.url, `${echo.httpUrl}/ip`]);
    expect(tunneled).toMatchObject({ code: 0, stdout: EGRESS });
    const secure = await run(['--cacert', caFile, '-x', p.url, `https://echo.test:${echo.httpsPort}/tls`]);
    expect(secure.code).toBe(0);
    expect(JSON.parse(secure.stdout)).toMatchObject({ ip: EGRESS, path: '/tls' });
    await untilSettled(p);
    expect(p.log.map((e) => [e.protocol, e.targetHost, e.status])).toEqual([
      ['connect', '127.0.0.1', 'ok'],
      ['connect', 'echo.test', 'ok'],
    ]);
  });

  it('SOCKS5 (--socks5) and SOCKS5 with credentials', async () => {
    const open = await proxy();
    const plain = await run(['--socks5', `${open.host}:${open.port}`, `${echo.httpUrl}/ip`]);
    expect(plain).toMatchObject({ code: 0, stdout: EGRESS });
    const withAuth = await proxy({ auth: { username: USER, password: PASSWORD } });
    const authed = await run([`${echo.httpUrl}/ip`], `proxy = "${withAuth.urlFor('socks5')}"\n`);
    expect(authed).toMatchObject({ code: 0, stdout: EGRESS });
    await untilSettled(open);
    await untilSettled(withAuth);
    expect(open.log[0]).toMatchObject({ protocol: 'socks5', targetHost: '127.0.0.1', status: 'ok' });
    expect(withAuth.log[0]).toMatchObject({ protocol: 'socks5', username: USER, status: 'ok' });
  });

  it('socks5h:// hands the hostname to the proxy, which resolves it', async () => {
    const p = await proxy();
    const result = await run(['-x', p.urlFor('socks5h'), `http://echo.test:${echo.httpPort}/ip`]);
    expect(result).toMatchObject({ code: 0, stdout: EGRESS });
    expect(p.log[0]).toMatchObject({ protocol: 'socks5', targetHost: 'echo.test', targetPort: echo.httpPort });
  });

  it('wrong credentials: 407 for HTTP forward and CONNECT, auth failure for SOCKS5', async () => {
    const p = await proxy({ auth: { username: USER, password: PASSWORD } });
    const requestsBefore = echo.requests.length;
    const wrong = (protocol: 'http' | 'socks5') => `proxy = "${protocol}://${USER}:not-${encodeURIComponent(PASSWORD)}@${p.host}:${p.port}"\n`;
    const forward = await run(['-o', '/dev/null', '-w', '%{http_code}', `${echo.httpUrl}/ip`], wrong('http'));
    expect(forward).toMatchObject({ code: 0, stdout: '407' });
    const tunnel = await run(['-p', '-o', '/dev/null', '-w', '%{http_connect}', `${echo.httpUrl}/ip`], wrong('http'));
    expect(tunnel.code).not.toBe(0); // 56 (CURLE_RECV_ERROR) on curl 7.88: the CONNECT got an error answer
    expect(tunnel.stdout).toBe('407');
    const socks = await run([`${echo.httpUrl}/ip`], wrong('socks5'));
    expect(socks.code).not.toBe(0);
    expect(socks.stderr).toMatch(/SOCKS5|rejected|auth/i);
    await untilSettled(p);
    expect(p.log.map((e) => [e.protocol, e.status])).toEqual([
      ['http', 'auth-failed'],
      ['connect', 'auth-failed'],
      ['socks5', 'auth-failed'],
    ]);
    expect(echo.requests.length).toBe(requestsBefore);
    expectNoSecrets(JSON.stringify(p.log));
  });
});
