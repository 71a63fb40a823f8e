/**
 * HTTP CONNECT handshake (RFC 9110 §9.3.6) over an open connection to an
 * http:// or https:// proxy. The authority is the hostname the caller gave:
 * name resolution happens on the proxy.
 */
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { redactUrl } from '../proxy/redact.js';
import { HandshakeReader } from './handshake-reader.js';
import { TunnelRefusal, type TunnelTarget, formatAuthority } from './target.js';

const MAX_RESPONSE_HEAD = 16 * 1024;

export async function httpConnect(socket: Socket, proxy: ProxyEndpoint, target: TunnelTarget): Promise<Buffer> {
  const authority = formatAuthority(target.host, target.port);
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  let basic: string | undefined;
  if (proxy.username !== undefined || proxy.hasPassword) {
    basic = Buffer.from(`${proxy.username ?? ''}:${proxy.getPassword() ?? ''}`, 'utf8').toString('base64');
    head += `Proxy-Authorization: Basic ${basic}\r\n`;
  }
  const quote = (text: string): string => proxyWords(text, proxy, basic);
  socket.write(`${head}\r\n`);

  const reader = new HandshakeReader(socket);
  try {
    const response = (await reader.until('\r\n\r\n', MAX_RESPONSE_HEAD)).toString('latin1');
    const statusLine = response.slice(0, response.indexOf('\r\n'));
    const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!match) throw new TunnelRefusal(`proxy sent a malformed CONNECT response: "${quote(statusLine)}"`);
    const status = Number(match[1]);
    if (status < 200 || status > 299) {
      const reason = match[2] ? ` ${quote(match[2])}` : '';
      throw new TunnelRefusal(`proxy answered CONNECT with ${status}${reason}`, status, status === 407 || status === 401);
    }
  } catch (err) {
    reader.release();
    throw err;
  }
  return reader.release();
}

/**
 * What the proxy said, for a message: our own credentials masked — a proxy
 * may echo the request back, Proxy-Authorization and all — then at most 80
 * characters, escaped JSON-style (with DEL and the C1 controls latin1 makes
 * of bytes 0x7f-0x9f) so that a hostile proxy cannot split or rewrite a log
 * line.
 */
function proxyWords(text: string, proxy: ProxyEndpoint, basic: string | undefined): string {
  const password = proxy.getPassword();
  // The response is read as latin1: a non-ASCII password comes back as its UTF-8 bytes.
  const secrets = [basic, password, password === undefined ? undefined : Buffer.from(password, 'utf8').toString('latin1')];
  const masked = redactUrl(text, secrets).slice(0, 80);
  return JSON.stringify(masked)
    .slice(1, -1)
    .replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
