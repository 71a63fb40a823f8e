/**
 * Reads a proxy handshake off a socket in paused ("readable") mode, so that
 * when the handshake is over not a byte of the tunnelled stream has been
 * consumed: leftovers are unshifted back and the socket is handed on paused,
 * for the next owner (a TLS wrapper, undici, an http.Agent) to read.
 */
import type { Socket } from 'node:net';

export class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly onReadable = (): void => this.drain();
  private readonly onEnd = (): void => this.fail(new Error('proxy closed the connection during the handshake'));
  private readonly onError = (err: Error): void => this.fail(err);

  constructor(private readonly socket: Socket) {
    socket.on('readable', this.onReadable);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Resolves with exactly `n` bytes. */
  async exactly(n: number): Promise<Buffer> {
    while (this.buffered.length < n) await this.more();
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Resolves with everything up to and including `delimiter`; fails past `limit` bytes. */
  async until(delimiter: string, limit: number): Promise<Buffer> {
    for (;;) {
      const at = this.buffered.indexOf(delimiter);
      if (at !== -1) {
        const end = at + delimiter.length;
        const out = this.buffered.subarray(0, end);
        this.buffered = this.buffered.subarray(end);
        return out;
      }
      if (this.buffered.length > limit) throw new Error(`proxy response exceeds ${limit} bytes`);
      await this.more();
    }
  }

  /** Detaches from the socket and returns any bytes read past the handshake. */
  release(): Buffer {
    this.socket.removeListener('readable', this.onReadable);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('error', this.onError);
    return this.buffered;
  }

  private more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.waiter = () => (this.failure ? reject(this.failure) : resolve());
      this.drain();
    });
  }

  private drain(): void {
    let chunk: Buffer | null;
    let got = false;
    while ((chunk = this.socket.read() as Buffer | null) !== null) {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      got = true;
    }
    if (got) this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
