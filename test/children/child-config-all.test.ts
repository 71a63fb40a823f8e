/**
 * What travels whole: `worker_threads` and `cluster.fork()` workers are the
 * app itself and get every account's configuration — a Worker through
 * worker environment data, never its `env`; a cluster worker through the
 * pointer — and `childConfig: 'all'` gives the same to every child process.
 * The environment still holds no password but the route's *_PROXY variables.
 */
import cluster from 'node:cluster';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, SessionProxyManager, loadConfig } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { REF, misplacedSecrets, needsDist, parseEnv, pointed, probe, runProbe, type ProbeResult } from './support.js';

const SECRETS = { default: 'all-dflt-Pw', alice: 'all-alice-Pw', bob: 'all-bob-Pw' };
let echo: EchoServer;
let dflt: MockProxy;
let alice: MockProxy;
let bob: MockProxy;
let manager: SessionProxyManager | undefined;

beforeAll(async () => {
  echo = await startEchoServer();
  dflt = await startMockProxy({ egressIp: '127.0.0.4', auth: { username: 'd', password: SECRETS.default } });
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: SECRETS.alice } });
  bob = await startMockProxy({ egressIp: '127.0.0.3', auth: { username: 'bob', password: SECRETS.bob } });
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo, dflt, alice, bob].map((s) => s?.close()));
});

const options = () => ({ proxy: dflt.url, accounts: { alice: alice.url, bob: bob.urlFor('socks5') }, noProxy: [] });
const install = async (extra: Record<string, unknown> = {}): Promise<SessionProxyManager> => {
  await manager?.uninstall();
  return (manager = new SessionProxyManager({ ...options(), ...extra }).install());
};
const ALL = ['default', 'alice', 'bob'];

const workerProbe = (base: string): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    const code = `const wt = require('node:worker_threads');
const out = { env: { ...process.env }, data: wt.getEnvironmentData('session-proxy.config.v1') ?? null };
fetch(${JSON.stringify(`${base}/worker`)}).then((r) => r.json()).then((j) => (out.fetchIp = j.ip), (e) => (out.fetchError = String(e)))
  .then(() => import('session-proxy')).then((sp) => { const m = sp.getManager(); out.account = m.currentAccount() ?? null; out.accounts = m.accountNames(); })
  .catch((e) => (out.error = String(e))).finally(() => wt.parentPort.postMessage(out));`;
    const w = new Worker(code, { eval: true });
    const timer = setTimeout(() => void w.terminate().then(() => reject(new Error('worker timed out'))), 20_000);
    w.once('message', (m: Record<string, unknown>) => {
      clearTimeout(timer);
      resolve(m);
      void w.terminate();
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });

describe.skipIf(needsDist)('Workers and cluster workers get the whole configuration, not through the environment', () => {
  it('a Worker created in alice’s scope runs in it, knows every account, and its env holds no configuration', async () => {
    const m = await install();
    const out = await m.withProxy('alice', () => workerProbe(echo.httpUrl));
    expect(out).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice', accounts: ALL, data: null });
    const env = out.env as Record<string, string>;
    expect(env.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    expect(env[REF]).toBeUndefined();
    expect(misplacedSecrets(env, 'alice', SECRETS)).toEqual([]);
    expect(env.HTTPS_PROXY).toContain(SECRETS.alice);
  }, 30_000);

  it('a Worker outside scopes uses the default proxy and knows every account', async () => {
    const m = await install();
    expect(m.installed).toBe(true);
    expect(await workerProbe(echo.httpUrl)).toMatchObject({ fetchIp: '127.0.0.4', account: null, accounts: ALL });
  }, 30_000);

  it('cluster.fork() (cluster loaded before install): the worker knows every account; its env holds the pointer, no other password', async () => {
    await install();
    cluster.setupPrimary({ exec: probe, args: [echo.httpUrl], silent: true });
    const worker = cluster.fork({ PROBE_ENV: '1' });
    let stdout = '';
    worker.process.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    await new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as ProbeResult & { env: Record<string, string> };
    expect(out).toMatchObject({ fetchIp: '127.0.0.4', httpIp: '127.0.0.4', account: null, accounts: ALL });
    expect(misplacedSecrets(out.env, 'default', SECRETS)).toEqual([]);
    expect(out.env.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    const file = pointed(out.env);
    expect(Object.keys(JSON.parse(file.text).accounts)).toEqual(['alice', 'bob']);
  }, 30_000);
});

describe.skipIf(needsDist)("childConfig: 'all'", () => {
  it('a child process in alice’s scope knows every account, runs in alice’s; its env holds alice’s proxy variables and the pointer only', async () => {
    const m = await install({ childConfig: 'all' });
    const r = await m.withProxy('alice', () => runProbe(echo.httpUrl, 'sh'));
    expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice', accounts: ALL });
    expect(r.grandchild).toMatchObject({ fetchIp: '127.0.0.2', account: 'alice', accounts: ALL });
    const env = m.withProxy('alice', () => parseEnv(spawnSync('env', { encoding: 'utf8' }).stdout));
    expect(misplacedSecrets(env, 'alice', SECRETS)).toEqual([]);
    const file = pointed(env);
    for (const secret of Object.values(SECRETS)) expect(file.text).toContain(secret);
    expect(file.fileMode.toString(8)).toBe('600');
  }, 60_000);

  it("is validated: in code and in a config file ('route' | 'all')", () => {
    expect(() => new SessionProxyManager({ ...options(), childConfig: 'some' as never })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ ...options(), childConfig: 'some' as never })).toThrow(/^childConfig: expected one of route, all, got "some"/);
    expect(() => loadConfig({ childConfig: 'x' as never }, {})).toThrow(/^childConfig: expected one of route, all/);
    expect(loadConfig({ childConfig: 'all' }, {}).childConfig).toBe('all');
  });
});
