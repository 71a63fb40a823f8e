/**
 * Opening the proxy's side of a connection, towards the target. Goes through
 * `directConnect` (Node's own `net.connect`, marked as plumbing) so a manager
 * installed in the same process, which patches net/tls/http, neither routes
 * nor blocks the mock proxy's own traffic.
 */
import * as net from 'node:net';
import { lookup } from 'node:dns/promises';
import { directConnect } from '../../plumbing.js';
import type { ProxyContext } from './context.js';

/** Loopback answers at once; this only bounds a target that swallows SYNs. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Name resolution on the proxy side: the `hosts` map first, then the system resolver. */
export async function resolveTarget(ctx: ProxyContext, host: string): Promise<string> {
  if (net.isIP(host) !== 0) return host;
  const mapped = ctx.options.hosts.get(host.toLowerCase());
  if (mapped !== undefined) return mapped;
  // Prefer the egress IP's family: binding 127.0.0.2 and connecting to ::1 cannot work.
  const family = ctx.options.egressIp === undefined ? 0 : net.isIP(ctx.options.egressIp);
  const { address } = await lookup(host, { family });
  return address;
}

/** `localAddress`: the egress this connection leaves from (the mock gateway's per-session address); default the proxy's. */
export async function connectUpstream(ctx: ProxyContext, host: string, port: number, localAddress = ctx.options.egressIp): Promise<net.Socket> {
  const address = await resolveTarget(ctx, host);
  if (ctx.closed) throw new Error('mock proxy closed');
  return new Promise<net.Socket>((resolve, reject) => {
    const options: net.NetConnectOpts = { host: address, port, allowHalfOpen: true };
    if (localAddress !== undefined) options.localAddress = localAddress;
    const socket = directConnect(options);
    ctx.track(socket);
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    const onTimeout = (): void => fail(new Error(`connect to ${address}:${port} timed out`));
    const onClose = (): void => fail(new Error('mock proxy closed'));
    socket.setTimeout(CONNECT_TIMEOUT_MS, onTimeout);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
      socket.off('error', fail);
      socket.off('close', onClose);
      resolve(socket);
    });
  });
}

/** "host:port" or "[v6]:port" → parts; the host keeps the client's spelling, minus IPv6 brackets. */
export function splitAuthority(authority: string, defaultPort?: number): { host: string; port: number } {
  let host: string;
  let rest: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw new Error(`bad authority: ${authority}`);
    host = authority.slice(1, close);
    rest = authority.slice(close + 1);
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    rest = colon < 0 ? '' : authority.slice(colon);
  }
  let port = defaultPort;
  if (rest !== '') {
    if (!/^:\d{1,5}$/.test(rest)) throw new Error(`bad authority: ${authority}`);
    port = Number(rest.slice(1));
  }
  if (host === '' || port === undefined || port < 1 || port > 65535) throw new Error(`bad authority: ${authority}`);
  return { host, port };
}
