/**
 * Clients that never touch the global dispatcher or http(s).request — the
 * socket layer's territory — each reduced to "one request to the echo server,
 * return the IP it saw". Shared by the mock-proxy and real-proxy suites.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { Agent, Client, Pool, request } from 'undici';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import ccxt from 'ccxt';
import { testCa, type EchoServer } from '../../src/testing/index.js';
import { grpcEcho } from '../socket/grpc-echo.js';

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

/** One http2 GET to the echo server on a session of its own; resolves with its reply. */
export function h2Get(echo: EchoServer, path: string): Promise<{ ip: string }> {
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
    stream.on('error', (err) => {
      session.destroy();
      reject(err);
    });
  });
}

export const socketClients = (echo: EchoServer, grpcTarget: string): Record<string, () => Promise<string>> => ({
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
  'http2.connect': async () => (await h2Get(echo, '/h2')).ip,
  'got http2: true': async () =>
    ((await got(`${echo.httpsUrl}/got-h2`, { http2: true, agent: { http2: new http2wrapper.Agent() }, https: { certificateAuthority: testCa } }).json()) as { ip: string }).ip,
  '@grpc/grpc-js unary call': async () => ipOfPeer((await grpcEcho(grpcTarget)).peer),
  'raw net.connect': async () => (await rawHttp(net.connect({ host: '127.0.0.1', port: echo.httpPort }), '/net')).ip,
  'raw tls.connect': async () => (await rawHttp(tls.connect({ host: '127.0.0.1', port: echo.httpsPort, ca: testCa, servername: 'localhost' }), '/tls')).ip,
  'spawned curl child': () =>
    new Promise((resolve, reject) =>
      execFile('curl', ['-sS', '--max-time', '10', `${echo.httpUrl}/curl`], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve((JSON.parse(stdout) as { ip: string }).ip))),
    ),
});
