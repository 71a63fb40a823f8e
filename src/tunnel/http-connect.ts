/**
 * HTTP CONNECT handshake (RFC 9110 §9.3.6) over an open connection to an
 * http:// or https:// proxy. The authority is the hostname the caller gave:
 * name resolution happens on the proxy.
 */
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { HandshakeReader } from './handshake-reader.js';
import { TunnelRefusal, type TunnelTarget, formatAuthority } from './target.js';

const MAX_RESPONSE_HEAD = 16 * 1024;

export async function httpConnect(socket: Socket, proxy: ProxyEndpoint, target: TunnelTarget): Promise<Buffer> {
  const authority = formatAuthority(target.host, target.port);
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (proxy.username !== undefined || proxy.hasPassword) {
    const basic = Buffer.from(`${proxy.username ?? ''}:${proxy.getPassword() ?? ''}`, 'utf8').toString('base64');
    head += `Proxy-Authorization: Basic ${basic}\r\n`;
  }
  socket.write(`${head}\r\n`);

  const reader = new HandshakeReader(socket);
  try {
    const response = (await reader.until('\r\n\r\n', MAX_RESPONSE_HEAD)).toString('latin1');
    const statusLine = response.slice(0, response.indexOf('\r\n'));
    const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!match) throw new TunnelRefusal(`proxy sent a malformed CONNECT response: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(match[1]);
    if (status < 200 || status > 299) {
      const reason = match[2] ? ` ${match[2]}` : '';
      throw new TunnelRefusal(`proxy answered CONNECT with ${status}${reason}`, status, status === 407 || status === 401);
    }
  } catch (err) {
    reader.release();
    throw err;
  }
  return reader.release();
}
