/**
 * The preload, `session-proxy/register`, in real child processes (and Worker
 * threads) against mock proxies started here: each proxy binds its upstream
 * side to its own 127.0.0.x, so the echo server's answer tells which proxy a
 * request left through.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { registerEnvFor } from '../../src/children/child-env.js';
import { workerOptionsFor } from '../../src/children/worker.js';
import { cleanEnv, lastJson, needsDist, nodeMajor, root, run } from './support/run.js';

const PASSWORD = 'pr3load-S3cret';
const app = join(root, 'test/ecosystem/fixtures/preload-app.mjs');
const cjsApp = join(root, 'test/ecosystem/fixtures/preload-app.cjs');

let echo: EchoServer;
let alice: MockProxy;
let bob: MockProxy;
let fallback: MockProxy;
let dir: string;
let configFile: string;
const HOSTS = { 'echo.test': '127.0.0.1' };

beforeAll(async () => {
  echo = await startEchoServer();
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: PASSWORD }, hosts: HOSTS });
  bob = await startMockProxy({ egressIp: '127.0.0.3', hosts: HOSTS });
  fallback = await startMockProxy({ egressIp: '127.0.0.4', hosts: HOSTS });
  dir = mkdtempSync(join(tmpdir(), 'sp-preload-'));
  configFile = join(dir, 'proxies.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      proxy: fallback.url,
      accounts: { alice: `http://alice:\${ALICE_PASSWORD}@127.0.0.1:${alice.port}`, bob: bob.urlFor('socks5h') },
      noProxy: [],
    }),
  );
});

afterAll(async () => {
  await Promise.all([echo?.close(), alice?.close(), bob?.close(), fallback?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const configEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => cleanEnv({ SESSION_PROXY_CONFIG: configFile, ALICE_PASSWORD: PASSWORD, ...extra });

describe.skipIf(needsDist)('node --import / -r session-proxy/register', () => {
  it('--import installs the configured manager: unscoped traffic leaves through the default proxy', async () => {
    const r = await run(['--import', 'session-proxy/register', app, echo.httpUrl], { env: configEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.4', httpIp: '127.0.0.4', account: null, accounts: ['default', 'alice', 'bob'] });
  });

  it("the app's own install() fails with AlreadyInstalledError that points at getManager()", async () => {
    const r = await run(['--import', 'session-proxy/register', app, echo.httpUrl], { env: configEnv() });
    const out = lastJson<{ install: string; installMessage: string }>(r);
    expect(out.install).toBe('AlreadyInstalledError');
    // It names the preload, as the user started it, and the configuration it read.
    expect(out.installMessage).toMatch(/^the session-proxy\/register preload \(node --import session-proxy\/register, configured from config file \S*proxies\.json\) already installed this process's SessionProxyManager; use getManager\(\)/);
  });

  it('-r with SESSION_PROXY_ACCOUNT runs the whole app in that account’s scope (ESM and CommonJS apps)', async () => {
    const esm = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'alice' }) });
    expect(esm.code, esm.stderr).toBe(0);
    expect(lastJson(esm)).toMatchObject({ fetchIp: '127.0.0.2', httpIp: '127.0.0.2', account: 'alice' });
    const cjs = await run(['-r', 'session-proxy/register', cjsApp, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'bob' }) });
    expect(cjs.code, cjs.stderr).toBe(0);
    expect(lastJson(cjs)).toEqual({ httpIp: '127.0.0.3', account: 'bob' });
    expect(alice.log.some((e) => e.username === 'alice' && e.status !== 'auth-failed')).toBe(true);
  });

  it.runIf(nodeMajor < 24)('--import with SESSION_PROXY_ACCOUNT scopes the app (Node < 24)', async () => {
    const r = await run(['--import', 'session-proxy/register', app, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'bob' }) });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.3', httpIp: '127.0.0.3', account: 'bob' });
  });

  it.runIf(nodeMajor >= 24)('--import with SESSION_PROXY_ACCOUNT refuses to start on Node 24+ (it could not scope the app) and says to use -r', async () => {
    const r = await run(['--import', 'session-proxy/register', app, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'bob' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SESSION_PROXY_ACCOUNT needs the CommonJS preload .* node -r session-proxy\/register/);
    expect(r.stdout).toBe('');
  });

  it('SESSION_PROXY_URL / HTTPS_PROXY / GLOBAL_AGENT_HTTP_PROXY alone configure the default proxy', async () => {
    const target = `http://echo.test:${echo.httpPort}`;
    for (const [name, ip, proxy] of [
      ['SESSION_PROXY_URL', '127.0.0.4', fallback],
      ['HTTPS_PROXY', '127.0.0.3', bob],
      ['GLOBAL_AGENT_HTTP_PROXY', '127.0.0.4', fallback],
    ] as const) {
      const r = await run(['--import', 'session-proxy/register', app, target], { env: cleanEnv({ [name]: proxy.url }) });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(lastJson(r), name).toMatchObject({ fetchIp: ip, httpIp: ip, accounts: ['default'] });
    }
  });

  it('with nothing configured: one warning line on stderr, nothing installed, the app runs', async () => {
    const r = await run(['--import', 'session-proxy/register', app, echo.httpUrl], { env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^session-proxy: no proxy configured .*nothing installed/)]);
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.1', manager: 'SP_ERR_NOT_INSTALLED', install: 'installed' });
  });

  it('an invalid configuration stops the app with a one-line ConfigError naming the key, without the password', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ accounts: { alice: [`http://u:\${ALICE_PASSWORD}@127.0.0.1:1`, `ftp://u:\${ALICE_PASSWORD}@127.0.0.1:21`] } }));
    for (const flag of ['--import', '-r']) {
      const r = await run([flag, 'session-proxy/register', app, echo.httpUrl], { env: cleanEnv({ SESSION_PROXY_CONFIG: bad, ALICE_PASSWORD: PASSWORD }) });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^session-proxy\/register: ConfigError: accounts\.alice\[1\]: unsupported proxy scheme "ftp"/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toContain(PASSWORD);
    }
  });

  it('an unknown SESSION_PROXY_ACCOUNT is an error naming the configured ones', async () => {
    const r = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'mallory' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SESSION_PROXY_ACCOUNT: unknown account "mallory" \(configured: "default", "alice", "bob"\)/);
  });

  it('DEBUG=session-proxy* / NODE_DEBUG=session-proxy log events to stderr, passwords masked', async () => {
    for (const debug of [{ DEBUG: 'session-proxy*' }, { NODE_DEBUG: 'net,session-proxy' }]) {
      const r = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env: configEnv({ SESSION_PROXY_ACCOUNT: 'alice', ...debug }) });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^session-proxy:route alice → http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ \(\w+\) 127\.0\.0\.1:\d+/m);
      expect(r.stderr).not.toContain(PASSWORD);
      expect(r.stderr).not.toContain(encodeURIComponent(PASSWORD));
    }
  });
});

describe.skipIf(needsDist)('registerEnvFor / workerOptionsFor: children and Workers of a scope', () => {
  const options = () => ({ accounts: { alice: `http://alice:${PASSWORD}@127.0.0.1:${alice.port}`, bob: bob.urlFor('socks5') }, noProxy: [] });

  it('a plain `node app` child with registerEnvFor(account) runs in that account’s scope, knowing only that account', async () => {
    for (const [account, ip] of [['alice', '127.0.0.2'], ['bob', '127.0.0.3']] as const) {
      const env = registerEnvFor(account, options(), cleanEnv({ NODE_OPTIONS: '--no-warnings' }));
      const r = await run([app, echo.httpUrl], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(lastJson(r)).toMatchObject({ fetchIp: ip, httpIp: ip, account, accounts: [account], env: { account } });
    }
    const all = registerEnvFor('alice', options(), cleanEnv(), { childConfig: 'all' });
    const r = await run([app, echo.httpUrl], { env: all });
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice', accounts: ['alice', 'bob'] });
  });

  it('registerEnvFor(undefined) carries the default route’s configuration, without a scope', async () => {
    const env = registerEnvFor(undefined, { ...options(), proxy: fallback.url }, cleanEnv());
    const r = await run([app, echo.httpUrl], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.4', account: null, accounts: ['default'] });
  });

  it('a child started with its own --import of the preload still runs it once', async () => {
    const env = registerEnvFor('alice', options(), cleanEnv());
    const r = await run(['-r', 'session-proxy/register', '--import', 'session-proxy/register', app, echo.httpUrl], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice', install: 'AlreadyInstalledError' });
  });

  const runWorker = (code: string | URL, workerOptions: ConstructorParameters<typeof Worker>[1]): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(code, workerOptions);
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error('worker timed out'));
      }, 15_000);
      worker.once('message', (m) => {
        clearTimeout(timer);
        resolve(m as Record<string, unknown>);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      worker.once('exit', (c) => {
        clearTimeout(timer);
        reject(new Error(`worker exited with ${c} before answering`));
      });
    });

  it('a Worker started with workerOptionsFor(account) runs in that account’s scope', async () => {
    const out = await runWorker(new URL(`file://${app}`), workerOptionsFor('bob', { workerData: { base: echo.httpUrl } }, options()));
    expect(out).toMatchObject({ fetchIp: '127.0.0.3', httpIp: '127.0.0.3', account: 'bob', accounts: ['alice', 'bob'] });
  });

  it('an eval Worker too (it runs --require preloads, not --import ones)', async () => {
    const code = `import(${JSON.stringify(`file://${app}`)})`;
    const out = await runWorker(code, workerOptionsFor('alice', { eval: true, workerData: { base: echo.httpUrl } }, options()));
    expect(out).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice' });
  });
});
