/**
 * HTTP forward proxying (absolute-URI requests). Each request goes over a
 * fresh upstream connection (`Connection: close` towards the target), while
 * the client's connection to the proxy stays keep-alive; the response is
 * re-framed for the client, so any upstream framing works.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { admit, answer, basicCredentials, refuseMalformed, upstreamOr502 } from './http-answer.js';
import {
  chunk,
  endToEndHeaders,
  HEAD_END,
  headerTokens,
  headerValue,
  LAST_CHUNK,
  MAX_HEAD,
  parseHead,
  readBody,
  requestFraming,
  responseFraming,
  serializeHead,
  type Framing,
  type Head,
  type HeaderList,
} from './http-message.js';
import { writeAll } from './io.js';
import { SocketReader } from './reader.js';
import { Meter, resetBoth, startTunnel } from './tunnel.js';
import type { MockProxyLogEntry } from './types.js';
import { splitAuthority } from './upstream.js';

/**
 * What the HTTP session does next with the client connection: read another
 * request, hang up, or nothing ('done': already answered, tunneled or destroyed).
 */
export type Outcome = 'keep-alive' | 'close' | 'done';

interface Target {
  scheme: string;
  /** The authority as sent (for a missing Host header). */
  authority: string;
  host: string;
  port: number;
  /** Origin-form for the upstream request line. */
  path: string;
}

/** Interim responses a target may send before the final one (100 Continue, 103 Early Hints). */
const MAX_INTERIM = 16;

class ResetFault extends Error {}

function parseTarget(target: string): Target | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/i.exec(target);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  // Userinfo in a request target is not valid HTTP; drop it rather than forward it.
  const authority = match[2]!.slice(match[2]!.lastIndexOf('@') + 1);
  let hostPort: { host: string; port: number };
  try {
    hostPort = splitAuthority(authority, scheme === 'https' || scheme === 'wss' ? 443 : 80);
  } catch {
    return undefined;
  }
  const rest = match[3]!;
  return { scheme, authority, ...hostPort, path: rest.startsWith('/') ? rest : `/${rest}` };
}

function wantsKeepAlive(head: Head): boolean {
  const tokens = [...headerTokens(head, 'connection'), ...headerTokens(head, 'proxy-connection')];
  if (head.start[2] === 'HTTP/1.0') return tokens.includes('keep-alive');
  return !tokens.includes('close');
}

export async function handleForward(ctx: ProxyContext, client: net.Socket, reader: SocketReader, head: Head, rawHead: string): Promise<Outcome> {
  const target = parseTarget(head.start[1]);
  if (!target) {
    refuseMalformed(ctx, client, reader, rawHead, 'a forward proxy request needs an absolute URI');
    return 'done';
  }
  const credentials = basicCredentials(head);
  const entry = ctx.openEntry({ protocol: 'http', targetHost: target.host, targetPort: target.port, username: credentials?.username, rawHead });
  // ws: is plain HTTP until the upgrade; TLS targets (https:, wss:) need CONNECT.
  const plain = target.scheme === 'http' || target.scheme === 'ws';
  if (!ctx.options.protocols.has('http') || !plain) {
    const why = plain ? 'forward proxying not enabled' : `${target.scheme}: URIs are not forwarded (use CONNECT)`;
    ctx.settle(entry, 'refused', why);
    answer(client, reader, 501, why);
    return 'done';
  }
  if (!(await admit(ctx, client, reader, entry, credentials))) return 'done';

  let framing: Framing;
  try {
    framing = requestFraming(head);
  } catch (error) {
    ctx.settle(entry, 'refused', (error as Error).message);
    answer(client, reader, 400, (error as Error).message);
    return 'done';
  }
  const upstream = await upstreamOr502(ctx, client, reader, entry, target, target.authority);
  if (!upstream) return 'done';
  const meter = new Meter(entry, ctx.faults.resetAfterBytes);
  try {
    return await exchange({ ctx, entry, meter, client, reader, upstream, head, target, framing });
  } catch (error) {
    if (error instanceof ResetFault) {
      resetBoth(ctx, entry, meter, client, upstream);
      return 'done';
    }
    upstream.destroy();
    const message = (error as Error).message;
    ctx.settle(entry, 'error', message);
    if (entry.bytesOut === 0 && !client.destroyed) {
      // Nothing reached the client yet, so it can still get a proper answer.
      answer(client, reader, 502, `bad upstream response: ${message}`);
      return 'done';
    }
    client.destroy();
    return 'done';
  }
}

interface Exchange {
  ctx: ProxyContext;
  entry: MockProxyLogEntry;
  meter: Meter;
  client: net.Socket;
  reader: SocketReader;
  upstream: net.Socket;
  head: Head;
  target: Target;
  framing: Framing;
}

