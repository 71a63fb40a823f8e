/**
 * SOCKS handshakes over an open connection to the proxy: SOCKS5 (RFC 1928,
 * user/pass per RFC 1929), SOCKS4 and SOCKS4a. SOCKS5 always sends the
 * hostname (socks5:// and socks5h:// both resolve on the proxy: a leak-safe
 * library never asks the local resolver). SOCKS4 cannot carry a name, so its
 * caller resolves first (open-tunnel.ts) and passes an IPv4 address here.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { HandshakeReader } from './handshake-reader.js';
import { TunnelRefusal, type TunnelTarget } from './target.js';

const SOCKS5_REPLIES: Record<number, string> = {
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

export async function socks5Connect(socket: Socket, proxy: ProxyEndpoint, target: TunnelTarget): Promise<Buffer> {
  const withAuth = proxy.username !== undefined || proxy.hasPassword;
  const reader = new HandshakeReader(socket);
  try {
    socket.write(withAuth ? Buffer.from([5, 2, 0x00, 0x02]) : Buffer.from([5, 1, 0x00]));
    const [version, method] = await reader.exactly(2);
    if (version !== 5) throw new TunnelRefusal(`proxy is not a SOCKS5 server (version byte ${version})`);
    if (method === 0x02) {
      if (!withAuth) throw new TunnelRefusal('SOCKS5 proxy requires a username and password', undefined, true);
      const user = Buffer.from(proxy.username ?? '', 'utf8');
      const pass = Buffer.from(proxy.getPassword() ?? '', 'utf8');
      if (user.length > 255 || pass.length > 255) throw new TunnelRefusal('SOCKS5 username and password are limited to 255 bytes each', undefined, true);
      socket.write(Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]));
      const [, status] = await reader.exactly(2);
      if (status !== 0) throw new TunnelRefusal('SOCKS5 proxy rejected the username/password', undefined, true);
    } else if (method === 0xff) {
      throw new TunnelRefusal('SOCKS5 proxy accepted none of the offered authentication methods', undefined, withAuth);
    } else if (method !== 0x00) {
      throw new TunnelRefusal(`SOCKS5 proxy chose unsupported authentication method ${method}`);
    }

    socket.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeSocks5Address(target.host), port16(target.port)]));
    const [ver, rep, , atyp] = await reader.exactly(4);
    if (ver !== 5) throw new TunnelRefusal('malformed SOCKS5 reply');
    if (rep !== 0) throw new TunnelRefusal(`SOCKS5 proxy failed the CONNECT: ${SOCKS5_REPLIES[rep] ?? `reply ${rep}`}`, rep);
    // Skip the bound address the proxy reports: we do not need it.
    if (atyp === 1) await reader.exactly(4 + 2);
    else if (atyp === 4) await reader.exactly(16 + 2);
    else if (atyp === 3) await reader.exactly((await reader.exactly(1))[0] + 2);
    else throw new TunnelRefusal(`SOCKS5 reply has unknown address type ${atyp}`);
  } catch (err) {
    reader.release();
    throw err;
  }
  return reader.release();
}

/** SOCKS4 (IPv4 address) or SOCKS4a (hostname sent to the proxy). */
export async function socks4Connect(socket: Socket, proxy: ProxyEndpoint, target: TunnelTarget): Promise<Buffer> {
  const user = Buffer.from(proxy.username ?? '', 'utf8');
  const ipv4 = isIPv4(target.host);
  if (!ipv4 && proxy.protocol === 'socks4') throw new TunnelRefusal(`SOCKS4 cannot carry hostname ${target.host}; resolve it first or use socks4a://`);
  const address = ipv4 ? Buffer.from(target.host.split('.').map(Number)) : Buffer.from([0, 0, 0, 1]);
  const parts = [Buffer.from([4, 1]), port16(target.port), address, user, Buffer.from([0])];
  if (!ipv4) parts.push(Buffer.from(target.host, 'utf8'), Buffer.from([0]));
  const reader = new HandshakeReader(socket);
  try {
    socket.write(Buffer.concat(parts));
    const reply = await reader.exactly(8);
    if (reply[1] !== 0x5a) {
      const auth = reply[1] === 0x5c || reply[1] === 0x5d;
      throw new TunnelRefusal(`SOCKS4 proxy rejected the CONNECT (reply 0x${reply[1].toString(16)})`, reply[1], auth);
    }
  } catch (err) {
    reader.release();
    throw err;
  }
  return reader.release();
}

function encodeSocks5Address(host: string): Buffer {
  if (isIPv4(host)) return Buffer.from([1, ...host.split('.').map(Number)]);
  if (isIPv6(host)) return Buffer.concat([Buffer.from([4]), ipv6Bytes(host)]);
  const name = Buffer.from(host, 'utf8');
  if (name.length > 255) throw new TunnelRefusal(`hostname longer than 255 bytes cannot be sent over SOCKS5`);
  return Buffer.concat([Buffer.from([3, name.length]), name]);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail = ''] = address.split('::');
  const groups = (s: string): string[] => (s ? s.split(':') : []);
  let h = groups(head);
  let t = groups(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const v4 = (arr: string[]): string[] => {
    const last = arr[arr.length - 1];
    if (last && last.includes('.')) {
      const b = last.split('.').map(Number);
      return [...arr.slice(0, -1), ((b[0] << 8) | b[1]).toString(16), ((b[2] << 8) | b[3]).toString(16)];
    }
    return arr;
  };
  if (address.includes('::')) t = v4(t);
  else h = v4(h);
  const fill = address.includes('::') ? new Array(8 - h.length - t.length).fill('0') : [];
  const all = [...h, ...fill, ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function port16(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(port);
  return b;
}
