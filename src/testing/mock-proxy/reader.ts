/**
 * Pull-style reads over a socket, for parsing handshakes and HTTP messages
 * byte-exactly: whatever the client sent past the handshake (a pipelined TLS
 * ClientHello after CONNECT, a second keep-alive request) stays buffered and
 * is handed on by `detach()` instead of being lost.
 */
import type * as net from 'node:net';

/** Past this much unread data the socket is paused, so a fast sender cannot grow the buffer without bound. */
const HIGH_WATER = 256 * 1024;

export class EndOfStream extends Error {
  constructor(message = 'connection closed mid-message') {
    super(message);
    this.name = 'EndOfStream';
  }
}

export class SocketReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** First byte without consuming it; undefined if the peer closed before sending anything. */
  async peekByte(): Promise<number | undefined> {
    while (this.size === 0) {
      if (this.ended) return this.endOrThrow(undefined);
      await this.more();
    }
    return this.chunks[0]![0];
  }

  /** Waits for the next byte; false on a clean end of stream (nothing buffered). */
  async hasMore(): Promise<boolean> {
    return (await this.peekByte()) !== undefined;
  }

  async readExact(n: number): Promise<Buffer> {
    while (this.size < n) {
      if (this.ended) throw this.failure ?? new EndOfStream();
      await this.more();
    }
    return this.take(n);
  }

  /** Reads up to `delimiter`, consumes it, returns what came before; at most `max` bytes. */
  async readUntil(delimiter: Buffer, max: number): Promise<Buffer> {
    for (;;) {
      const all = this.flatten();
      const at = all.indexOf(delimiter);
      if (at >= 0 && at <= max) {
        this.take(at + delimiter.length);
        return all.subarray(0, at);
      }
      if (all.length > max) throw new Error(`message part longer than ${max} bytes`);
      if (this.ended) throw this.failure ?? new EndOfStream();
      await this.more();
    }
  }

  /** Some bytes (at most n), or null at end of stream. */
  async readAtMost(n: number): Promise<Buffer | null> {
    while (this.size === 0) {
      if (this.ended) return this.endOrThrow(null);
      await this.more();
    }
    return this.take(Math.min(n, this.size));
  }

  /** The bytes received and not read yet, without consuming them. */
  buffered(): Buffer {
    return this.flatten();
  }

  /**
   * Stops reading and returns the unread bytes. The socket is left paused:
   * whoever takes it over resumes it once its own listeners are in place.
   */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.flatten();
    this.chunks = [];
    this.size = 0;
    return rest;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= HIGH_WATER) this.socket.pause();
    this.notify();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  private readonly onError = (error: Error): void => {
    this.failure ??= error;
    this.ended = true;
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** At the end of the stream: a reset is an error, a clean end is `value`. */
  private endOrThrow<T>(value: T): T {
    if (this.failure) throw this.failure;
    return value;
  }

  private async more(): Promise<void> {
    if (this.failure) throw this.failure;
    // Someone is waiting for data, so the socket must flow even if it was paused for size.
    this.socket.resume();
    await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.failure) throw this.failure;
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(n: number): Buffer {
    const all = this.flatten();
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    return head;
  }
}
