/**
 * Fuzzing the mock proxy's side of the handshakes (src/testing/mock-proxy:
 * the HTTP reader, CONNECT, forward proxying, SOCKS4/4a, SOCKS5 with
 * user/pass): a client writes real requests, mutated, in fragments, then
 * hangs up (FIN, later FIN, or RST). The proxy must answer or close — after
 * our FIN, the connection must be closed within a bound — and nothing may
 * escape as an uncaught exception or unhandled rejection; afterwards both
 * proxies still serve a real tunnel. The Proxy-Authorization credentials
 * never reach the log (rawHead) while the header line is intact.
 *
 * Nothing leaves the machine: the proxy's upstream dials (its plumbing
 * directConnect) are redirected to a local server (even target ports) or a
 * closed local port (odd ones), and its name lookups fail (ENOTFOUND) except
 * for its `hosts` map.
 */
import fc from 'fast-check';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseProxy } from '../../src/proxy/parse.js';
import { startMockProxy, type MockProxy } from '../../src/testing/index.js';
import { openTunnel } from '../../src/tunnel/open-tunnel.js';
import { budget, fragments, fuzz, mutatedBytes, outcome as seen, reportAfterAll, watchProcess } from './support.js';

const net$ = vi.hoisted(() => ({ upstreamPort: 0, closedPort: 0, direct: new Set<number>(), dials: 0 }));

vi.mock('../../src/plumbing.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/plumbing.js')>();
  return {
    ...real,
    directConnect: (options: net.NetConnectOpts, onConnect?: () => void) => {
      const o = options as net.TcpNetConnectOpts;
      // The mock proxies themselves (the final health check dials them) are reached as they are.
      if ((o.host === '127.0.0.1' || o.host === undefined) && net$.direct.has(Number(o.port))) return real.directConnect(options, onConnect);
      net$.dials++;
      const port = Number(o.port) % 2 === 0 ? net$.upstreamPort : net$.closedPort;
      return real.directConnect({ port, host: '127.0.0.1', allowHalfOpen: o.allowHalfOpen }, onConnect);
    },
  };
});
vi.mock('node:dns/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns/promises')>();
  const lookup = async (host: string): Promise<never> => {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  };
  return { ...real, lookup, default: { ...real, lookup } };
});

reportAfterAll('mock-proxy');
const uncaught = watchProcess();

const SECRET = 'Zq9xK-S3CR3T-wv7';
const AUTH = { username: 'alice', password: SECRET };
const BASIC = Buffer.from(`alice:${SECRET}`).toString('base64');
const HOSTS = { 'echo.test': '127.0.0.1', 'odd.test': '127.0.0.1' };

let open: MockProxy;
let locked: MockProxy;
let upstream: net.Server;
const clients = new Set<net.Socket>();

beforeAll(async () => {
  upstream = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  net$.upstreamPort = (upstream.address() as net.AddressInfo).port;
  // A port nothing listens on: bound, then released.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  net$.closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  open = await startMockProxy({ hosts: HOSTS });
  locked = await startMockProxy({ auth: AUTH, hosts: HOSTS });
  net$.direct.add(open.port).add(locked.port);
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await Promise.all([open?.close(), locked?.close()]);
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
});

const b = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const port = (n: number): number[] => [n >> 8, n & 0xff];
const name = (s: string): number[] => [s.length, ...Buffer.from(s)];
const auth = `Proxy-Authorization: Basic ${BASIC}\r\n`;
const wrong = `Proxy-Authorization: Basic ${Buffer.from('alice:nope').toString('base64')}\r\n`;

