/**
 * An example of testing an app's egress with `session-proxy/testing`, as a
 * user would write it (copy it into your project as egress.test.mjs): mock
 * proxies that leave from distinct loopback addresses, an echo server that
 * reports the address it saw, and assertions that each account's traffic —
 * fetch, node:http, WebSocket — left through its own proxy and nothing went
 * direct.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// In your project: from 'session-proxy' and 'session-proxy/testing'.
import { install, uninstall, withProxy, getManager, LeakBlockedError, findSessionProxyError } from '../../src/index.js';
import { startEchoServer, startMockProxy } from '../../src/testing/index.js';

describe('egress per account (testing kit example)', () => {
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let aliceProxy: Awaited<ReturnType<typeof startMockProxy>>;
  let bobProxy: Awaited<ReturnType<typeof startMockProxy>>;

  beforeAll(async () => {
    echo = await startEchoServer();
    // Each mock proxy connects upstream from its own loopback address.
    aliceProxy = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: 'alice-pw' } });
    bobProxy = await startMockProxy({ egressIp: '127.0.0.3' });
    install({
      accounts: { alice: aliceProxy.urlFor('socks5h'), bob: bobProxy.url },
      // The echo server is on loopback, which goes direct by default.
      noProxy: [],
      // Traffic outside a scope (no default proxy) must fail, not go direct.
      requireScope: true,
    });
  });

  afterAll(async () => {
    await uninstall();
    await Promise.all([echo?.close(), aliceProxy?.close(), bobProxy?.close()]);
  });

  const ipViaFetch = async (): Promise<string> => (await fetch(`${echo.httpUrl}/ip`)).text();
  const ipViaHttp = (): Promise<string> =>
    new Promise((resolve, reject) => {
      http.get(`${echo.httpUrl}/ip`, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
  const ipViaWebSocket = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(echo.wsUrl);
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (data) => {
        resolve(JSON.parse(String(data)).ip);
        ws.close();
      });
      ws.on('error', reject);
    });

  it('alice leaves through her proxy, whatever the client', async () => {
    await withProxy('alice', async () => {
      expect(await ipViaFetch()).toBe('127.0.0.2');
      expect(await ipViaHttp()).toBe('127.0.0.2');
      expect(await ipViaWebSocket()).toBe('127.0.0.2');
    });
    expect(aliceProxy.log.every((e) => e.username === 'alice')).toBe(true);
  });

  it('bob leaves through his, concurrently with alice', async () => {
    const [a, b] = await Promise.all([withProxy('alice', ipViaFetch), withProxy('bob', ipViaFetch)]);
    expect([a, b]).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  it('nothing reached the echo server directly', async () => {
    // Traffic of its own, so the test means something when run alone.
    const peersBefore = echo.peers.length;
    const requestsBefore = echo.requests.length;
    const clients = [ipViaFetch, ipViaHttp, ipViaWebSocket];
    const ips = await Promise.all([...clients.map((c) => withProxy('alice', c)), ...clients.map((c) => withProxy('bob', c))]);
    expect(ips).toEqual([...Array(3).fill('127.0.0.2'), ...Array(3).fill('127.0.0.3')]);
    // Positive control: the echo server saw these six requests (and the connections they came on).
    const requests = echo.requests.slice(requestsBefore);
    expect(requests).toHaveLength(6);
    expect(requests.map((r) => r.ip).sort()).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3', '127.0.0.3']);
    expect(echo.peers.length).toBeGreaterThan(peersBefore);
    // A direct connection would come from 127.0.0.1: none, from this test or any earlier one.
    expect(echo.peers.map((p) => p.ip)).not.toContain('127.0.0.1');
  });

  it('traffic outside any scope is refused rather than sent direct', async () => {
    const err = await ipViaFetch().catch((e: unknown) => e);
    expect(findSessionProxyError(err)).toBeInstanceOf(LeakBlockedError);
  });

  it('verifyEgress reports each account’s egress IP', async () => {
    const result = await getManager().verifyEgress('bob', { endpoints: [`${echo.httpUrl}/ip`] });
    expect(result).toMatchObject({ account: 'bob', ip: '127.0.0.3' });
  });
});
