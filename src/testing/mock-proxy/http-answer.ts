/**
 * The proxy's own HTTP answers (errors, 407) and the checks every proxied
 * HTTP request goes through before any upstream is opened: the latency and
 * forced-answer faults, then Basic proxy authentication.
 */
import type * as net from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { ProxyContext } from './context.js';
import { headerValue, serializeHead, type Head, type HeaderList } from './http-message.js';
import { hangUp } from './io.js';
import { connectUpstream } from './upstream.js';
import type { SocketReader } from './reader.js';
import type { MockProxyLogEntry } from './types.js';
import { rawText } from './raw-head.js';

export const REALM = 'session-proxy mock proxy';

export interface Credentials {
  username: string;
  password: string;
}

/** Proxy-Authorization: Basic … → credentials; undefined if absent or not Basic. */
export function basicCredentials(head: Head): Credentials | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/]+=*)\s*$/i.exec(headerValue(head, 'proxy-authorization') ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A final answer from the proxy itself; the connection is closed after it. */
export function answer(client: net.Socket, reader: SocketReader, status: number, message: string): void {
  const body = Buffer.from(`mock proxy: ${message}\n`, 'utf8');
  const headers: HeaderList = [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(body.length)],
    ['Connection', 'close'],
  ];
  if (status === 407) headers.push(['Proxy-Authenticate', `Basic realm="${REALM}"`]);
  const reason = STATUS_CODES[status] ?? 'Unknown';
  if (!client.destroyed && !client.writableEnded) client.write(Buffer.concat([serializeHead(`HTTP/1.1 ${status} ${reason}`, headers), body]));
  hangUp(client, reader);
}

/**
 * Runs the pre-flight of a proxied request. Returns false if the request was
 * answered here (fault, missing or wrong credentials) and the entry settled.
 */
export async function admit(
  ctx: ProxyContext,
  client: net.Socket,
  reader: SocketReader,
  entry: MockProxyLogEntry,
  credentials: Credentials | undefined,
): Promise<boolean> {
  await ctx.delay();
  const forced = ctx.faults.takeAnswer();
  if (forced !== undefined) {
    ctx.settle(entry, 'refused', `forced ${forced} (fault)`);
    answer(client, reader, forced, `forced ${forced} (fault)`);
    return false;
  }
  const expected = ctx.options.auth;
  if (expected && (credentials?.username !== expected.username || credentials.password !== expected.password)) {
    const why = credentials ? 'wrong proxy credentials' : 'proxy credentials required';
    ctx.settle(entry, 'auth-failed', why);
    answer(client, reader, 407, why);
    return false;
  }
  return true;
}

/**
 * Opens the upstream for an HTTP request (CONNECT or forward); when the
 * target cannot be reached, logs the error and answers 502 naming `label`.
 */
export async function upstreamOr502(
  ctx: ProxyContext,
  client: net.Socket,
  reader: SocketReader,
  entry: MockProxyLogEntry,
  target: { host: string; port: number },
  label: string,
): Promise<net.Socket | undefined> {
  try {
    return await connectUpstream(ctx, target.host, target.port);
  } catch (error) {
    const message = (error as Error).message;
    ctx.settle(entry, 'error', message);
    answer(client, reader, 502, `cannot reach ${label}: ${message}`);
    return undefined;
  }
}

/**
 * A 400 for a head that is not a proxy request, logged (target unknown:
 * '' and 0) with its raw head and what followed it in the buffer, which the
 * hang-up discards: a request smuggled by a CR/LF in the first line is there.
 */
export function refuseMalformed(ctx: ProxyContext, client: net.Socket, reader: SocketReader, rawHead: string, why: string): void {
  const entry = ctx.openEntry({
    protocol: rawHead.startsWith('CONNECT ') ? 'connect' : 'http',
    targetHost: '',
    targetPort: 0,
    rawHead: rawText(Buffer.from(rawHead, 'latin1'), reader.buffered()),
  });
  ctx.settle(entry, 'refused', why);
  answer(client, reader, 400, why);
}
