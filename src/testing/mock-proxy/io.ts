/** Socket writes with backpressure, the proxy's way of hanging up after a final answer, and listening on a free port. */
import type * as net from 'node:net';
import type { SocketReader } from './reader.js';

/** How long a client may take to close after our final answer before we drop it. */
const LINGER_MS = 2_000;

export function writeAll(socket: net.Socket, data: Buffer): Promise<void> {
  if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('socket closed'));
  if (data.length === 0 || socket.write(data)) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = (): void => settle();
    const onClose = (): void => settle(new Error('socket closed'));
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/**
 * Ends the client connection after a final answer. Whatever the client still
 * sends (the rest of a request body) is read and discarded rather than left
 * unread, because closing with unread data makes the kernel send RST, and a
 * reset could reach the client before it has read our answer.
 */
export function hangUp(client: net.Socket, reader: SocketReader): void {
  reader.detach();
  client.resume();
  if (!client.destroyed && !client.writableEnded) client.end();
  client.setTimeout(LINGER_MS, () => client.destroy());
}

/** Listens on a free port of `host`; resolves with the port (the mock proxy's and the mock gateway's servers). */
export async function listenOnFreePort(server: net.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}
