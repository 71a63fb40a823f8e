/**
 * A Node child spawned inside a scope, and a Worker created inside one, run
 * the preload in the same account's scope: their fetches leave through the
 * account's proxy. Needs the built preload (npm test builds first).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';

const built = existsSync(fileURLToPath(new URL('../../dist/register.cjs', import.meta.url)));
let echo: EchoServer;
let alice: MockProxy;
let dflt: MockProxy;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer();
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: 'kid-Pw' } });
  dflt = await startMockProxy({ egressIp: '127.0.0.4' });
  manager = new SessionProxyManager({ proxy: dflt.url, accounts: { alice: alice.url }, noProxy: [] }).install();
});
afterAll(async () => {
  await manager.uninstall();
  await Promise.all([echo.close(), alice.close(), dflt.close()]);
});

const fetchIp = (url: string): string => `fetch(${JSON.stringify(url)}).then((r) => r.json()).then((j) => console.log(j.ip), (e) => { console.error(e); process.exit(1); })`;

describe.skipIf(!built && !process.env.CI)('Node children and Workers inherit the routing', () => {
  it('a Node child spawned in alice\'s scope leaves from alice\'s proxy; one spawned outside from the default', async () => {
    const run = (): Promise<string> =>
      new Promise((resolve, reject) =>
        execFile(process.execPath, ['-e', fetchIp(`${echo.httpUrl}/child`)], { timeout: 20_000 }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out.trim()))),
      );
    expect(await manager.withProxy('alice', run)).toBe('127.0.0.2');
    expect(await run()).toBe('127.0.0.4');
  }, 30_000);

  it('a Worker created in alice\'s scope leaves from alice\'s proxy', async () => {
    const code = `const { parentPort } = require('node:worker_threads');
fetch(${JSON.stringify(`${echo.httpUrl}/worker`)}).then((r) => r.json()).then((j) => parentPort.postMessage(j.ip), (e) => parentPort.postMessage('error: ' + e.message));`;
    const ip = await manager.withProxy('alice', () =>
      new Promise<string>((resolve, reject) => {
        const w = new Worker(code, { eval: true });
        w.once('message', (m: string) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      }),
    );
    expect(ip).toBe('127.0.0.2');
  }, 30_000);
});
