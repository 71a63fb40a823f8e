/**
 * The published ESM and CJS builds, loaded together in one process, share one
 * manager and one scope store (state on globalThis under Symbol.for keys),
 * and typed errors are `instanceof` across the two copies. Runs against
 * dist/ (npm test builds first) in a child process, as an app would.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

const script = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const esm = await import('session-proxy');
const cjs = require('session-proxy');
const esmTesting = await import('session-proxy/testing');
const cjsTesting = require('session-proxy/testing');
const out = {};
out.distinctCopies = esm.SessionProxyManager !== cjs.SessionProxyManager;
const echo = await esmTesting.startEchoServer();
const proxy = await cjsTesting.startMockProxy({ egressIp: '127.0.0.6' });
const m = esm.install({ accounts: { alice: proxy.url }, noProxy: [] });
out.sameManager = cjs.getManager() === m;
try { cjs.install({ accounts: { bob: proxy.url } }); out.secondInstall = 'installed'; }
catch (e) { out.secondInstall = e.name; out.esmInstanceof = e instanceof esm.AlreadyInstalledError; out.baseInstanceof = e instanceof esm.SessionProxyError; }
out.scopeSeenByCjs = await m.withProxy('alice', async () => cjs.getManager().currentAccount());
out.ipViaCjsHelper = await cjs.withProxy('alice', async () => (await (await fetch(echo.httpUrl)).json()).ip);
await m.uninstall();
out.afterUninstall = (() => { try { cjs.getManager(); return 'still'; } catch (e) { return e.code; } })();
await echo.close(); await proxy.close();
console.log(JSON.stringify(out));
`;

describe('ESM and CJS builds', () => {
  it.skipIf(!existsSync(`${root}/dist/index.cjs`) && !process.env.CI)('share one manager, one scope store, and instanceof across copies', () => {
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(out).toEqual({
      distinctCopies: true,
      sameManager: true,
      secondInstall: 'AlreadyInstalledError',
      esmInstanceof: true,
      baseInstanceof: true,
      scopeSeenByCjs: 'alice',
      ipViaCjsHelper: '127.0.0.6',
      afterUninstall: 'SP_ERR_NOT_INSTALLED',
    });
  });
});
