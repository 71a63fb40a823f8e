/** With tunnelSockets: false, clients the HTTP layers do not cover are refused before any SYN — or go direct with a leak event when not strict. */
import net from 'node:net';
import http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import ccxt from 'ccxt';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError, type LeakEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { grpcEcho, startGrpcEcho } from './grpc-echo.js';

let echo: EchoServer;
let proxy: MockProxy;
let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
let manager: SessionProxyManager | undefined;

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  proxy = await startMockProxy({ egressIp: '127.0.0.2' });
  grpcServer = await startGrpcEcho();
});
afterEach(async () => {
  await manager?.uninstall();
  manager = undefined;
});
afterAll(async () => {
  await Promise.all([echo.close(), proxy.close(), grpcServer.close()]);
});

const refused: Record<string, () => Promise<unknown>> = {
  'ccxt exchange.fetch': () => new ccxt.binance().fetch(`${echo.httpUrl}/ccxt`, 'GET'),
  'undici.Pool': async () => {
    const pool = new Pool(echo.httpUrl);
    try {
      return await pool.request({ path: '/pool', method: 'GET' });
    } finally {
      await pool.destroy();
    }
  },
  'http2.connect': () =>
    new Promise((resolve, reject) => {
      const session = http2.connect(echo.httpsUrl, { ca: testCa });
      session.on('error', reject);
      session.request({ ':path': '/h2' }).on('response', resolve).on('error', reject);
    }),
  'raw net.connect': () =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: echo.httpPort }, () => resolve(s));
      s.on('error', reject);
    }),
  grpc: () => grpcEcho(grpcServer.target),
};

describe('tunnelSockets: false', () => {
  it('strict: each client fails with LeakBlockedError and the echo server records no connection', async () => {
    manager = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [], tunnelSockets: false }).install();
    const peersBefore = echo.peers.length;
    for (const [name, run] of Object.entries(refused)) {
      const err = await manager.withProxy('alice', run).then(() => undefined, (e: unknown) => e);
      // ccxt and grpc-js rewrap errors as their own types; the message carries ours.
      const typed = findSessionProxyError(err);
      const text = `${String(err)} ${String((err as { details?: string })?.details ?? '')}`;
      expect(typed instanceof LeakBlockedError || /tunnelSockets is false/.test(text), `${name}: ${text}`).toBe(true);
    }
    expect(echo.peers.length).toBe(peersBefore);
    expect(proxy.log).toEqual([]);
  });

  it('the HTTP layers still route fetch through the proxy', async () => {
    manager = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [], tunnelSockets: false }).install();
    const r = (await manager.withProxy('alice', async () => (await fetch(`${echo.httpUrl}/f`)).json())) as { ip: string };
    expect(r.ip).toBe('127.0.0.2');
  });

  it('strict: false lets the socket go direct, with a leak event', async () => {
    manager = new SessionProxyManager({ accounts: { alice: proxy.url }, noProxy: [], tunnelSockets: false, strict: false }).install();
    const leaks: LeakEvent[] = [];
    manager.on('leak', (e) => leaks.push(e));
    const pool = new Pool(echo.httpUrl);
    const r = await manager.withProxy('alice', () => pool.request({ path: '/direct', method: 'GET' }));
    expect(((await r.body.json()) as { ip: string }).ip).toBe('127.0.0.1');
    await pool.destroy();
    expect(leaks[0]).toMatchObject({ layer: 'socket', action: 'direct', account: 'alice' });
  });
});
