/**
 * TLS to the *target*, inside an open tunnel: the ClientHello travels through
 * the proxy, never before the tunnel is up. Uses the original tls.connect
 * (plumbing), so the socket-level hook does not wrap it a second time.
 */
import { isIP, type Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { directTlsConnect } from '../plumbing.js';

export function secureTunnel(socket: Socket, host: string, options: ConnectionOptions = {}): TLSSocket {
  const servername = options.servername || (isIP(host) ? undefined : host);
  return directTlsConnect({ ...options, host, socket, servername });
}
