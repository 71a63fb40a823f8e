/**
 * The store's connections are background plumbing: a fleet process whose
 * work is done exits by itself (a one-shot script, a child spawned in a
 * scope), without uninstall(); and a request waiting on the store (a new
 * fleet's settle time) holds the process open until it is served.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { needsDist, root } from '../ecosystem/support/run.js';
import { noRedis, startRedis, type RedisServer } from '../support/redis-server.js';

let redis: RedisServer;
let echo: EchoServer;
let proxy: MockProxy;
beforeAll(async () => {
  redis = await startRedis();
  echo = await startEchoServer();
  proxy = await startMockProxy({ egressIp: '127.0.0.5' });
});
afterAll(async () => {
  await Promise.all([echo?.close(), proxy?.close(), redis?.close()]);
});

describe.skipIf(noRedis || needsDist)('a fleet process exits when its work is done', () => {
  it('one request in a scope (waiting out a new fleet’s settle time), then exit 0 on its own', async () => {
    const script = `
      import { SessionProxyManager } from ${JSON.stringify(`${root}/dist/index.mjs`)};
      const m = new SessionProxyManager({ accounts: { alice: ${JSON.stringify(proxy.url)} }, noProxy: [], store: { url: ${JSON.stringify(redis.url)}, leaseTtl: 1000, prefix: 'exit' } }).install();
      const r = await m.withProxy('alice', () => fetch(${JSON.stringify(`${echo.httpUrl}/exit`)}));
      console.log(JSON.stringify(await r.json()));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const result = await new Promise<{ code: number | null; signal: string | null } | 'still running'>((resolve) => {
      const bound = setTimeout(() => resolve('still running'), 20_000);
      child.once('exit', (code, signal) => {
        clearTimeout(bound);
        resolve({ code, signal });
      });
    });
    if (result === 'still running') child.kill('SIGKILL');
    expect(result, err).toEqual({ code: 0, signal: null });
    expect(JSON.parse(out.trim()).ip).toBe('127.0.0.5');
  }, 30_000);
});
