/**
 * openTunnel: the one primitive every layer uses to reach a target through a
 * proxy. It connects to the proxy with the original `net`/`tls` functions
 * (marked as plumbing, so no hook routes it again), runs the protocol's
 * handshake, and resolves with a raw socket that carries the target's bytes.
 * The target is validated first (validate-target.ts): one that cannot go
 * into a handshake as it is fails with InvalidTargetError before the proxy
 * is dialed. Failures are translated here, at the boundary, into
 * ProxyConnectError / ProxyAuthError naming the account and the redacted proxy.
 */
import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import { ProxyAuthError, ProxyConnectError, SessionProxyError } from '../errors.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import { directConnect, directTlsConnect } from '../plumbing.js';
import { publish } from '../diagnostics.js';
import { httpConnect } from './http-connect.js';
import { socks4Connect, socks5Connect } from './socks.js';
import { TunnelRefusal, formatAuthority, type TunnelTarget } from './target.js';
import { validateTarget } from './validate-target.js';
import { clientCertificateRefusal, proxyTlsOptions } from './proxy-tls.js';
import type { Trust } from '../trust/trust.js';

export interface TunnelContext {
  /** The account the tunnel is for, named in errors. */
  readonly account?: string;
  readonly signal?: AbortSignal;
  /** `systemCa`: the OS's CAs for an https proxy's certificate. */
  readonly trust?: Trust;
}

export async function openTunnel(proxy: ProxyEndpoint, requested: TunnelTarget, ctx: TunnelContext = {}): Promise<Socket> {
  // Before the proxy is dialed: an invalid target never costs it a connection, let alone a byte.
  const target = validateTarget(requested, { account: ctx.account, proxy, protocol: proxy.protocol });
  const context = { account: ctx.account, proxy, target: formatAuthority(target.host, target.port) };
  let socket: Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => { socket?.destroy(); };
  try {
    ctx.signal?.throwIfAborted();
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    const where = proxy.protocol === 'socks4' && !isIP(target.host) ? await resolveForSocks4(target, ctx.account) : target;
    const connected = connectToProxy(proxy, ctx.trust);
    socket = connected.socket;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ProxyConnectError(`proxy did not complete the tunnel within ${proxy.connectTimeout} ms`, context)), proxy.connectTimeout);
    });
    await Promise.race([connected.ready, timedOut]);
    const leftover = await Promise.race([handshake(socket, proxy, where), timedOut]);
    if (leftover.length) socket.unshift(leftover);
    return socket;
  } catch (err) {
    socket?.destroy();
    throw translate(err, context, ctx.signal);
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

function connectToProxy(proxy: ProxyEndpoint, trust: Trust | undefined): { socket: Socket; ready: Promise<void> } {
  const secure = proxy.protocol === 'https';
  const socket = secure
    ? directTlsConnect({ ...proxyTlsOptions(proxy, trust), host: proxy.host, port: proxy.port, ALPNProtocols: ['http/1.1'] })
    : directConnect({ host: proxy.host, port: proxy.port });
  socket.setNoDelay(true);
  const ready = new Promise<void>((resolve, reject) => {
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.removeListener('error', reject);
      resolve();
    });
    socket.once('error', reject);
  });
  return { socket, ready };
}

function handshake(socket: Socket, proxy: ProxyEndpoint, target: TunnelTarget): Promise<Buffer> {
  switch (proxy.protocol) {
    case 'http':
    case 'https':
      return httpConnect(socket, proxy, target);
    case 'socks5':
    case 'socks5h':
      return socks5Connect(socket, proxy, target);
    case 'socks4':
    case 'socks4a':
      return socks4Connect(socket, proxy, target);
  }
}

/** SOCKS4 carries no hostname: resolve locally (IPv4 only), and say so on the dns channel. */
async function resolveForSocks4(target: TunnelTarget, account: string | undefined): Promise<TunnelTarget> {
  let address: string;
  try {
    ({ address } = await lookup(target.host, { family: 4 }));
  } catch (err) {
    throw new TunnelRefusal(`socks4 needs the target's IPv4 address and ${target.host} could not be resolved locally (${(err as NodeJS.ErrnoException).code ?? 'error'}); use socks4a:// to let the proxy resolve it`);
  }
  publish('dns', () => ({ account, hostname: target.host, address, reason: 'socks4 cannot carry a hostname' }));
  return { host: address, port: target.port };
}

function translate(err: unknown, context: { account?: string; proxy: ProxyEndpoint; target: string }, signal?: AbortSignal): unknown {
  if (err instanceof SessionProxyError) return err;
  if (signal?.aborted) return signal.reason ?? err;
  if (err instanceof TunnelRefusal) {
    const Kind = err.auth ? ProxyAuthError : ProxyConnectError;
    return new Kind(err.message, { ...context, status: err.status });
  }
  // A refused client certificate: during the TLS handshake, or (TLS 1.3) on the CONNECT response's read.
  const refused = clientCertificateRefusal(err, context.proxy);
  if (refused) return new ProxyAuthError(refused, { ...context, cause: err });
  const code = (err as NodeJS.ErrnoException)?.code;
  const what =
    code === 'ECONNREFUSED' ? 'proxy refused the connection'
    : code === 'ECONNRESET' ? 'proxy reset the connection during the handshake'
    : code === 'ENOTFOUND' ? 'proxy host could not be resolved'
    : `could not connect to the proxy${code ? ` (${code})` : ''}`;
  return new ProxyConnectError(what, { ...context, cause: err });
}
