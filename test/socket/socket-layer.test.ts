/**
 * Clients the HTTP layers never see — an app's own undici Agent/Pool/Client
 * (ccxt), http2.connect, grpc-js, got over HTTP/2, raw net/tls, a curl child —
 * still leave through the scope's proxy, via the socket layer.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, Client, Pool, request } from 'undici';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import ccxt from 'ccxt';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { grpcEcho, startGrpcEcho } from './grpc-echo.js';

const EGRESS = { alice: '127.0.0.2', bob: '127.0.0.3' } as const;
type Who = keyof typeof EGRESS;

let echo: EchoServer;
let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
const proxies = {} as Record<Who, MockProxy>;
let manager: SessionProxyManager;

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  grpcServer = await startGrpcEcho();
  proxies.alice = await startMockProxy({ egressIp: EGRESS.alice, auth: { username: 'alice', password: 'sock-Pw' } });
  proxies.bob = await startMockProxy({ egressIp: EGRESS.bob });
  manager = new SessionProxyManager({ accounts: { alice: proxies.alice.url, bob: proxies.bob.urlFor('socks5h') }, noProxy: [] }).install();
});
afterAll(async () => {
  await manager?.uninstall();
  await Promise.all([echo?.close(), grpcServer?.close(), proxies.alice?.close(), proxies.bob?.close()]);
});

const ipOfPeer = (peer: string): string => peer.replace(/^ipv4:/, '').replace(/:\d+$/, '');

function rawHttp(socket: net.Socket, path: string): Promise<{ ip: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (buf += d));
    socket.on('end', () => {
      try {
        resolve(JSON.parse(buf.slice(buf.indexOf('\r\n\r\n') + 4)));
      } catch (e) {
        reject(e);
      }
    });
    socket.on('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n`);
  });
}

function h2Get(path: string): Promise<{ ip: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(echo.httpsUrl, { ca: testCa });
    session.on('error', reject);
    const stream = session.request({ ':path': path });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => {
      session.close();
      resolve(JSON.parse(body));
    });
    stream.on('error', reject);
  });
}

const clients: Record<string, (who: Who) => Promise<string>> = {
  'ccxt exchange.fetch (its own undici Agent)': async () => {
    const exchange = new ccxt.binance();
    return ((await exchange.fetch(`${echo.httpUrl}/ccxt`, 'GET')) as { ip: string }).ip;
  },
  'app-made undici.Pool': async () => {
    const pool = new Pool(echo.httpsUrl, { connect: { ca: testCa } });
    const r = await pool.request({ path: '/pool', method: 'GET' });
    const ip = ((await r.body.json()) as { ip: string }).ip;
    await pool.close();
    return ip;
  },
  'app-made undici.Client': async () => {
    const client = new Client(echo.httpUrl);
    const r = await client.request({ path: '/client', method: 'GET' });
    const ip = ((await r.body.json()) as { ip: string }).ip;
    await client.close();
    return ip;
  },
  'explicit dispatcher: new Agent()': async () => {
    const agent = new Agent();
    const r = await request(`${echo.httpUrl}/agent`, { dispatcher: agent });
    const ip = ((await r.body.json()) as { ip: string }).ip;
    await agent.close();
    return ip;
  },
  'http2.connect': async () => (await h2Get('/h2')).ip,
  'got http2: true': async () =>
    ((await got(`${echo.httpsUrl}/got-h2`, { http2: true, agent: { http2: new http2wrapper.Agent() }, https: { certificateAuthority: testCa } }).json()) as { ip: string }).ip,
  '@grpc/grpc-js unary call': async () => ipOfPeer((await grpcEcho(grpcServer.target)).peer),
  'raw net.connect': async () => (await rawHttp(net.connect({ host: '127.0.0.1', port: echo.httpPort }), '/net')).ip,
  'raw tls.connect': async () => (await rawHttp(tls.connect({ host: '127.0.0.1', port: echo.httpsPort, ca: testCa, servername: 'localhost' }), '/tls')).ip,
  'spawned curl child': () =>
    new Promise((resolve, reject) =>
      execFile('curl', ['-sS', '--max-time', '10', `${echo.httpUrl}/curl`], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve((JSON.parse(stdout) as { ip: string }).ip))),
    ),
};

describe('socket-level coverage', () => {
  it('every client leaves through its account\'s proxy, interleaved across two accounts', async () => {
    const peersBefore = echo.peers.length;
    const jobs: Array<Promise<{ who: Who; client: string; ip: string }>> = [];
    for (let round = 0; round < 2; round++) {
      for (const [name, client] of Object.entries(clients)) {
        for (const who of ['alice', 'bob'] as const) {
          jobs.push(manager.withProxy(who, () => client(who)).then((ip) => ({ who, client: name, ip })));
        }
      }
    }
    const results = await Promise.all(jobs);
    expect(results.filter((r) => r.ip !== EGRESS[r.who])).toEqual([]);
    expect(echo.peers.slice(peersBefore).filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  });

  it('the proxies see no tunnel inside a tunnel: every CONNECT targets a server, never a proxy', () => {
    const proxyPorts = new Set([proxies.alice.port, proxies.bob.port]);
    for (const p of Object.values(proxies)) {
      expect(p.log.length).toBeGreaterThan(0);
      expect(p.log.filter((e) => proxyPorts.has(e.targetPort))).toEqual([]);
    }
  });

  it('one undici.Pool shared by both accounts: each reply is from the right egress or fails with LeakBlockedError', async () => {
    const shared = new Pool(echo.httpUrl, { connections: 1 });
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const who: Who = i % 2 ? 'bob' : 'alice';
      try {
        const r = await manager.withProxy(who, () => shared.request({ path: `/shared-${i}`, method: 'GET' }));
        const { ip } = (await r.body.json()) as { ip: string };
        outcomes.push(ip === EGRESS[who] ? 'right' : `WRONG ${who} got ${ip}`);
      } catch (err) {
        const typed = findSessionProxyError(err);
        outcomes.push(typed instanceof LeakBlockedError ? 'blocked' : `other error ${String(err)}`);
      }
    }
    await shared.destroy();
    expect(outcomes.filter((o) => o !== 'right' && o !== 'blocked')).toEqual([]);
    expect(outcomes).toContain('blocked');
  });

  it('concurrent requests of two accounts queued on one shared Client never leave from the other\'s IP', async () => {
    const shared = new Client(echo.httpUrl, { pipelining: 1 });
    const jobs = Array.from({ length: 12 }, (_, i) => {
      const who: Who = i % 2 ? 'bob' : 'alice';
      return manager
        .withProxy(who, () => shared.request({ path: `/queued-${i}`, method: 'GET' }))
        .then(async (r) => (((await r.body.json()) as { ip: string }).ip === EGRESS[who] ? 'right' : 'WRONG'))
        .catch((err: unknown) => (findSessionProxyError(err) instanceof LeakBlockedError ? 'blocked' : `other ${String(err)}`));
    });
    const outcomes = await Promise.all(jobs);
    await shared.destroy();
    expect(outcomes.filter((o) => o !== 'right' && o !== 'blocked')).toEqual([]);
  });
});
