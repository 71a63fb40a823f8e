/** Child processes spawned in a scope get the account's proxy; DNS lookups in a scope are reported. */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import dns from 'node:dns';
import diagnostics from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startMockProxy, type MockProxy } from '../../src/testing/index.js';

let alice: MockProxy;
let dflt: MockProxy;
let manager: SessionProxyManager;
beforeAll(async () => {
  alice = await startMockProxy({ auth: { username: 'alice', password: 'child-Pw' } });
  dflt = await startMockProxy();
  manager = new SessionProxyManager({ proxy: dflt.url, accounts: { alice: alice.urlFor('socks5') }, noProxy: ['internal.test'] }).install();
});
afterAll(async () => {
  await manager.uninstall();
  await alice.close();
  await dflt.close();
});

const printEnv = ['-e', 'console.log(JSON.stringify({h:process.env.HTTP_PROXY,hs:process.env.https_proxy,a:process.env.ALL_PROXY,n:process.env.NO_PROXY}))'];

describe('child processes', () => {
  it('inside a scope: the account\'s proxy (socks5 exported as socks5h), explicit noProxy only; outside: the default', async () => {
    process.env.NO_PROXY = `${process.env.NO_PROXY ?? ''},operator.test`;
    const inside = await manager.withProxy('alice', () => new Promise<string>((resolve, reject) => execFile(process.execPath, printEnv, (e, out) => (e ? reject(e) : resolve(out)))));
    const env = JSON.parse(inside);
    expect(env.h).toBe(`socks5h://alice:child-Pw@127.0.0.1:${alice.port}`);
    expect(env.hs).toBe(env.h);
    expect(env.a).toBe(env.h);
    expect(env.n).toBe('internal.test');
    const outside = JSON.parse(execFileSync(process.execPath, printEnv, { encoding: 'utf8' }));
    expect(outside.h).toBe(`http://127.0.0.1:${dflt.port}`);
    // Sync forms too.
    const sync = manager.withProxy('alice', () => spawnSync(process.execPath, printEnv, { encoding: 'utf8' }));
    expect(JSON.parse(sync.stdout).h).toContain(`:${alice.port}`);
  });

  it('a caller\'s own proxy variables win', () => {
    const out = manager.withProxy('alice', () =>
      execFileSync(process.execPath, printEnv, { encoding: 'utf8', env: { ...process.env, HTTP_PROXY: 'http://mine.test:1' } }),
    );
    expect(JSON.parse(out).h).toBe('http://mine.test:1');
  });
});

describe('DNS audit', () => {
  it('publishes local lookups made inside a scope on session-proxy:dns', async () => {
    const seen: unknown[] = [];
    const onDns = (m: unknown): void => void seen.push(m);
    diagnostics.subscribe('session-proxy:dns', onDns);
    await manager.withProxy('alice', () => dns.promises.lookup('localhost').catch(() => undefined));
    await new Promise<void>((resolve) => dns.lookup('localhost', () => resolve()));
    diagnostics.unsubscribe('session-proxy:dns', onDns);
    expect(seen).toEqual([{ account: 'alice', hostname: 'localhost', reason: 'local lookup inside a scope' }]);
  });
});
