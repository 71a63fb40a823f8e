/**
 * What a child process receives (`childConfig: 'route'`, the default): its
 * environment holds no password but its own route's *_PROXY variables, and a
 * pointer to a 0600 file with its route's configuration only — alice's pool
 * inside alice's scope, the default pool outside scopes. Node children and
 * grandchildren (through sh, or through a Node child) follow the pointer and
 * egress through their route's proxy, the echo server says which.
 */
import { execFileSync, execSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { REF, misplacedSecrets, needsDist, parseEnv, pointed, runProbe } from './support.js';

const SECRETS = { default: 'dflt-Pw-7q', alice: 'alice-Pw-3x', bob: 'bob-Pw-9z', carol: 'carol-Pw-5k' };
let echo: EchoServer;
let dflt: MockProxy;
let alice: MockProxy;
let alice2: MockProxy;
let bob: MockProxy;
let carol: MockProxy;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer();
  dflt = await startMockProxy({ egressIp: '127.0.0.4', auth: { username: 'd', password: SECRETS.default } });
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: SECRETS.alice } });
  alice2 = await startMockProxy({ egressIp: '127.0.0.5', auth: { username: 'alice', password: SECRETS.alice } });
  bob = await startMockProxy({ egressIp: '127.0.0.3', auth: { username: 'bob', password: SECRETS.bob } });
  carol = await startMockProxy({ egressIp: '127.0.0.6', auth: { username: 'carol', password: SECRETS.carol } });
  manager = new SessionProxyManager({ proxy: dflt.url, accounts: { alice: [alice.url, alice2.url], bob: bob.urlFor('socks5') }, noProxy: [] }).install();
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo, dflt, alice, alice2, bob, carol].map((s) => s?.close()));
});

const rawEnv = (run: () => string): Record<string, string> => parseEnv(run());

