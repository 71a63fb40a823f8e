/**
 * What a proxy says in its CONNECT answer reaches our error messages: with
 * our own credentials masked (a proxy may echo the request back), bounded,
 * and escaped so that it cannot split or rewrite a log line. Found by
 * test/fuzz/client-handshake.test.ts: a status line starting with the
 * password was quoted as it came.
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyAuthError, ProxyConnectError } from '../../src/errors.js';
import { parseProxy } from '../../src/proxy/parse.js';
import { openTunnel } from '../../src/tunnel/open-tunnel.js';

const SECRET = 'Zq9xK-S3CR3T-wv7';
const UNICODE = 'pässwörd-Zq9-🔑';
const basic = (pw: string): string => Buffer.from(`bot:${pw}`).toString('base64');

let answer: Buffer = Buffer.alloc(0);
let server: net.Server;
let port: number;

beforeAll(async () => {
  server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function refusal(reply: string | Buffer, password = SECRET): Promise<ProxyConnectError> {
  answer = typeof reply === 'string' ? Buffer.from(reply, 'latin1') : reply;
  const proxy = parseProxy(`http://bot:${encodeURIComponent(password)}@127.0.0.1:${port}`, { connectTimeout: 2000 });
  try {
    (await openTunnel(proxy, { host: '10.0.0.1', port: 443 })).destroy();
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyConnectError);
    const e = err as ProxyConnectError;
    for (const text of [e.message, String(e), JSON.stringify(e)]) {
      for (const form of [password, encodeURIComponent(password), Buffer.from(password).toString('latin1'), basic(password)]) expect(text).not.toContain(form);
      expect(text).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    }
    return e;
  }
  throw new Error('expected a refusal');
}

describe('the proxy’s words in CONNECT refusals', () => {
  it('a malformed status line that echoes the password is quoted with it masked', async () => {
    const e = await refusal(`${SECRET}HTTP/1.1 200 Connection established\r\n\r\n`);
    expect(e.message).toMatch(/^proxy sent a malformed CONNECT response: "\*\*\*HTTP\/1\.1 200 Connection established" \(proxy http:\/\/bot:\*\*\*@/);
  });

  it('a reason phrase that echoes Proxy-Authorization has the credentials masked', async () => {
    const e = await refusal(`HTTP/1.1 400 Bad header Proxy-Authorization: Basic ${basic(SECRET)}\r\n\r\n`);
    expect(e.message).toMatch(/^proxy answered CONNECT with 400 Bad header Proxy-Authorization: Basic \*\*\* \(/);
    expect(e.status).toBe(400);
  });

  it('a non-ASCII password comes back as UTF-8 bytes (read as latin1): masked too', async () => {
    const e = await refusal(Buffer.concat([Buffer.from('HTTP/1.1 407 wrong password '), Buffer.from(UNICODE), Buffer.from('\r\n\r\n')]), UNICODE);
    expect(e).toBeInstanceOf(ProxyAuthError);
    expect(e.message).toMatch(/^proxy answered CONNECT with 407 wrong password \*\*\* \(/);
  });

  it('control characters (C0, DEL, C1) are escaped and a long reason is cut at 80 characters', async () => {
    const e = await refusal(`HTTP/1.1 502 \x1b[2Jgone\x7f\x85 ${'x'.repeat(200)}\r\n\r\n`);
    expect(e.message).toMatch(/^proxy answered CONNECT with 502 \\u001b\[2Jgone\\u007f\\u0085 x+ \(/);
    expect(e.message).not.toContain('x'.repeat(80));
    // An ordinary reason is unchanged.
    expect((await refusal('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n')).message).toMatch(/^proxy answered CONNECT with 407 Proxy Authentication Required \(/);
  });
});
