/**
 * An HTTP proxy session on one client connection: requests are read one
 * after another (keep-alive) until the client closes, a CONNECT turns the
 * connection into a tunnel, or an answer closes it.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { answer } from './http-answer.js';
import { handleConnect } from './http-connect.js';
import { handleForward } from './http-forward.js';
import { HEAD_END, MAX_HEAD, parseHead, type Head } from './http-message.js';
import { hangUp } from './io.js';
import { EndOfStream, type SocketReader } from './reader.js';

export async function serveHttp(ctx: ProxyContext, client: net.Socket, reader: SocketReader): Promise<void> {
  // Bounded by the connection's lifetime: each turn consumes one request or ends it.
  for (;;) {
    if (!(await reader.hasMore())) {
      hangUp(client, reader);
      return;
    }
    let head: Head;
    try {
      head = parseHead(await reader.readUntil(HEAD_END, MAX_HEAD));
    } catch (error) {
      if (error instanceof EndOfStream) client.destroy();
      else answer(client, reader, 400, (error as Error).message);
      return;
    }
    if (!/^HTTP\/1\.[01]$/.test(head.start[2])) {
      answer(client, reader, 400, 'not an HTTP/1.x request');
      return;
    }
    if (head.start[0] === 'CONNECT') {
      await handleConnect(ctx, client, reader, head);
      return;
    }
    const outcome = await handleForward(ctx, client, reader, head);
    if (outcome === 'close') hangUp(client, reader);
    if (outcome !== 'keep-alive') return;
  }
}
