/**
 * Relaying an established tunnel (CONNECT, SOCKS, an HTTP upgrade) between
 * client and upstream: counts payload bytes into the log entry, keeps
 * backpressure, propagates half-closes, and applies the resetAfter fault.
 */
import type * as net from 'node:net';
import type { ProxyContext } from './context.js';
import type { MockProxyLogEntry } from './types.js';

type Direction = 'in' | 'out';

/** Counts payload into a log entry and enforces the resetAfter budget (both directions together). */
export class Meter {
  constructor(
    private readonly entry: MockProxyLogEntry,
    readonly limit: number | null,
  ) {}

  /** True once the budget is used up: the connection must be reset now. */
  get spent(): boolean {
    return this.limit !== null && this.entry.bytesIn + this.entry.bytesOut >= this.limit;
  }

  /** Counts the chunk and returns the part of it that still fits the budget. */
  admit(direction: Direction, chunk: Buffer): Buffer {
    let pass = chunk;
    if (this.limit !== null) {
      const room = Math.max(0, this.limit - this.entry.bytesIn - this.entry.bytesOut);
      if (pass.length > room) pass = pass.subarray(0, room);
    }
    if (direction === 'in') this.entry.bytesIn += pass.length;
    else this.entry.bytesOut += pass.length;
    return pass;
  }

  resetMessage(): string {
    return `reset by fault after ${this.limit} bytes`;
  }
}

/** Resets both sides with RST, as a dropped connection looks to the client: the fault's whole point. */
export function resetBoth(ctx: ProxyContext, entry: MockProxyLogEntry, meter: Meter, a: net.Socket, b: net.Socket): void {
  ctx.settle(entry, 'error', meter.resetMessage());
  for (const socket of [a, b]) {
    if (!socket.destroyed) socket.resetAndDestroy();
  }
}

export interface TunnelEnds {
  client: net.Socket;
  /** Bytes the client sent after its handshake, already read off the socket. */
  clientRest: Buffer;
  upstream: net.Socket;
  /** Bytes the target sent that were read while parsing (an upgrade's response). */
  upstreamRest: Buffer;
}

export function startTunnel(ctx: ProxyContext, entry: MockProxyLogEntry, meter: Meter, ends: TunnelEnds): void {
  const { client, upstream } = ends;
  let failure: string | undefined;
  let open = 2;
  let resetting = false;

  const reset = (): void => {
    if (resetting) return;
    resetting = true;
    resetBoth(ctx, entry, meter, client, upstream);
  };

  const send = (to: net.Socket, direction: Direction, chunk: Buffer, from: net.Socket): void => {
    if (resetting) return;
    const pass = meter.admit(direction, chunk);
    if (meter.spent) {
      // Let the last allowed bytes reach the kernel before the RST.
      if (pass.length > 0) to.write(pass, reset);
      else reset();
      return;
    }
    if (pass.length > 0 && !to.write(pass)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  };

  const closeGently = (socket: net.Socket): void => {
    if (socket.destroyed) return;
    // Flush what is queued, then drop: the other end is gone, nothing more can be relayed.
    if (!socket.writableEnded) socket.end();
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };

  const onClosed = (other: net.Socket, hadError: boolean): void => {
    if (hadError) other.destroy();
    else closeGently(other);
    if (--open === 0) ctx.settle(entry, failure === undefined ? 'ok' : 'error', failure);
  };

  const wire = (from: net.Socket, to: net.Socket, direction: Direction): void => {
    from.on('data', (chunk: Buffer) => send(to, direction, chunk, from));
    // Only the target's side can fail a tunnel. Clients hang up as they like:
    // curl, for one, resets TLS connections that hold an unread session ticket.
    if (direction === 'out') from.on('error', (error: Error) => (failure ??= error.message));
    const ended = (): void => {
      if (!to.destroyed && !to.writableEnded) to.end();
    };
    const closed = (hadError: boolean): void => onClosed(to, hadError);
    // The handshake reader may already have seen the end or the close.
    if (from.readableEnded) ended();
    else from.on('end', ended);
    if (from.destroyed && from.closed) queueMicrotask(() => closed(false));
    else from.once('close', closed);
  };

  wire(client, upstream, 'in');
  wire(upstream, client, 'out');
  if (meter.spent) {
    reset();
    return;
  }
  // Resume first: 'data' events only come on a later tick, so the buffered
  // bytes below still go out first, and their backpressure pause sticks.
  client.resume();
  upstream.resume();
  if (ends.clientRest.length > 0) send(upstream, 'in', ends.clientRest, client);
  if (ends.upstreamRest.length > 0) send(client, 'out', ends.upstreamRest, upstream);
}
