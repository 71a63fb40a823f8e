/**
 * An HTTP proxy session on one client connection: requests are read one
 * after another (keep-alive) until the client closes, a CONNECT turns the
 * connection into a tunnel, or an answer closes it. Every request whose head
 * could be read gets a log entry with its raw head, malformed ones included.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { answer, refuseMalformed } from './http-answer.js';
import { handleConnect } from './http-connect.js';
import { handleForward } from './http-forward.js';
import { HEAD_END, MAX_HEAD, parseHead, type Head } from './http-message.js';
import { hangUp } from './io.js';
import { rawText } from './raw-head.js';
import { EndOfStream, type SocketReader } from './reader.js';

export async function serveHttp(ctx: ProxyContext, client: net.Socket, reader: SocketReader): Promise<void> {
  // Bounded by the connection's lifetime: each turn consumes one request or ends it.
  for (;;) {
    if (!(await reader.hasMore())) {
      hangUp(client, reader);
      return;
    }
    let raw: Buffer;
    try {
      raw = await reader.readUntil(HEAD_END, MAX_HEAD);
    } catch (error) {
      if (error instanceof EndOfStream) client.destroy();
      else answer(client, reader, 400, (error as Error).message);
      return;
    }
    const rawHead = rawText(raw, HEAD_END);
    let head: Head;
    try {
      head = parseHead(raw);
    } catch (error) {
      refuseMalformed(ctx, client, reader, rawHead, (error as Error).message);
      return;
    }
    if (!/^HTTP\/1\.[01]$/.test(head.start[2])) {
      refuseMalformed(ctx, client, reader, rawHead, 'not an HTTP/1.x request');
      return;
    }
    if (head.start[0] === 'CONNECT') {
      await handleConnect(ctx, client, reader, head, rawHead);
      return;
    }
    const outcome = await handleForward(ctx, client, reader, head, rawHead);
    if (outcome === 'close') hangUp(client, reader);
    if (outcome !== 'keep-alive') return;
  }
}
