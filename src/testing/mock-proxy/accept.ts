/**
 * How the mock proxy and the mock gateway take a connection: tracked, then
 * the faults a test set (refuse the next one, stall without answering), then
 * the protocol served over a paused reader. One place, so both honour the
 * same faults the same way.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import { SocketReader } from './reader.js';

export function acceptConnection(ctx: ProxyContext, socket: net.Socket, serve: (reader: SocketReader) => Promise<void>): void {
  ctx.track(socket, true);
  if (ctx.closed) return;
  if (ctx.faults.takeRefusal()) {
    socket.destroy();
    return;
  }
  if (ctx.faults.isStalled) {
    // Read and discard so the client's writes never block, but never answer;
    // a client that gives up (FIN) is let go, or it would linger half-open.
    socket.resume();
    socket.once('end', () => socket.destroy());
    return;
  }
  serve(new SocketReader(socket)).catch(() => socket.destroy());
}
