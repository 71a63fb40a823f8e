/**
 * 10,000 configured accounts: programs that need no configuration (`true`,
 * `git --version`, sh) spawn as usual, in and outside scopes, by every
 * spawner; a Node child in one account's scope egresses through that
 * account's proxy; a Worker still starts. Prints the spawn overhead.
 */
import { execFile, execFileSync, execSync, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { needsDist, runProbe } from './support.js';

const N = 10_000;
const ONE = 'acct-4242';
let echo: EchoServer;
let dflt: MockProxy;
let mine: MockProxy;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer();
  dflt = await startMockProxy({ egressIp: '127.0.0.4' });
  mine = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'u', password: 'scale-Pw' } });
  const accounts: Record<string, string> = {};
  for (let i = 0; i < N; i++) accounts[`acct-${i}`] = `http://u${i}:pw-${i}-secret@10.${(i >> 8) & 255}.${i & 255}.1:8080`;
  accounts[ONE] = mine.url;
  manager = new SessionProxyManager({ proxy: dflt.url, accounts, noProxy: [] }).install();
}, 60_000);
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo, dflt, mine].map((s) => s?.close()));
});

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (n: number, fn: () => void): number => {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
};

describe.skipIf(needsDist)(`${N.toLocaleString('en')} accounts`, () => {
  it('unrelated programs spawn by every spawner, outside and inside a scope', async () => {
    for (const scope of [undefined, ONE]) {
      const run = <T>(fn: () => T): T => (scope ? manager.withProxy(scope, fn) : fn());
      expect(run(() => execFileSync('true', { encoding: 'utf8' }))).toBe('');
      expect(run(() => spawnSync('git', ['--version'], { encoding: 'utf8' })).stdout).toMatch(/^git version/);
      expect(run(() => execSync('echo ok', { encoding: 'utf8' }))).toBe('ok\n');
      expect(await run(() => new Promise<string>((resolve, reject) => execFile('sh', ['-c', 'echo $SESSION_PROXY_ACCOUNT'], (e, out) => (e ? reject(e) : resolve(out)))))).toBe(`${scope ?? ''}\n`);
    }
  }, 60_000);

  it('a Node child in one account’s scope egresses through its proxy; outside, through the default', async () => {
    const r = await manager.withProxy(ONE, () => runProbe(echo.httpUrl));
    expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.2', httpIp: '127.0.0.2', account: ONE, accounts: [ONE] });
    const o = await runProbe(echo.httpUrl);
    expect(o, o.stderr).toMatchObject({ fetchIp: '127.0.0.4', account: null, accounts: ['default'] });
  }, 60_000);

  it('a Worker gets all of them', async () => {
    const t = performance.now();
    const names = await manager.withProxy(ONE, () =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(`const wt = require('node:worker_threads'); import('session-proxy').then((sp) => wt.parentPort.postMessage(sp.getManager().accountNames().length))`, { eval: true });
        w.once('message', (n: number) => {
          resolve(n);
          void w.terminate();
        });
        w.once('error', reject);
      }),
    );
    expect(names).toBe(N + 1);
    console.log(`[scale] Worker with ${N} accounts up and answering: ${(performance.now() - t).toFixed(0)} ms`);
  }, 60_000);

  it('spawn overhead (printed)', async () => {
    const inside = manager.withProxy(ONE, () => time(15, () => execFileSync('true')));
    const outside = time(15, () => execFileSync('true'));
    await manager.uninstall();
    const bare = time(15, () => execFileSync('true'));
    manager.install();
    console.log(`[scale] execFileSync('true') median with ${N} accounts: outside a scope ${outside.toFixed(2)} ms, in a scope ${inside.toFixed(2)} ms; not installed ${bare.toFixed(2)} ms`);
    expect(outside).toBeLessThan(bare + 50);
  }, 60_000);
});
