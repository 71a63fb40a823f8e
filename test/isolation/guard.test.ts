/**
 * One connection serves one route. A connection opened for one account (or
 * for the default route) is checked on every later use, whichever layer
 * opened it: stream writes from another account's scope are refused, pooled
 * requests (HTTP on an agent's socket, http2 streams) belong to the route
 * they were created in, so a request created outside any scope never rides
 * an account's connection. The echo server's log proves nothing left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError, type LeakEvent } from '../../src/index.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
// The network functions as Node shipped them: what a module that destructured them before install() holds.
import { state } from '../../src/state.js';

const EGRESS = { alice: '127.0.0.2', bob: '127.0.0.3', default: '127.0.0.4' } as const;

let echo: EchoServer;
const proxies = {} as Record<keyof typeof EGRESS, MockProxy>;
let manager: SessionProxyManager;
const leaks: LeakEvent[] = [];

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  for (const who of Object.keys(EGRESS) as Array<keyof typeof EGRESS>) proxies[who] = await startMockProxy({ egressIp: EGRESS[who] });
  manager = new SessionProxyManager({ proxy: proxies.default.url, accounts: { alice: proxies.alice.url, bob: proxies.bob.url }, noProxy: [] }).install();
  manager.on('leak', (e) => leaks.push(e));
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo?.close(), ...Object.values(proxies).map((p) => p?.close())]);
});

const messagesFrom = (body: string): string[] => echo.requests.filter((r) => r.method === 'WS' && r.body === body).map((r) => r.ip);

function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { ca: echo.ca });
  return once(ws, 'open').then(() => ws);
}

function reply(ws: WebSocket): Promise<{ ip: string; body: string }> {
  return once(ws, 'message').then(([data]) => JSON.parse(String(data)) as { ip: string; body: string });
}

describe('stream connections: the writer\'s scope counts', () => {
  for (const scheme of ['ws', 'wss'] as const) {
    it(`a ${scheme} WebSocket opened in bob's scope and sent to from alice's scope is destroyed with LeakBlockedError; nothing of alice's arrives`, async () => {
      const url = scheme === 'ws' ? echo.wsUrl : echo.wssUrl;
      const ws = await manager.withProxy('bob', () => openWs(url));
      // Bob's own message, and one from outside any scope (an app-wide heartbeat), pass.
      const own = reply(ws);
      manager.withProxy('bob', () => ws.send(`bob-${scheme}`));
      expect((await own).ip).toBe(EGRESS.bob);
      const heartbeat = reply(ws);
      ws.send(`heartbeat-${scheme}`);
      expect((await heartbeat).ip).toBe(EGRESS.bob);

      // ws reports a destroyed socket as close 1006 without an 'error': the socket's error and the leak event say why.
      const socketError = once((ws as unknown as { _socket: net.Socket })._socket, 'error').then(([err]) => err as Error);
      const closed = once(ws, 'close');
      const leaksBefore = leaks.length;
      manager.withProxy('alice', () => ws.send(`alice-${scheme}`));
      const err = await socketError;
      expect(err).toBeInstanceOf(LeakBlockedError);
      expect(err.message).toMatch(/serving account "bob" was used by a write of account "alice".*manager\.bind/);
      expect(leaks.slice(leaksBefore)).toMatchObject([{ account: 'alice', action: 'blocked', layer: 'socket' }]);
      expect((await closed)[0]).toBe(1006);
      expect(messagesFrom(`alice-${scheme}`)).toEqual([]);
    });
  }

  it('a raw socket opened in alice\'s scope refuses a write from bob\'s scope before it leaves', async () => {
    const socket = manager.withProxy('alice', () => net.connect({ host: '127.0.0.1', port: echo.httpPort }));
    await once(socket, 'connect');
    const failed = once(socket, 'error').then(([err]) => err as Error);
    manager.withProxy('bob', () => socket.write('GET /raw-from-bob HTTP/1.1\r\nhost: x\r\n\r\n'));
    expect(await failed).toBeInstanceOf(LeakBlockedError);
    expect(echo.requests.filter((r) => r.path === '/raw-from-bob')).toEqual([]);
  });

  it('a socket opened outside any scope (the default route) refuses a write from alice\'s scope', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: echo.httpPort });
    await once(socket, 'connect');
    const failed = once(socket, 'error').then(([err]) => err as Error);
    manager.withProxy('alice', () => socket.write('GET /default-from-alice HTTP/1.1\r\nhost: x\r\n\r\n'));
    expect(await failed).toBeInstanceOf(LeakBlockedError);
    expect(echo.requests.filter((r) => r.path === '/default-from-alice')).toEqual([]);
  });
});

describe('pooled connections: the request\'s route counts', () => {
  it('an http2 session opened in alice\'s scope serves alice; a stream created outside any scope or in bob\'s is refused, the session stays up', async () => {
    const session = manager.withProxy('alice', () => http2.connect(echo.httpsUrl, { ca: echo.ca }));
    const get = (path: string): Promise<{ ip: string }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path });
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (body += c));
        stream.on('end', () => resolve(JSON.parse(body) as { ip: string }));
        stream.on('error', reject);
      });
    expect((await manager.withProxy('alice', () => get('/h2-alice'))).ip).toBe(EGRESS.alice);
    expect(() => session.request({ ':path': '/h2-unscoped' })).toThrow(LeakBlockedError);
    expect(() => manager.withProxy('bob', () => session.request({ ':path': '/h2-bob' }))).toThrow(LeakBlockedError);
    // Refusing the foreign stream did not take the session away from alice.
    expect((await manager.withProxy('alice', () => get('/h2-alice-again'))).ip).toBe(EGRESS.alice);
    expect(echo.requests.filter((r) => r.path === '/h2-unscoped' || r.path === '/h2-bob')).toEqual([]);
    session.close();
  });

  it('one keep-alive http.Agent shared by alice, bob and un-scoped code through new http.ClientRequest: each route on its own sockets, every reply from its route\'s egress', async () => {
    const shared = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // ClientRequest never passes through the patched http.request: only the Agent partition and the socket hook see it.
    const get = (path: string): Promise<{ ip: string; port: number }> =>
      new Promise((resolve, reject) => {
        const req = new http.ClientRequest({ host: '127.0.0.1', port: echo.httpPort, path, agent: shared }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(JSON.parse(body) as { ip: string; port: number }));
        });
        req.on('error', reject);
        req.end();
      });
    const jobs: Array<Promise<{ who: string; ip: string }>> = [];
    for (let i = 0; i < 6; i++) {
      jobs.push(manager.withProxy('alice', () => get(`/agent-alice-${i}`)).then((r) => ({ who: 'alice', ip: r.ip })));
      jobs.push(manager.withProxy('bob', () => get(`/agent-bob-${i}`)).then((r) => ({ who: 'bob', ip: r.ip })));
      jobs.push(get(`/agent-default-${i}`).then((r) => ({ who: 'default', ip: r.ip })));
    }
    const results = await Promise.all(jobs);
    expect(results.filter((r) => r.ip !== EGRESS[r.who as keyof typeof EGRESS])).toEqual([]);
    expect(results).toHaveLength(18);
    shared.destroy();
  });
});

describe('every TCP connection is seen', () => {
  const viaRaw = (connect: () => net.Socket): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect();
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => (data += c));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
      socket.write('GET /ip HTTP/1.1\r\nhost: echo\r\nconnection: close\r\n\r\n');
    });

  it('net.connect({ host, port, path: null }) and path: \'\' in a scope leave through the account\'s proxy (Node\'s own test for IPC is !!path)', async () => {
    for (const path of [null, ''] as const) {
      const answer = await manager.withProxy('alice', () => viaRaw(() => net.connect({ host: '127.0.0.1', port: echo.httpPort, path } as unknown as net.NetConnectOpts)));
      expect(answer.split('\r\n\r\n')[1]).toBe(EGRESS.alice);
    }
  });

  it('new http.ClientRequest(url) and an http.get captured before install() leave through the account\'s proxy', async () => {
    const json = (res: http.IncomingMessage): Promise<{ ip: string }> =>
      new Promise((resolve) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body) as { ip: string }));
      });
    const viaClientRequest = await manager.withProxy('bob', () => new Promise<{ ip: string }>((resolve, reject) => {
      const req = new http.ClientRequest(`${echo.httpUrl}/client-request`, (res) => void json(res).then(resolve));
      req.on('error', reject);
      req.end();
    }));
    expect(viaClientRequest.ip).toBe(EGRESS.bob);
    // The original function, as a module that destructured it before install() holds it.
    const get = state.originals.httpGet;
    const viaCaptured = await manager.withProxy('alice', () => new Promise<{ ip: string }>((resolve, reject) => {
      get(`${echo.httpUrl}/captured`, (res) => void json(res).then(resolve)).on('error', reject);
    }));
    expect(viaCaptured.ip).toBe(EGRESS.alice);
  });

  it('requireScope and no default proxy: a shared undici.Pool and an http2 session first used in alice\'s scope refuse un-scoped requests; nothing leaves direct or from alice\'s IP', async () => {
    await manager.uninstall();
    const strictManager = new SessionProxyManager({ accounts: { alice: proxies.alice.url }, noProxy: [], requireScope: true }).install();
    const { Pool } = await import('undici');
    const pool = new Pool(echo.httpUrl, { connections: 1 });
    const session = strictManager.withProxy('alice', () => http2.connect(echo.httpsUrl, { ca: echo.ca }));
    try {
      const viaPool = (path: string) => pool.request({ path, method: 'GET' }).then(async (r) => ((await r.body.json()) as { ip: string }).ip);
      expect(await strictManager.withProxy('alice', () => viaPool('/rs-alice'))).toBe(EGRESS.alice);
      const refused = await viaPool('/rs-unscoped').then(() => undefined, (e: unknown) => findSessionProxyError(e));
      expect(refused).toBeInstanceOf(LeakBlockedError);
      expect(() => session.request({ ':path': '/rs-h2-unscoped' })).toThrow(LeakBlockedError);
      expect(echo.requests.filter((r) => r.path.startsWith('/rs-') && r.path !== '/rs-alice')).toEqual([]);
    } finally {
      session.close();
      await pool.close();
      await strictManager.uninstall();
      manager.install();
    }
  });

  it('without a default proxy and with requireScope, a captured http.get outside any scope is refused, nothing reaches the server', async () => {
    await manager.uninstall();
    const strictManager = new SessionProxyManager({ accounts: { alice: proxies.alice.url }, noProxy: [], requireScope: true }).install();
    try {
      const captured = state.originals.httpGet;
      const err = await new Promise<unknown>((resolve) => captured(`${echo.httpUrl}/refused`, () => resolve(undefined)).on('error', resolve));
      expect(findSessionProxyError(err)).toBeInstanceOf(LeakBlockedError);
      expect(echo.requests.filter((r) => r.path === '/refused')).toEqual([]);
    } finally {
      await strictManager.uninstall();
      manager.install();
    }
  });
});
