/**
 * TLS to the *target*, inside an open tunnel: the ClientHello travels through
 * the proxy, never before the tunnel is up. Uses the original tls.connect
 * (plumbing), so the socket-level hook does not wrap it a second time.
 */
import { isIP, type Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { directTlsConnect } from '../plumbing.js';
import { inheritFence } from '../guard/lease-fence.js';

export function secureTunnel(socket: Socket, host: string, options: ConnectionOptions = {}): TLSSocket {
  const servername = options.servername || (isIP(host) ? undefined : host);
  const secure = directTlsConnect({ ...options, host, socket, servername });
  // TLS writes go to the tunnel's handle below its JS socket: a fleet lease fence moves up with them.
  inheritFence(socket, secure);
  return secure;
}
