import * as http from 'node:http';
import * as net from 'node:net';
import { SocksClient, type SocksProxy } from 'socks';
import { ProxyAgent, fetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { directConnect, isPlumbing } from '../../src/plumbing.js';
import { SocketReader } from '../../src/testing/mock-proxy/reader.js';
import { startEchoServer, startMockProxy, testCa, type EchoReply, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { deadPort } from '../support/scenario.js';

const EGRESS = '127.0.0.9';
const AUTH = { username: 'alice', password: 'p@ss:w/rd' };

let echo: EchoServer;
const proxies: MockProxy[] = [];
const sockets: net.Socket[] = [];

async function proxy(options: Parameters<typeof startMockProxy>[0] = {}): Promise<MockProxy> {
  const p = await startMockProxy({ egressIp: EGRESS, ...options });
  proxies.push(p);
  return p;
}

/** A raw client socket to the proxy, opened as plumbing like the library's own would be. */
async function dial(p: MockProxy): Promise<{ socket: net.Socket; reader: SocketReader }> {
  const socket = directConnect({ host: p.host, port: p.port });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, reader: new SocketReader(socket) };
}

/** Sends a GET with Connection: close over an established tunnel, returns status and body. */
async function getOver(socket: net.Socket, reader: SocketReader, path: string): Promise<{ status: number; body: string }> {
  socket.write(`GET ${path} HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  // Bounded by the echo server closing the connection (Connection: close).
  for (let c = await reader.readAtMost(65536); c !== null; c = await reader.readAtMost(65536)) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return { status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

/** Reads one HTTP response head off a raw socket. */
async function readHead(reader: SocketReader): Promise<{ status: number; text: string }> {
  const text = (await reader.readUntil(Buffer.from('\r\n\r\n'), 65536)).toString('latin1');
  return { status: Number(text.slice(9, 12)), text };
}

function socksProxy(p: MockProxy, type: 4 | 5, auth?: { userId?: string; password?: string }): SocksProxy {
  return { host: p.host, port: p.port, type, ...auth };
}

async function viaSocks(proxyInfo: SocksProxy, host: string, port: number, path = '/ip'): Promise<{ status: number; body: string }> {
  const { socket } = await SocksClient.createConnection({ proxy: proxyInfo, command: 'connect', destination: { host, port }, timeout: 5000 });
  sockets.push(socket);
  return getOver(socket, new SocketReader(socket), path);
}

/** Polls a condition for up to 5 s: the proxy's side of a socket event can lag the client's. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** A tunnel settles when the proxy sees both of its sockets close, which can be a moment after the client is done. */
function untilSettled(p: MockProxy): Promise<void> {
  return until(() => !p.log.some((e) => e.status === 'open'));
}

beforeAll(async () => {
  echo = await startEchoServer();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  await echo.close();
});

describe('startMockProxy: protocols', () => {
  it('exposes its address and URLs, credentials percent-encoded', async () => {
    const p = await proxy({ auth: AUTH });
    expect(p.host).toBe('127.0.0.1');
    expect(p.url).toBe(`http://alice:p%40ss%3Aw%2Frd@127.0.0.1:${p.port}`);
    expect(p.urlFor('socks5h')).toBe(`socks5h://alice:p%40ss%3Aw%2Frd@127.0.0.1:${p.port}`);
    expect(p.urlFor('socks4a')).toBe(`socks4a://alice@127.0.0.1:${p.port}`);
    expect(p.urlFor('socks5', { auth: false })).toBe(`socks5://127.0.0.1:${p.port}`);
    const open = await proxy();
    expect(open.url).toBe(`http://127.0.0.1:${open.port}`);
  });

  it('forwards absolute-URI requests, keep-alive, from the egress IP', async () => {
    const p = await proxy({ auth: AUTH });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const auth = `Basic ${Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64')}`;
    const get = (path: string, body?: string) =>
      new Promise<{ reply: EchoReply; reused: boolean }>((resolve, reject) => {
        const req = http.request(
          { host: p.host, port: p.port, method: body ? 'POST' : 'GET', path: `${echo.httpUrl}${path}`, agent, headers: { 'proxy-authorization': auth } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ reply: JSON.parse(text) as EchoReply, reused: req.reusedSocket }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      const first = await get('/one?x=1');
      const second = await get('/two', 'posted');
      expect(first.reply).toMatchObject({ ip: EGRESS, method: 'GET', path: '/one?x=1' });
      // The proxy's credentials are for the proxy only.
      expect(first.reply.headers['proxy-authorization']).toBeUndefined();
      expect(second.reply).toMatchObject({ ip: EGRESS, method: 'POST', path: '/two', body: 'posted' });
      expect(second.reused).toBe(true);
      expect(p.log).toEqual([
        expect.objectContaining({ id: 1, protocol: 'http', targetHost: '127.0.0.1', targetPort: echo.httpPort, username: 'alice', status: 'ok' }),
        expect.objectContaining({ id: 2, protocol: 'http', status: 'ok' }),
      ]);
      expect(p.log[1]!.bytesIn).toBeGreaterThan(0);
      expect(p.log[1]!.bytesOut).toBeGreaterThan(0);
      expect(p.openConnections()).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('forwards through undici (proxyTunnel: false) and relays chunked streams', async () => {
    const p = await proxy();
    const dispatcher = new ProxyAgent({ uri: p.url, proxyTunnel: false });
    try {
      const res = await fetch(`${echo.httpUrl}/stream?chunks=4&size=3`, { dispatcher });
      expect(await res.text()).toBe('aaabbbcccddd');
      expect(p.log[0]).toMatchObject({ protocol: 'http', status: 'ok' });
    } finally {
      await dispatcher.close();
    }
  });

  it('forwards a WebSocket upgrade (absolute-URI GET) and then relays frames', async () => {
    const p = await proxy();
    const { socket, reader } = await dial(p);
    socket.write(
      `GET ${echo.wsUrl}/ws-path HTTP/1.1\r\nHost: 127.0.0.1:${echo.httpPort}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    const head = await readHead(reader);
    expect(head.status).toBe(101);
    expect(head.text).toMatch(/\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    // One masked text frame (clients must mask), then the echo's unmasked answer.
    const payload = Buffer.from('over forward proxy');
    const mask = Buffer.from([1, 2, 3, 4]);
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]));
    const [first, second] = [...(await reader.readExact(2))];
    expect(first).toBe(0x81);
    const length = second === 126 ? (await reader.readExact(2)).readUInt16BE(0) : second!;
    const reply = JSON.parse((await reader.readExact(length)).toString()) as EchoReply;
    expect(reply).toMatchObject({ ip: EGRESS, method: 'WS', path: '/ws-path', body: 'over forward proxy' });
    expect(p.log[0]).toMatchObject({ protocol: 'http', targetHost: '127.0.0.1', status: 'open' });
  });

  it('tunnels CONNECT for undici, to HTTP and HTTPS targets', async () => {
    const p = await proxy({ auth: AUTH });
    const dispatcher = new ProxyAgent({ uri: p.url, requestTls: { ca: testCa } });
    try {
      const plain = await fetch(`${echo.httpUrl}/ip`, { dispatcher });
      expect(await plain.text()).toBe(EGRESS);
      const secure = await fetch(`${echo.httpsUrl}/secure`, { dispatcher });
      expect(await secure.json()).toMatchObject({ ip: EGRESS, path: '/secure' });
    } finally {
      await dispatcher.close();
    }
    await untilSettled(p);
    expect(p.log).toEqual([
      expect.objectContaining({ protocol: 'connect', targetHost: '127.0.0.1', targetPort: echo.httpPort, username: 'alice' }),
      expect.objectContaining({ protocol: 'connect', targetHost: '127.0.0.1', targetPort: echo.httpsPort, username: 'alice' }),
    ]);
    for (const entry of p.log) {
      expect(entry.status).toBe('ok');
      expect(entry.bytesIn).toBeGreaterThan(0);
      expect(entry.bytesOut).toBeGreaterThan(0);
      expect(entry.closedAt).toBeGreaterThanOrEqual(entry.openedAt);
    }
  });

  it('relays bytes a client pipelines right after its CONNECT', async () => {
    const p = await proxy();
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\nHost: x\r\n\r\nGET /ip HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`);
    expect((await readHead(reader)).status).toBe(200);
    const rest: Buffer[] = [];
    for (let c = await reader.readAtMost(65536); c !== null; c = await reader.readAtMost(65536)) rest.push(c);
    expect(Buffer.concat(rest).toString()).toMatch(/\r\n\r\n127\.0\.0\.9$/);
  });

  it('serves SOCKS4 and SOCKS4a, checking the userid', async () => {
    const p = await proxy({ auth: AUTH, hosts: { 'echo.test': '127.0.0.1' } });
    const four = await viaSocks(socksProxy(p, 4, { userId: 'alice' }), '127.0.0.1', echo.httpPort);
    expect(four).toEqual({ status: 200, body: EGRESS });
    const fourA = await viaSocks(socksProxy(p, 4, { userId: 'alice' }), 'echo.test', echo.httpPort);
    expect(fourA.body).toBe(EGRESS);
    await expect(viaSocks(socksProxy(p, 4, { userId: 'mallory' }), '127.0.0.1', echo.httpPort)).rejects.toThrow();
    await untilSettled(p);
    expect(p.log).toEqual([
      expect.objectContaining({ protocol: 'socks4', targetHost: '127.0.0.1', username: 'alice', status: 'ok' }),
      expect.objectContaining({ protocol: 'socks4a', targetHost: 'echo.test', username: 'alice', status: 'ok' }),
      expect.objectContaining({ protocol: 'socks4', username: 'mallory', status: 'auth-failed' }),
    ]);
    expect(p.log[0]!.bytesOut).toBeGreaterThan(0);
  });

  it('serves SOCKS5 without auth, with IPv4 and domain addresses', async () => {
    const p = await proxy({ hosts: { 'api.exchange.test': '127.0.0.1' } });
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
    expect((await viaSocks(socksProxy(p, 5), 'api.exchange.test', echo.httpPort)).body).toBe(EGRESS);
    await untilSettled(p);
    expect(p.log.map((e) => [e.protocol, e.targetHost, e.status, e.username])).toEqual([
      ['socks5', '127.0.0.1', 'ok', undefined],
      ['socks5', 'api.exchange.test', 'ok', undefined],
    ]);
    expect(p.log[1]!.bytesIn).toBeGreaterThan(0);
    expect(p.log[1]!.bytesOut).toBeGreaterThan(0);
  });

  it('serves SOCKS5 with username/password, and refuses wrong or missing credentials', async () => {
    const p = await proxy({ auth: AUTH });
    const good = await viaSocks(socksProxy(p, 5, { userId: AUTH.username, password: AUTH.password }), '127.0.0.1', echo.httpPort);
    expect(good.body).toBe(EGRESS);
    await expect(viaSocks(socksProxy(p, 5, { userId: AUTH.username, password: 'nope' }), '127.0.0.1', echo.httpPort)).rejects.toThrow(
      /auth/i,
    );
    // The no-auth offer alone is refused with "no acceptable methods".
    const { socket, reader } = await dial(p);
    socket.write(Buffer.from([5, 1, 0]));
    expect([...(await reader.readExact(2))]).toEqual([5, 0xff]);
    await untilSettled(p);
    expect(p.log.map((e) => [e.status, e.username])).toEqual([
      ['ok', 'alice'],
      ['auth-failed', 'alice'],
      ['auth-failed', undefined],
    ]);
  });

  it('serves SOCKS5 through undici, and IPv6 address types', async () => {
    // URL-safe credentials: undici 7.30's ProxyAgent hands socks5:// credentials
    // to its SOCKS client still percent-encoded (its HTTP path decodes them).
    const p = await proxy({ auth: { username: 'alice', password: 'plain' } });
    const dispatcher = new ProxyAgent({ uri: p.urlFor('socks5') });
    try {
      const res = await fetch(`${echo.httpUrl}/ip`, { dispatcher });
      expect(await res.text()).toBe(EGRESS);
    } finally {
      await dispatcher.close();
    }
    // An IPv6 target with an IPv4 egress cannot connect: general failure, logged with the address as text.
    const { socket, reader } = await dial(p);
    socket.write(Buffer.from([5, 1, 2]));
    expect([...(await reader.readExact(2))]).toEqual([5, 2]);
    socket.write(Buffer.concat([Buffer.from([1, 5]), Buffer.from('alice'), Buffer.from([5]), Buffer.from('plain')]));
    expect([...(await reader.readExact(2))]).toEqual([1, 0]);
    socket.write(Buffer.from([5, 1, 0, 4, ...new Array<number>(15).fill(0), 1, 0, 80]));
    expect((await reader.readExact(10))[1]).toBe(0x01);
    expect(p.log[1]).toMatchObject({ protocol: 'socks5', targetHost: '::1', targetPort: 80, status: 'error' });
  });

  it('answers unsupported SOCKS5 commands and address types per RFC 1928', async () => {
    const p = await proxy();
    const bind = await dial(p);
    bind.socket.write(Buffer.from([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]));
    expect([...(await bind.reader.readExact(2))]).toEqual([5, 0]);
    expect((await bind.reader.readExact(10))[1]).toBe(0x07);
    const badType = await dial(p);
    badType.socket.write(Buffer.from([5, 1, 0, 5, 1, 0, 9]));
    expect([...(await badType.reader.readExact(2))]).toEqual([5, 0]);
    expect((await badType.reader.readExact(10))[1]).toBe(0x08);
    expect(p.log.map((e) => e.status)).toEqual(['refused', 'refused']);
  });

  it('answers 407 with Proxy-Authenticate for missing or wrong HTTP credentials', async () => {
    const p = await proxy({ auth: AUTH });
    for (const header of ['', `Proxy-Authorization: Basic ${Buffer.from('alice:wrong').toString('base64')}\r\n`]) {
      const { socket, reader } = await dial(p);
      socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\nHost: x\r\n${header}\r\n`);
      const head = await readHead(reader);
      expect(head.status).toBe(407);
      expect(head.text).toMatch(/\r\nProxy-Authenticate: Basic realm="[^"]+"/i);
    }
    const forward = await dial(p);
    forward.socket.write(`POST ${echo.httpUrl}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`);
    expect((await readHead(forward.reader)).status).toBe(407);
    expect(p.log.map((e) => [e.protocol, e.status, e.username])).toEqual([
      ['connect', 'auth-failed', undefined],
      ['connect', 'auth-failed', 'alice'],
      ['http', 'auth-failed', undefined],
    ]);
    expect(JSON.stringify(p.log)).not.toContain(AUTH.password);
  });

  it('answers 502 / SOCKS failure when the target cannot be reached', async () => {
    const p = await proxy();
    const port = await deadPort();
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect((await readHead(reader)).status).toBe(502);
    await expect(viaSocks(socksProxy(p, 5), '127.0.0.1', port)).rejects.toThrow();
    await expect(viaSocks(socksProxy(p, 4), '127.0.0.1', port)).rejects.toThrow();
    expect(p.log.map((e) => [e.protocol, e.status])).toEqual([
      ['connect', 'error'],
      ['socks5', 'error'],
      ['socks4', 'error'],
    ]);
    expect(p.log[0]!.error).toMatch(/ECONNREFUSED/);
  });

  it('only speaks the protocols it is given', async () => {
    const p = await proxy({ protocols: ['socks5'] });
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    expect(await reader.readAtMost(100)).toBeNull();
    const connectOnly = await proxy({ protocols: ['connect'] });
    const c = await dial(connectOnly);
    c.socket.write(`GET ${echo.httpUrl}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect((await readHead(c.reader)).status).toBe(501);
    expect(connectOnly.log[0]).toMatchObject({ protocol: 'http', status: 'refused' });
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
  });

  it('opens its upstream sockets as plumbing, so a hooked net.connect does not see them', async () => {
    const p = await proxy();
    const original = net.Socket.prototype.connect;
    let blocked = 0;
    // A stand-in for an installed manager that refuses every non-plumbing connect.
    net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
      if (!isPlumbing()) {
        blocked++;
        throw new Error('blocked by test hook');
      }
      return (original as (...a: unknown[]) => net.Socket).apply(this, args);
    } as typeof original;
    try {
      const { socket, reader } = await dial(p);
      socket.write(Buffer.from([5, 1, 0]));
      await reader.readExact(2);
      socket.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, echo.httpPort >> 8, echo.httpPort & 0xff]));
      expect((await reader.readExact(10))[1]).toBe(0);
      expect((await getOver(socket, reader, '/ip')).body).toBe(EGRESS);
      expect(() => net.connect(1, '127.0.0.1')).toThrow('blocked by test hook');
      expect(blocked).toBe(1);
    } finally {
      net.Socket.prototype.connect = original;
    }
  });
});

describe('startMockProxy: faults', () => {
  it('refuseNext(n) drops the next n connections right after accept', async () => {
    const p = await proxy();
    p.faults.refuseNext(2);
    for (let i = 0; i < 2; i++) {
      const { socket, reader } = await dial(p);
      socket.write(Buffer.from([5, 1, 0]));
      await expect(reader.readExact(2)).rejects.toThrow();
    }
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
    expect(p.log).toHaveLength(1);
  });

  it('respondNext(status, n) answers the next requests with that status, or the SOCKS equivalent', async () => {
    const p = await proxy();
    p.faults.respondNext(502, 1);
    p.faults.respondNext(403, 2);
    p.faults.respondNext(407);
    const c = await dial(p);
    c.socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    expect((await readHead(c.reader)).status).toBe(502);
    const five = await dial(p);
    five.socket.write(Buffer.from([5, 1, 0]));
    await five.reader.readExact(2);
    five.socket.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
    expect((await five.reader.readExact(10))[1]).toBe(0x02);
    const four = await dial(p);
    four.socket.write(Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
    expect([...(await four.reader.readExact(8))].slice(0, 2)).toEqual([0, 0x5b]);
    const auth = await dial(p);
    auth.socket.write(`GET ${echo.httpUrl}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    const head = await readHead(auth.reader);
    expect(head.status).toBe(407);
    expect(head.text).toMatch(/Proxy-Authenticate: Basic/);
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
    await untilSettled(p);
    expect(p.log.map((e) => e.status)).toEqual(['refused', 'refused', 'refused', 'refused', 'ok']);
    expect(() => p.faults.respondNext(200)).toThrow(RangeError);
  });

  it('respondNext(407) fails SOCKS5 authentication', async () => {
    const p = await proxy();
    p.faults.respondNext(407);
    const { socket, reader } = await dial(p);
    socket.write(Buffer.from([5, 2, 0, 2]));
    expect([...(await reader.readExact(2))]).toEqual([5, 2]);
    socket.write(Buffer.from([1, 1, 0x61, 1, 0x62]));
    expect([...(await reader.readExact(2))]).toEqual([1, 1]);
    expect(p.log[0]).toMatchObject({ protocol: 'socks5', status: 'refused', username: 'a' });
  });

  it('latency(ms) delays each handshake answer', async () => {
    const p = await proxy();
    p.faults.latency(150);
    const started = Date.now();
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const { socket, reader } = await dial(p);
    const t0 = Date.now();
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    expect((await readHead(reader)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('latency is cut short by close(), leaving no timer behind', async () => {
    const p = await proxy();
    p.faults.latency(60_000);
    const { socket } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    await until(() => p.log.length === 1);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await p.close();
    await closed;
    expect(p.log[0]).toMatchObject({ status: 'error', error: 'mock proxy closed' });
  });

  it('stall() accepts and never answers, until turned off', async () => {
    const p = await proxy();
    p.faults.stall();
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    const answered = await Promise.race([
      reader.readAtMost(1).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 300)),
    ]);
    expect(answered).toBe(false);
    expect(p.openConnections()).toBe(1);
    p.faults.stall(false);
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
  });

  it('resetAfter(bytes) resets tunnels after that many payload bytes', async () => {
    const p = await proxy();
    p.faults.resetAfter(1000);
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    expect((await readHead(reader)).status).toBe(200);
    socket.write('GET /stream?chunks=100&size=1000 HTTP/1.1\r\nHost: e\r\n\r\n');
    // Whether the client sees ECONNRESET or an early EOF depends on how the
    // kernel orders the RST and the last data; either way the stream is cut.
    let received = 0;
    await (async () => {
      for (let c = await reader.readAtMost(65536); c !== null; c = await reader.readAtMost(65536)) received += c.length;
    })().catch((error: NodeJS.ErrnoException) => expect(error.code).toBe('ECONNRESET'));
    expect(received).toBeLessThanOrEqual(1000);
    expect(p.log[0]).toMatchObject({ status: 'error', error: 'reset by fault after 1000 bytes' });
    expect(p.log[0]!.bytesIn + p.log[0]!.bytesOut).toBe(1000);

    p.faults.resetAfter(null);
    const whole = await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort, '/stream?chunks=5&size=1000');
    expect(whole.body).toContain('e'.repeat(1000)); // the fifth chunk, in chunked coding
    expect(whole.body.endsWith('0\r\n\r\n')).toBe(true);
  });

  it('resetAfter applies to forwarded requests too', async () => {
    const p = await proxy();
    p.faults.resetAfter(300);
    const dispatcher = new ProxyAgent({ uri: p.url, proxyTunnel: false });
    try {
      await expect(fetch(`${echo.httpUrl}/stream?chunks=10&size=1000`, { dispatcher }).then((r) => r.text())).rejects.toThrow();
    } finally {
      await dispatcher.close();
    }
    expect(p.log[0]).toMatchObject({ protocol: 'http', status: 'error' });
    expect(p.log[0]!.bytesIn + p.log[0]!.bytesOut).toBe(300);
  });

  it('clear() restores normal service', async () => {
    const p = await proxy();
    p.faults.refuseNext(5);
    p.faults.respondNext(502, 5);
    p.faults.latency(10_000);
    p.faults.stall();
    p.faults.resetAfter(1);
    p.faults.clear();
    expect((await viaSocks(socksProxy(p, 5), '127.0.0.1', echo.httpPort)).body).toBe(EGRESS);
  });

  it('close() destroys open tunnels and leaves nothing open', async () => {
    const p = await proxy();
    const { socket, reader } = await dial(p);
    socket.write(`CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\n\r\n`);
    expect((await readHead(reader)).status).toBe(200);
    expect(p.openConnections()).toBe(1);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await p.close();
    await closed;
    expect(p.openConnections()).toBe(0);
    expect(p.log[0]!.status).toBe('ok');
    await expect(p.close()).resolves.toBeUndefined();
  });
});

describe('startMockProxy: raw requests in the log', () => {
  it('logs the raw CONNECT and forward heads, byte for byte, Proxy-Authorization masked', async () => {
    const p = await proxy({ auth: AUTH });
    const basic = Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64');
    const head = `CONNECT 127.0.0.1:${echo.httpPort} HTTP/1.1\r\nHost: x\r\nproxy-authorization:  Basic ${basic}\r\nX-Odd: \u00e9\r\n\r\n`;
    const c = await dial(p);
    c.socket.write(Buffer.from(head, 'latin1'));
    expect((await readHead(c.reader)).status).toBe(200);
    const f = await dial(p);
    f.socket.write(`GET ${echo.httpUrl}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic ${basic}\r\nConnection: close\r\n\r\n`);
    expect((await readHead(f.reader)).status).toBe(200);
    const bare = await dial(p);
    bare.socket.write(`CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: ${basic}\r\n\r\n`);
    expect((await readHead(bare.reader)).status).toBe(407);
    expect(p.log[0]!.rawHead).toBe(head.replace(basic, '***'));
    expect(p.log[1]!.rawHead).toBe(`GET ${echo.httpUrl}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic ***\r\nConnection: close\r\n\r\n`);
    expect(p.log[2]!.rawHead).toBe('CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: ***\r\n\r\n');
    expect(JSON.stringify(p.log)).not.toContain(basic);
  });

  it('logs a malformed request (400) with the bytes that followed it: a CR/LF smuggled into the CONNECT line shows', async () => {
    const p = await proxy();
    const { socket, reader } = await dial(p);
    const sent = `CONNECT evil.test\r\n\r\nGET http://evil.test/ HTTP/1.1\r\nX: y:443 HTTP/1.1\r\nHost: z\r\n\r\n`;
    socket.write(sent);
    expect((await readHead(reader)).status).toBe(400);
    expect(p.log).toEqual([expect.objectContaining({ protocol: 'connect', targetHost: '', targetPort: 0, status: 'refused', error: 'not an HTTP/1.x request' })]);
    expect(p.log[0]!.rawHead).toBe(sent);
    const noPort = await dial(p);
    noPort.socket.write('CONNECT evil.test HTTP/1.1\r\n\r\n');
    expect((await readHead(noPort.reader)).status).toBe(400);
    expect(p.log[1]).toMatchObject({ protocol: 'connect', status: 'refused', error: 'CONNECT needs host:port', rawHead: 'CONNECT evil.test HTTP/1.1\r\n\r\n' });
  });

  it('logs the raw SOCKS4a request and the SOCKS5 CONNECT request (never the SOCKS5 password)', async () => {
    const p = await proxy({ hosts: { 'echo.test': '127.0.0.1' } });
    expect((await viaSocks(socksProxy(p, 4, { userId: 'bob' }), 'echo.test', echo.httpPort)).body).toBe(EGRESS);
    const port = Buffer.from([echo.httpPort >> 8, echo.httpPort & 0xff]);
    expect(Buffer.from(p.log[0]!.rawHead, 'latin1')).toEqual(
      Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([0, 0, 0, 1]), Buffer.from('bob\0echo.test\0')]),
    );
    expect((await viaSocks(socksProxy(p, 5, { userId: 'bob', password: 'Socks-Pw' }), 'echo.test', echo.httpPort)).body).toBe(EGRESS);
    expect(Buffer.from(p.log[1]!.rawHead, 'latin1')).toEqual(Buffer.concat([Buffer.from([5, 1, 0, 3, 9]), Buffer.from('echo.test'), port]));
    expect(JSON.stringify(p.log)).not.toContain('Socks-Pw');
  });

  it('acceptedConnections() counts every connection, even one that sent nothing', async () => {
    const p = await proxy();
    expect(p.acceptedConnections()).toBe(0);
    const { socket } = await dial(p);
    await until(() => p.acceptedConnections() === 1);
    expect(p.acceptedConnections()).toBe(1);
    socket.destroy();
    await until(() => p.openConnections() === 0);
    expect(p.acceptedConnections()).toBe(1);
    expect(p.log).toEqual([]);
  });
});
