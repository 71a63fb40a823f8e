/**
 * A request that cannot be routed as configured fails with a typed error; it
 * never goes direct. Judged by the echo server: nothing arrives.
 */
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionProxyManager, ProxyConnectError, ProxyAuthError, LeakBlockedError, findSessionProxyError, type LeakEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { deadPort } from '../support/scenario.js';

let echo: EchoServer;
let live: MockProxy;
let manager: SessionProxyManager | undefined;

beforeAll(async () => {
  echo = await startEchoServer();
  live = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'u', password: 'Pw-f41l' } });
});
afterEach(async () => {
  await manager?.uninstall();
  manager = undefined;
  live.faults.clear();
});
afterAll(async () => {
  await echo.close();
  await live.close();
});


function httpGet(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => http.get(url, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
}

async function expectTyped(promise: Promise<unknown>, Kind: new (...a: never[]) => Error, message: RegExp): Promise<Error> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err, 'request should fail').toBeDefined();
  const typed = findSessionProxyError(err);
  expect(typed, `a typed error in the cause chain of ${String(err)}`).toBeInstanceOf(Kind);
  expect(typed!.message).toMatch(message);
  expect(String(typed!.message)).not.toContain('Pw-f41l');
  return typed!;
}

describe('proxy failures give typed errors and nothing goes direct', () => {
  it('dead proxy → ProxyConnectError naming the account and redacted proxy (fetch and http.get)', async () => {
    const port = await deadPort();
    manager = new SessionProxyManager({ accounts: { alice: `http://u:Pw-f41l@127.0.0.1:${port}` }, noProxy: [] }).install();
    const peersBefore = echo.peers.length;
    const e1 = await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/dead`)), ProxyConnectError, /refused the connection/);
    expect(e1.message).toContain('account "alice"');
    expect(e1.message).toContain(`u:***@127.0.0.1:${port}`);
    await expectTyped(manager.withProxy('alice', () => httpGet(`${echo.httpUrl}/dead`)), ProxyConnectError, /refused the connection/);
    expect(echo.peers.length).toBe(peersBefore);
  });

  it('proxy answering 403 to CONNECT → ProxyConnectError with the status; 407 → ProxyAuthError', async () => {
    manager = new SessionProxyManager({ accounts: { alice: live.url }, noProxy: [] }).install();
    const peersBefore = echo.peers.length;
    live.faults.respondNext(403, 2);
    const e = await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/refused`)), ProxyConnectError, /403/);
    expect((e as ProxyConnectError).status).toBe(403);
    await expectTyped(manager.withProxy('alice', () => httpGet(`${echo.httpUrl}/refused`)), ProxyConnectError, /403/);
    live.faults.respondNext(407, 1);
    await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/auth`)), ProxyAuthError, /407/);
    expect(echo.peers.length).toBe(peersBefore);
  });

  it('wrong credentials → ProxyAuthError, password redacted', async () => {
    manager = new SessionProxyManager({ accounts: { alice: `http://u:wrong-Pw-f41l@127.0.0.1:${live.port}` }, noProxy: [] }).install();
    const e = await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/auth`)), ProxyAuthError, /407/);
    expect(e.message).not.toContain('wrong-Pw');
  });

  it('stalled proxy → ProxyConnectError after connectTimeout', async () => {
    manager = new SessionProxyManager({ accounts: { alice: { url: live.url, connectTimeout: 300 } }, noProxy: [] }).install();
    const peersBefore = echo.peers.length;
    live.faults.stall(true);
    const started = Date.now();
    await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/stall`)), ProxyConnectError, /within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expectTyped(manager.withProxy('alice', () => httpGet(`${echo.httpUrl}/stall`)), ProxyConnectError, /within 300 ms/);
    expect(echo.peers.length).toBe(peersBefore);
  });
});

describe('leak policy', () => {
  it('requireScope: traffic outside any scope fails with LeakBlockedError, loopback bypass still direct', async () => {
    manager = new SessionProxyManager({ accounts: { alice: live.url }, requireScope: true, noProxy: [] }).install();
    const leaks: LeakEvent[] = [];
    manager.on('leak', (e) => leaks.push(e));
    const peersBefore = echo.peers.length;
    await expectTyped(fetch(`${echo.httpUrl}/unscoped`), LeakBlockedError, /requireScope/);
    await expectTyped(httpGet(`${echo.httpUrl}/unscoped`), LeakBlockedError, /requireScope/);
    expect(echo.peers.length).toBe(peersBefore);
    expect(leaks.map((l) => [l.layer, l.action])).toEqual([['undici', 'blocked'], ['http', 'blocked']]);
  });

  it('strict: false lets the unroutable request go direct, with a leak event', async () => {
    manager = new SessionProxyManager({ accounts: { alice: live.url }, requireScope: true, strict: false, noProxy: [] }).install();
    const leaks: LeakEvent[] = [];
    manager.on('leak', (e) => leaks.push(e));
    const r = (await (await fetch(`${echo.httpUrl}/direct`)).json()) as { ip: string };
    expect(r.ip).toBe('127.0.0.1');
    // One leak event for one connection: the undici layer decided it; the socket hook only records its route.
    expect(leaks).toEqual([expect.objectContaining({ layer: 'undici', action: 'direct', account: undefined })]);
  });

  it('inside a scope, a client dialing another account\'s proxy itself is blocked', async () => {
    const other = await startMockProxy({ egressIp: '127.0.0.7' });
    manager = new SessionProxyManager({ proxy: other.url, accounts: { alice: live.url }, noProxy: [] }).install();
    const { ProxyAgent } = await import('undici');
    const viaDefault = new ProxyAgent(other.url);
    const peersBefore = echo.peers.length;
    await expectTyped(manager.withProxy('alice', () => fetch(`${echo.httpUrl}/foreign`, { dispatcher: viaDefault } as unknown as RequestInit)), LeakBlockedError, /the default route's proxy/);
    expect(echo.peers.length).toBe(peersBefore);
    expect(other.log).toEqual([]);
    await viaDefault.close();
    await other.close();
  });
});