async function exchange(x: Exchange): Promise<Outcome> {
  const { ctx, entry, meter, client, reader, upstream, head, target, framing } = x;
  const method = head.start[0];
  /** Counted write; past the resetAfter budget it sends what fits, then aborts the exchange. */
  const put = async (to: net.Socket, direction: 'in' | 'out', data: Buffer): Promise<void> => {
    const pass = meter.admit(direction, data);
    await writeAll(to, pass);
    if (meter.spent) throw new ResetFault();
  };

  const upgrade = headerTokens(head, 'connection').includes('upgrade') && headerValue(head, 'upgrade') !== undefined;
  const headers: HeaderList = endToEndHeaders(head);
  if (headerValue(head, 'host') === undefined) headers.unshift(['Host', target.authority]);
  if (framing.kind === 'length') headers.push(['Content-Length', String(framing.length)]);
  // An explicit empty body (POST with Content-Length: 0) stays explicit: some servers insist on it.
  if (framing.kind === 'none' && headerValue(head, 'content-length') !== undefined) headers.push(['Content-Length', '0']);
  if (framing.kind === 'chunked') headers.push(['Transfer-Encoding', 'chunked']);
  if (upgrade) headers.push(['Connection', 'Upgrade'], ['Upgrade', headerValue(head, 'upgrade')!]);
  else headers.push(['Connection', 'close']);

  const upReader = new SocketReader(upstream);
  await put(upstream, 'in', serializeHead(`${method} ${target.path} HTTP/1.1`, headers));

  // The body goes up while the response comes down: a target may answer early.
  let bodySent = false;
  let bodyError: Error | undefined;
  const sending = (async () => {
    for await (const piece of readBody(reader, framing)) await put(upstream, 'in', framing.kind === 'chunked' ? chunk(piece) : piece);
    if (framing.kind === 'chunked') await put(upstream, 'in', LAST_CHUNK);
  })().then(
    () => void (bodySent = true),
    (error: Error) => {
      bodyError = error;
      if (error instanceof ResetFault) resetBoth(ctx, entry, meter, client, upstream);
      else upstream.destroy();
    },
  );

  let response = parseHead(await upReader.readUntil(HEAD_END, MAX_HEAD));
  for (let i = 0; isInterim(response); i++) {
    if (i >= MAX_INTERIM) throw new Error('too many interim responses');
    await put(client, 'out', serializeHead(statusLine(response), endToEndHeaders(response)));
    response = parseHead(await upReader.readUntil(HEAD_END, MAX_HEAD));
  }
  const status = Number(response.start[1]);
  if (!Number.isInteger(status) || status < 101 || status > 599) throw new Error(`bad upstream status line`);

  if (status === 101) {
    if (!upgrade) throw new Error('upstream switched protocols unasked');
    await sending;
    if (bodyError) throw bodyError;
    const out: HeaderList = [...endToEndHeaders(response), ['Connection', 'Upgrade'], ['Upgrade', headerValue(response, 'upgrade') ?? '']];
    await put(client, 'out', serializeHead(statusLine(response), out));
    startTunnel(ctx, entry, meter, { client, clientRest: reader.detach(), upstream, upstreamRest: upReader.detach() });
    return 'done';
  }

  const inFraming = responseFraming(response, method);
  // HTTP/1.0 clients do not know chunked coding: they get the decoded body, delimited by close.
  const outFraming: Framing = inFraming.kind === 'chunked' && head.start[2] === 'HTTP/1.0' ? { kind: 'close' } : inFraming;
  let keepAlive = wantsKeepAlive(head) && !upgrade && outFraming.kind !== 'close';
  const out = endToEndHeaders(response);
  if (outFraming.kind === 'length') out.push(['Content-Length', String(outFraming.length)]);
  if (outFraming.kind === 'chunked') out.push(['Transfer-Encoding', 'chunked']);
  if (outFraming.kind === 'none') {
    // A HEAD answer or an empty body: the original length still tells the client where the message ends.
    const length = headerValue(response, 'content-length');
    if (length !== undefined) out.push(['Content-Length', length]);
  }
  out.push(['Connection', keepAlive ? 'keep-alive' : 'close']);
  await put(client, 'out', serializeHead(statusLine(response), out));
  for await (const piece of readBody(upReader, inFraming)) {
    await put(client, 'out', outFraming.kind === 'chunked' ? chunk(piece) : piece);
  }
  if (outFraming.kind === 'chunked') await put(client, 'out', LAST_CHUNK);

  if (!bodySent) {
    // Answered before the whole request body arrived: the client connection
    // is mid-message and cannot carry another request.
    keepAlive = false;
    if (bodyError instanceof ResetFault) throw bodyError;
  }
  upstream.destroy();
  ctx.settle(entry, 'ok');
  if (!keepAlive) return 'close';
  await sending;
  return 'keep-alive';
}

function isInterim(head: Head): boolean {
  const status = Number(head.start[1]);
  return status >= 100 && status < 200 && status !== 101;
}

function statusLine(response: Head): string {
  return `HTTP/1.1 ${response.start[1]} ${response.start[2]}`;
}
