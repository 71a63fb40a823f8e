/**
 * A Node process that finds the configuration pointer but cannot use what it
 * points to (gone, corrupt, not private, not a path) fails closed: the app
 * runs, every connection it tries is refused with LeakBlockedError naming the
 * pointer, and nothing reaches the echo server — from it or from its Node
 * grandchildren. No manager is installed in this test process: the children
 * get exactly the environment written here.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEnvFor, registerPaths } from '../../src/children/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { REF, needsDist, root, runProbe } from './support.js';

let echo: EchoServer;
let alice: MockProxy;
let dir: string;
const SECRET = 'fc-Pw-1z';

beforeAll(async () => {
  echo = await startEchoServer();
  alice = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: SECRET } });
  dir = mkdtempSync(join(tmpdir(), 'sp-fail-closed-'));
});
afterAll(async () => {
  await Promise.all([echo?.close(), alice?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const baseEnv = (ref: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  NODE_OPTIONS: `--require ${registerPaths().cjs}`,
  SESSION_PROXY_ACCOUNT: 'alice',
  HTTPS_PROXY: alice.url,
  [REF]: ref,
});

describe.skipIf(needsDist)('a pointer that cannot be followed: fail closed', () => {
  const cases: [string, () => string][] = [
    ['the file is gone (the parent exited)', () => join(dir, 'gone.json')],
    [
      'the file is corrupt',
      () => {
        const f = join(dir, 'corrupt.json');
        writeFileSync(f, '{"accounts": {"alice": ', { mode: 0o600 });
        return f;
      },
    ],
    [
      'the file is readable by others',
      () => {
        const f = join(dir, 'open.json');
        writeFileSync(f, JSON.stringify({ accounts: { alice: alice.url }, noProxy: [] }));
        chmodSync(f, 0o644);
        return f;
      },
    ],
    ['the pointer is not a path', () => 'unavailable: the parent could not write it'],
  ];

  it.each(cases)('%s: the app runs, its connections and its Node grandchildren’s are refused, nothing leaves', async (_, make) => {
    const ref = make();
    const seen = echo.requests.length;
    const peers = echo.peers.length;
    for (const via of ['node', 'sh'] as const) {
      const r = await runProbe(echo.httpUrl, via, { env: baseEnv(ref) });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`^session-proxy/register: .*${REF}`));
      expect(r.stderr).not.toContain(SECRET);
      expect(r.fetchError).toMatchObject({ code: 'SP_ERR_LEAK_BLOCKED', message: expect.stringContaining(REF) });
      expect(r.httpIp).toMatchObject({ error: { code: 'SP_ERR_LEAK_BLOCKED' } });
      expect(r.grandchild, via).toMatchObject({ fetchError: { code: 'SP_ERR_LEAK_BLOCKED' }, httpIp: { error: { code: 'SP_ERR_LEAK_BLOCKED' } } });
    }
    expect(echo.requests.length).toBe(seen);
    expect(echo.peers.length).toBe(peers);
    expect(alice.log).toEqual([]);
  }, 60_000);

  it('a program that is not Node runs with the same environment', () => {
    const r = spawnSync('sh', ['-c', 'echo ran'], { env: baseEnv(join(dir, 'gone.json')), encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('ran\n');
  });

  it('registerEnvFor writes a pointer the child can follow, and no password in the environment', async () => {
    const env = registerEnvFor('alice', { accounts: { alice: alice.url }, noProxy: [] }, { PATH: process.env.PATH });
    expect(Object.values(env).some((v) => v?.includes(SECRET))).toBe(false);
    expect(env.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    const r = await runProbe(echo.httpUrl, undefined, { env });
    expect(r, r.stderr).toMatchObject({ fetchIp: '127.0.0.2', httpIp: '127.0.0.2', account: 'alice', accounts: ['alice'] });
  }, 30_000);

  it.each([
    ['returns', ''],
    ['calls process.exit()', 'process.exit(3);'],
    ['throws', 'throw new Error("boom");'],
  ])('the private directory is gone once the parent %s', (_, end) => {
    const parent = `require('session-proxy').install({ proxy: 'http://u:parent-Pw@127.0.0.1:9', noProxy: [] });
const env = require('node:child_process').spawnSync('env', { encoding: 'utf8' }).stdout;
console.log(/^${REF}=(.*)$/m.exec(env)[1]); ${end}`;
    const r = spawnSync(process.execPath, ['-e', parent], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH } });
    const ref = r.stdout.trim();
    expect(ref, r.stderr).toMatch(/session-proxy-[^/]+\/[0-9a-f]{32}\.json$/);
    expect(existsSync(ref)).toBe(false);
    expect(existsSync(join(ref, '..'))).toBe(false);
  });
});
