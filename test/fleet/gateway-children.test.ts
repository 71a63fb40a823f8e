/**
 * A child process spawned in an account's scope, when the account is on a
 * rotating gateway: the child's configuration carries the gateway with the
 * account's live session pinned (not a bare URL, not a new session), so the
 * child leaves from the parent's exit — alone, and in a fleet, where a bare
 * URL would be another proxy to the store (a configuration mismatch: the
 * child could not serve the account) and a new session another exit.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager } from '../../src/index.js';
import { startEchoServer, startMockGateway, type EchoServer, type MockGateway } from '../../src/testing/index.js';
import { execFile } from 'node:child_process';
import { needsDist, root, runProbe } from '../children/support.js';
import { noRedis, startRedis, type RedisServer } from '../support/redis-server.js';

const PASSWORD = 'gw-child-Secr3t';
const EGRESS = ['127.0.0.70', '127.0.0.71', '127.0.0.72', '127.0.0.73'];

let echo: EchoServer;
let gw: MockGateway;
let redis: RedisServer | undefined;
let manager: SessionProxyManager | undefined;
beforeAll(async () => {
  echo = await startEchoServer();
  gw = await startMockGateway({ vendor: 'oxylabs', egressIps: EGRESS, auth: { username: 'customer-acme', password: PASSWORD } });
});
afterEach(async () => {
  await manager?.uninstall();
  manager = undefined;
});
afterAll(async () => {
  await Promise.all([echo?.close(), gw?.close(), redis?.close()]);
});

const gateway = () => ({ url: gw.urlFor('http', { username: 'customer-acme', password: PASSWORD }), gateway: 'oxylabs' as const, country: 'de' });

/** What the child's own manager has for the account: a gateway session (gateway, session), or a plain proxy. */
function childView(m: SessionProxyManager, account: string): Promise<{ gateway?: string; session?: string }> {
  const script = `import('session-proxy').then((sp) => { const p = sp.getManager().current(${JSON.stringify(account)}); console.log(JSON.stringify({ gateway: p.gateway, session: p.session })); });`;
  return m.withProxy(account, () => new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', script], { cwd: root, timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout.trim().split('\n').pop()!)))),
  ));
}

async function childOf(m: SessionProxyManager, account: string): Promise<{ ip: string | undefined; sessions: Set<string | undefined>; error?: unknown }> {
  const before = gw.log.length;
  const r = await m.withProxy(account, () => runProbe(echo.httpUrl));
  return { ip: r.fetchIp, sessions: new Set(gw.log.slice(before).map((e) => e.session)), error: r.fetchError };
}

describe.skipIf(needsDist)('a child in a gateway account’s scope', () => {
  it('leaves from the account’s session (pinned in its configuration); after rotate() a new child from the new one', async () => {
    manager = new SessionProxyManager({ accounts: { alice: gateway(), bob: gateway() }, noProxy: [] }).install();
    const session = manager.current('alice').session!;
    const exit = ((await manager.withProxy('alice', () => fetch(`${echo.httpUrl}/parent`)).then((r) => r.json())) as { ip: string }).ip;
    const child = await childOf(manager, 'alice');
    expect(child.error).toBeUndefined();
    expect(child.ip).toBe(exit);
    expect(child.sessions).toEqual(new Set([session]));
    // The child runs the gateway on that session (it can renew it), not a bare URL that happens to carry it.
    expect(await childView(manager, 'alice')).toEqual({ gateway: 'oxylabs', session });
    const next = (await manager.rotate('alice')).session!;
    const again = await childOf(manager, 'alice');
    expect(again.sessions).toEqual(new Set([next]));
    expect(again.ip).toBe(gw.session(next)!.egressIp);
  }, 60_000);

  it.skipIf(noRedis)('in a fleet (real redis-server): the child joins the account’s lease on the same session', async () => {
    redis = await startRedis();
    manager = new SessionProxyManager({ accounts: { alice: gateway(), bob: gateway() }, noProxy: [], store: { url: redis.url, leaseTtl: 1000, prefix: 'gwchild' } }).install();
    const first = await manager.withProxy('alice', () => fetch(`${echo.httpUrl}/parent`)).then((r) => r.json() as Promise<{ ip: string }>);
    const session = manager.current('alice').session!;
    const child = await childOf(manager, 'alice');
    expect(child.error).toBeUndefined();
    expect(child.ip).toBe(first.ip);
    expect(child.sessions).toEqual(new Set([session]));
    const fleet = await manager.stats({ fleet: true });
    expect(fleet.accounts.find((a) => a.account === 'alice')).toMatchObject({ session });
    console.log(`[fleet gateway child] parent and child on session ${session} (${first.ip}); ${fleet.instances.length} instances seen by the store`);
  }, 60_000);
});
