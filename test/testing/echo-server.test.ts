import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startEchoServer, testCa, type EchoReply, type EchoServer } from '../../src/testing/index.js';

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  localPort: number;
  reused: boolean;
}

/** One HTTP(S) request with Node's own client; the agent decides keep-alive. */
function request(url: string, options: https.RequestOptions = {}, body?: string): Promise<Got> {
  const lib = url.startsWith('https:') ? https : http;
  return new Promise<Got>((resolve, reject) => {
    const req = lib.request(url, { ca: testCa, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          localPort: req.socket?.localPort ?? 0,
          reused: req.reusedSocket,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function wsRoundTrip(url: string, message: string, options: { ca?: string; localAddress?: string } = {}): Promise<EchoReply> {
  return new Promise<EchoReply>((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('open', () => ws.send(message));
    ws.on('message', (data) => {
      resolve(JSON.parse(String(data)) as EchoReply);
      ws.close();
    });
    ws.on('error', reject);
  });
}

describe('startEchoServer', () => {
  let echo: EchoServer | undefined;
  afterEach(async () => {
    await echo?.close();
    echo = undefined;
  });

  it('answers any HTTP request with the caller as it sees it', async () => {
    echo = await startEchoServer();
    expect(echo.httpUrl).toBe(`http://127.0.0.1:${echo.httpPort}`);
    expect(echo.ca).toBe(testCa);
    const got = await request(`${echo.httpUrl}/some/path?q=1`, {
      method: 'DELETE',
      localAddress: '127.0.0.5',
      headers: { 'x-test': 'yes' },
      agent: false,
    });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/json');
    const reply = JSON.parse(got.body) as EchoReply;
    expect(reply).toMatchObject({ ip: '127.0.0.5', port: got.localPort, method: 'DELETE', path: '/some/path?q=1' });
    expect(reply.headers['x-test']).toBe('yes');
    expect(reply.body).toBeUndefined();
    expect(echo.requests).toEqual([reply]);
    expect(echo.peers).toEqual([{ ip: '127.0.0.5', port: got.localPort, protocol: 'http', at: expect.any(Number) }]);
  });

  it('echoes request bodies and keeps connections alive', async () => {
    echo = await startEchoServer();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(`${echo.httpUrl}/post`, { method: 'POST', agent }, 'héllo body');
      const second = await request(`${echo.httpUrl}/again`, { agent });
      expect((JSON.parse(first.body) as EchoReply).body).toBe('héllo body');
      expect(second.reused).toBe(true);
      expect(echo.peers).toHaveLength(1);
      expect(echo.requests.map((r) => r.path)).toEqual(['/post', '/again']);
    } finally {
      agent.destroy();
    }
  });

  it('serves HTTPS with a certificate that testCa trusts, for IPs and test names', async () => {
    echo = await startEchoServer();
    const byIp = await request(`${echo.httpsUrl}/tls`, { agent: false, localAddress: '127.0.0.7' });
    expect(JSON.parse(byIp.body)).toMatchObject({ ip: '127.0.0.7', path: '/tls' });
    // Same server, reached under a name from the certificate.
    const byName = await request(`${echo.httpsUrl}/named`, { agent: false, servername: 'api.exchange.test' });
    expect(byName.status).toBe(200);
    expect(echo.peers.map((p) => p.protocol)).toEqual(['https', 'https']);
    // And a client that does not trust testCa is refused.
    await expect(request(`${echo.httpsUrl}/`, { agent: false, ca: undefined })).rejects.toThrow(/certificate/);
  });

  it('returns the caller IP as text on /ip', async () => {
    echo = await startEchoServer();
    const got = await request(`${echo.httpUrl}/ip`, { agent: false, localAddress: '127.0.0.3' });
    expect(got.headers['content-type']).toMatch(/^text\/plain/);
    expect(got.body).toBe('127.0.0.3');
  });

  it('streams bounded chunks on /stream', async () => {
    echo = await startEchoServer();
    const got = await request(`${echo.httpUrl}/stream?chunks=3&size=5&delay=5`, { agent: false });
    expect(got.body).toBe('aaaaabbbbbccccc');
    const clamped = await request(`${echo.httpUrl}/stream?chunks=1&size=999999999`, { agent: false });
    expect(clamped.body.length).toBe(1024 * 1024);
  });

  it('answers WebSocket messages over ws and wss', async () => {
    echo = await startEchoServer();
    const plain = await wsRoundTrip(`${echo.wsUrl}/chat?room=1`, 'hello', { localAddress: '127.0.0.4' });
    expect(plain).toMatchObject({ ip: '127.0.0.4', method: 'WS', path: '/chat?room=1', body: 'hello' });
    expect(plain.headers.upgrade).toBe('websocket');
    const secure = await wsRoundTrip(`${echo.wssUrl}/secure`, 'over tls', { ca: testCa });
    expect(secure).toMatchObject({ ip: '127.0.0.1', method: 'WS', path: '/secure', body: 'over tls' });
    expect(echo.peers.map((p) => p.protocol)).toEqual(['ws', 'wss']);
    expect(echo.requests.map((r) => r.method)).toEqual(['WS', 'WS']);
  });

  it('negotiates h2 or http/1.1 on the TLS port when http2 is on', async () => {
    echo = await startEchoServer({ http2: true });
    const session = http2.connect(echo.httpsUrl, { ca: testCa });
    try {
      const reply = await new Promise<EchoReply>((resolve, reject) => {
        const stream = session.request({ ':path': '/h2?x=1', ':method': 'POST' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (text += c));
        stream.on('end', () => resolve(JSON.parse(text) as EchoReply));
        stream.on('error', reject);
        stream.end('h2 body');
      });
      expect(reply).toMatchObject({ ip: '127.0.0.1', method: 'POST', path: '/h2?x=1', body: 'h2 body' });
    } finally {
      session.close();
    }
    const h1 = await request(`${echo.httpsUrl}/h1`, { agent: false });
    expect(JSON.parse(h1.body)).toMatchObject({ path: '/h1' });
    const ws = await wsRoundTrip(`${echo.wssUrl}/ws-on-h2-port`, 'hi', { ca: testCa });
    expect(ws.body).toBe('hi');
    expect(echo.peers.map((p) => p.protocol)).toEqual(['h2', 'https', 'wss']);
  });

  it('close() destroys open connections', async () => {
    echo = await startEchoServer();
    const agent = new http.Agent({ keepAlive: true });
    try {
      await request(`${echo.httpUrl}/`, { agent });
      const [socket] = Object.values(agent.freeSockets).flat();
      expect(socket).toBeDefined();
      const closed = new Promise((resolve) => socket!.once('close', resolve));
      await echo.close();
      await closed;
    } finally {
      agent.destroy();
    }
  });
});
