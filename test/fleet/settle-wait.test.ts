/**
 * A request that waits out a new fleet epoch's settle time (TTL + margin)
 * keeps its process alive: before the fix the wait was an unref'd timer, so
 * a process whose only work was that request (a script, a CLI, a worker
 * with nothing else open) exited mid-await with the request unsettled. Only
 * a child process shows it (a test worker's IPC channel holds its own loop
 * open): the child imports dist/, requests once through a mock proxy with
 * `store: 'memory:'` (a new store: every first request settles), prints the
 * status and exits on its own.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { needsDist, root } from '../children/support.js';

let echo: EchoServer;
let proxy: MockProxy;

beforeAll(async () => {
  echo = await startEchoServer();
  proxy = await startMockProxy();
});
afterAll(async () => {
  await Promise.all([echo?.close(), proxy?.close()]);
});

const script = `
import { SessionProxyManager } from ${JSON.stringify(`${root}/dist/index.mjs`)};
const [proxy, target] = process.argv.slice(-2);
const m = new SessionProxyManager({ accounts: { a: proxy }, noProxy: [], store: { url: 'memory:', leaseTtl: 500 } }).install();
const t0 = performance.now();
const res = await m.withProxy('a', () => fetch(target));
await res.arrayBuffer();
console.log(JSON.stringify({ status: res.status, waitedMs: Math.round(performance.now() - t0) }));
await m.uninstall();
`;

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(needsDist)('fleet: a request waiting out the settle time', () => {
  it('keeps the process alive until it completes (memory: store, nothing else open)', async () => {
    const r = await run([proxy.url, `${echo.httpUrl}/ip`]);
    expect(r.stderr).toBe('');
    // 13: Node's "unsettled top-level await" — the process exited while the request waited.
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { status: number; waitedMs: number };
    expect(out.status).toBe(200);
    // It did wait: a new store settles TTL + margin (500 + 100 ms) before the first lease.
    expect(out.waitedMs).toBeGreaterThanOrEqual(550);
    expect(proxy.log.length).toBeGreaterThan(0);
  });
});