/** Real requests, the corpus the mutations start from (even target ports reach the local upstream, odd ones are refused). */
const REQUESTS: Buffer[] = [
  b('CONNECT 127.0.0.1:8080 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n'),
  b(`CONNECT echo.test:8080 HTTP/1.1\r\nHost: echo.test:8080\r\n${auth}\r\n`, 'GET / HTTP/1.1\r\nHost: echo.test\r\n\r\n'),
  b(`CONNECT odd.test:8081 HTTP/1.1\r\n${auth}\r\n`),
  b(`CONNECT [::1]:443 HTTP/1.1\r\n${wrong}\r\n`),
  b('CONNECT unknown.test:443 HTTP/1.1\r\nHost: unknown.test:443\r\nProxy-Connection: keep-alive\r\n\r\n'),
  b(`GET http://127.0.0.1:8080/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n${auth}Connection: keep-alive\r\n\r\n`, 'GET http://echo.test:8080/again HTTP/1.1\r\nHost: echo.test\r\n\r\n'),
  b(`POST http://echo.test:8080/ HTTP/1.1\r\nHost: echo.test\r\n${auth}Content-Length: 5\r\n\r\nhello`),
  b('POST http://echo.test:8080/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n'),
  b('GET http://[::1]:8080/ HTTP/1.0\r\n\r\n'),
  b(`GET ws://127.0.0.1:8080/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`),
  b('GET https://127.0.0.1/ HTTP/1.1\r\n\r\n'),
  b('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
  b([4, 1, ...port(8080), 127, 0, 0, 1], 'alice', [0], 'GET / HTTP/1.1\r\n\r\n'),
  b([4, 1, ...port(8081), 0, 0, 0, 1], 'alice', [0], 'echo.test', [0]),
  b([4, 2, ...port(8080), 0, 0, 0, 9], 'bob', [0], 'unknown.test', [0]),
  b([5, 1, 0], [5, 1, 0, 1, 127, 0, 0, 1, ...port(8080)], 'hello'),
  b([5, 2, 0, 2], [1, ...name('alice'), ...name(SECRET)], [5, 1, 0, 3, ...name('echo.test'), ...port(8080)]),
  b([5, 1, 2], [1, ...name('alice'), ...name('nope')], [5, 1, 0, 4, ...Array<number>(15).fill(0), 1, ...port(8081)]),
  b([5, 1, 2], [1, ...name('alice'), ...name(SECRET)], [5, 3, 0, 1, 10, 0, 0, 1, ...port(53)]),
  b([5, 1, 0], [5, 1, 0, 3, ...name('unknown.test'), ...port(443)]),
];

type After = 'end' | 'end-later' | 'reset';

/** How the connection ended, from the client's side: closed by the proxy (in time), or not. */
async function exchange(p: MockProxy, data: Buffer, cuts: number[], gapMs: number, after: After): Promise<'closed' | 'reset'> {
  const socket = net.connect(p.port, '127.0.0.1');
  clients.add(socket);
  socket.on('error', () => {});
  socket.on('data', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  try {
    for (const piece of fragments(data, cuts)) {
      if (socket.destroyed) break;
      socket.write(piece);
      if (gapMs) await sleep(gapMs);
    }
    if (after === 'reset') {
      socket.resetAndDestroy();
      return 'reset';
    }
    if (after === 'end-later') await sleep(20);
    socket.end();
    const within = await Promise.race([closed.then(() => true), sleep(3000).then(() => false)]);
    if (!within) throw new Error('the proxy neither answered nor closed within 3 s of our FIN');
    return 'closed';
  } finally {
    socket.destroy();
    clients.delete(socket);
  }
}

/** b64 appears only inside intact `Proxy-Authorization: Basic b64` lines of an HTTP request. */
function onlyInAuthLines(data: Buffer): boolean {
  const text = data.toString('latin1');
  if (text.charCodeAt(0) === 4 || text.charCodeAt(0) === 5) return false;
  return !text.replace(/(^|\r\n|\n)proxy-authorization[ \t]*:[ \t]*basic[ \t]+[A-Za-z0-9+/=]+(?=\r?\n)/gi, '$1').includes(BASIC);
}

describe('fuzz: the mock proxy reading mutated requests', () => {
  it(
    'answers or closes, never crashes, keeps credentials out of its log, and still serves afterwards',
    async () => {
      const arbitrary = fc
        .record({
          locked: fc.boolean(),
          request: fc.nat({ max: REQUESTS.length - 1 }),
          mutate: fc.constantFrom(true, true, true, false),
          cuts: fc.array(fc.nat(), { maxLength: 4 }),
          gapMs: fc.constantFrom(0, 0, 0, 0, 1, 5),
          after: fc.constantFrom<After>('end', 'end', 'end', 'end-later', 'reset'),
        })
        .chain((r) => (r.mutate ? mutatedBytes(fc.constant(REQUESTS[r.request]!)) : fc.constant(REQUESTS[r.request]!)).map((data) => ({ ...r, data })));

      await fuzz(
        'mock proxy',
        fc.asyncProperty(arbitrary, async (r) => {
          const p = r.locked ? locked : open;
          const logged = p.log.length;
          const what = `${r.locked ? 'auth' : 'open'} proxy given ${JSON.stringify(r.data.toString('latin1').slice(0, 200))} (${r.after})`;
          seen(await exchange(p, r.data, r.cuts, r.gapMs, r.after).catch((e: Error) => { throw new Error(`${what}: ${e.message}`); }));
          // Until the proxy has let go of the connection (a reset takes it a moment), its log entries are this input's.
          for (const t0 = Date.now(); p.openConnections() > 0; await sleep(1)) {
            if (Date.now() - t0 > 2000) throw new Error(`${what}: the proxy still holds the connection 2 s after it closed`);
          }
          await new Promise((resolve) => setImmediate(resolve));
          const escaped = uncaught.take();
          if (escaped.length) throw new Error(`${what}: uncaught ${String((escaped[0] as Error)?.stack ?? escaped[0])}`);
          const entries = p.log.slice(logged);
          for (const e of entries) seen(`log:${e.status}`);
          if (!r.mutate || onlyInAuthLines(r.data)) {
            const text = JSON.stringify(entries);
            for (const form of [BASIC, ...(r.mutate ? [] : [SECRET])]) {
              if (text.includes(form)) throw new Error(`${what}: the credentials (${form}) are in the log: ${text.slice(0, 400)}`);
            }
          }
        }),
        250,
      );

      // Still alive: a real tunnel through each.
      for (const [p, url] of [
        [open, open.urlFor('socks5h')],
        [locked, locked.url],
      ] as const) {
        const socket = await openTunnel(parseProxy(url, { connectTimeout: 2000 }), { host: 'echo.test', port: 8080 });
        socket.write('GET / HTTP/1.1\r\nHost: echo.test\r\n\r\n');
        const reply = await new Promise<string>((resolve) => {
          let got = '';
          socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
          socket.on('close', () => resolve(got));
        });
        expect(reply, `through ${p.url}`).toMatch(/^HTTP\/1\.1 200 OK/);
      }
      expect(uncaught.take()).toEqual([]);
      // The redirect was in effect: every upstream dial went to loopback.
      expect(net$.dials).toBeGreaterThan(0);
    },
    budget(8000),
  );
});