describe.skipIf(needsDist)('a child’s environment holds no other route’s password', () => {
  const spawners: [string, () => string][] = [
    ['spawnSync env', () => spawnSync('env', { encoding: 'utf8' }).stdout],
    ['execSync env (sh -c)', () => execSync('env', { encoding: 'utf8' })],
    ['execFileSync sh -c env', () => execFileSync('sh', ['-c', 'env'], { encoding: 'utf8', env: { ...process.env, KEEP: '1' } })],
  ];

  it.each(spawners)('%s outside any scope: only the default route’s proxy variables carry a password; the pointer is there', (_, run) => {
    const env = rawEnv(run);
    expect(misplacedSecrets(env, 'default', SECRETS)).toEqual([]);
    expect(env.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    expect(env.HTTPS_PROXY).toContain(SECRETS.default);
    expect(env[REF]).toMatch(/^\//);
  });

  it.each(spawners)('%s in alice’s scope: only alice’s proxy variables carry a password', (_, run) => {
    const env = manager.withProxy('alice', () => rawEnv(run));
    expect(misplacedSecrets(env, 'alice', SECRETS)).toEqual([]);
    expect(env.HTTPS_PROXY).toContain(SECRETS.alice);
    expect(env.SESSION_PROXY_ACCOUNT).toBe('alice');
    expect(env[REF]).toMatch(/^\//);
  });

  it('variables naming the default proxy to this library and global-agent name alice’s proxy in her scope; an inherited SESSION_PROXY_CONFIG_JSON is dropped', () => {
    const saved = { ...process.env };
    Object.assign(process.env, { SESSION_PROXY_URL: dflt.url, GLOBAL_AGENT_HTTP_PROXY: dflt.url, SESSION_PROXY_CONFIG_JSON: JSON.stringify({ proxy: dflt.url }) });
    try {
      const inside = manager.withProxy('alice', () => rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout));
      expect(misplacedSecrets(inside, 'alice', SECRETS).filter((m) => !/^(SESSION_PROXY_URL|GLOBAL_AGENT_HTTP_PROXY) /.test(m))).toEqual([]);
      expect(inside.SESSION_PROXY_URL).toBe(inside.HTTP_PROXY);
      expect(inside.GLOBAL_AGENT_HTTP_PROXY).toBe(inside.HTTP_PROXY);
      expect(inside.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
      expect(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout).SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    } finally {
      for (const k of ['SESSION_PROXY_URL', 'GLOBAL_AGENT_HTTP_PROXY', 'SESSION_PROXY_CONFIG_JSON']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('an inherited SESSION_PROXY_STORE (the fleet’s Redis URL, maybe with its password) is dropped; a caller’s own is kept', () => {
    const saved = process.env.SESSION_PROXY_STORE;
    process.env.SESSION_PROXY_STORE = 'redis://:redis-Pw-8v@127.0.0.1:6379';
    try {
      for (const run of [() => spawnSync('env', { encoding: 'utf8' }).stdout, () => execSync('env', { encoding: 'utf8' })]) {
        expect(rawEnv(run).SESSION_PROXY_STORE).toBeUndefined();
        expect(manager.withProxy('alice', () => rawEnv(run)).SESSION_PROXY_STORE).toBeUndefined();
      }
      const own = 'redis://127.0.0.1:6390';
      expect(rawEnv(() => spawnSync('env', { encoding: 'utf8', env: { ...process.env, SESSION_PROXY_STORE: own } }).stdout).SESSION_PROXY_STORE).toBe(own);
    } finally {
      if (saved === undefined) delete process.env.SESSION_PROXY_STORE;
      else process.env.SESSION_PROXY_STORE = saved;
    }
  });

  it('the pointer refers to a 0600 file in a 0700 directory holding the route’s configuration only', () => {
    const outside = pointed(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout));
    const inside = manager.withProxy('alice', () => pointed(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout)));
    for (const p of [outside, inside]) {
      expect(p.fileMode.toString(8)).toBe('600');
      expect(p.dirMode.toString(8)).toBe('700');
    }
    expect(outside.text).toContain(SECRETS.default);
    expect(outside.text).not.toContain(SECRETS.alice);
    expect(outside.text).not.toContain(SECRETS.bob);
    expect(inside.text).toContain(SECRETS.alice);
    expect(inside.text).not.toContain(SECRETS.default);
    expect(inside.text).not.toContain(SECRETS.bob);
    expect(Object.keys(JSON.parse(inside.text).accounts)).toEqual(['alice']);
    // Written once per distinct configuration.
    expect(pointed(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout)).path).toBe(outside.path);
  });
});

describe.skipIf(needsDist)('Node children and grandchildren follow the pointer to their route', () => {
  it('in alice’s scope: a Node child and its grandchildren (through a Node child, through sh) leave from alice’s proxy, knowing only alice', async () => {
    for (const via of ['node', 'sh'] as const) {
      const r = await manager.withProxy('alice', () => runProbe(echo.httpUrl, via));
      expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.2', httpIp: '127.0.0.2', account: 'alice', accounts: ['alice'] });
      expect(r.grandchild, via).toMatchObject({ fetchIp: '127.0.0.2', httpIp: '127.0.0.2', account: 'alice', accounts: ['alice'] });
    }
    expect(bob.log).toEqual([]);
  }, 60_000);

  it('outside scopes: the child and its grandchildren leave from the default proxy, knowing only the default pool', async () => {
    for (const via of ['node', 'sh'] as const) {
      const r = await runProbe(echo.httpUrl, via);
      expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.4', httpIp: '127.0.0.4', account: null, accounts: ['default'] });
      expect(r.grandchild, via).toMatchObject({ fetchIp: '127.0.0.4', httpIp: '127.0.0.4', account: null, accounts: ['default'] });
    }
  }, 60_000);

  it('a child gets the current route: after rotate() and setAccount()', async () => {
    const before = manager.withProxy('alice', () => pointed(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout)).path);
    await manager.rotate('alice');
    try {
      const r = await manager.withProxy('alice', () => runProbe(echo.httpUrl));
      expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.5', account: 'alice' });
      expect(manager.withProxy('alice', () => pointed(rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout)).path)).not.toBe(before);
    } finally {
      await manager.rotate('alice');
    }
    manager.setAccount('carol', carol.url);
    const r = await manager.withProxy('carol', () => runProbe(echo.httpUrl));
    expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.6', account: 'carol', accounts: ['carol'] });
    const env = manager.withProxy('carol', () => rawEnv(() => spawnSync('env', { encoding: 'utf8' }).stdout));
    expect(misplacedSecrets(env, 'carol', SECRETS)).toEqual([]);
  }, 60_000);
});
