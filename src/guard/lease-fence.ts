/**
 * The lease fence: in a fleet, a tunnel may only carry bytes while its
 * account's lease on that proxy holds (routing/fleet.ts keeps the local
 * deadline). The check runs before every write that reaches the socket —
 * `_write`/`_writev`, where every `write()` of a client, a pipe from the
 * relay, or the TLS layer's flush ends — so a process that was paused
 * (SIGSTOP) or cut off past its deadline sends nothing more through the
 * proxy, even on a keep-alive connection a callback picks up before any
 * timer runs. A refused write destroys the socket with the check's error.
 *
 * TLS to a target inside a tunnel writes below the JS socket (straight to
 * the TCP handle), so the TLS socket carries the same fence (inheritFence,
 * tunnel/secure.ts).
 */
import type { Socket } from 'node:net';

export type FenceCheck = () => Error | undefined;

const kFence = Symbol('session-proxy.lease-fence');

type Writable = Socket & {
  [kFence]?: FenceCheck;
  _write(chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void): void;
  _writev?(chunks: unknown[], cb: (err?: Error | null) => void): void;
};

export function fence(socket: Socket, check: FenceCheck): void {
  const s = socket as Writable;
  if (s[kFence]) return;
  s[kFence] = check;
  const write = s._write;
  s._write = function fencedWrite(this: Writable, chunk, encoding, cb) {
    const refused = check();
    if (refused) return cb(refused);
    return write.call(this, chunk, encoding, cb);
  };
  const writev = s._writev;
  if (writev) {
    s._writev = function fencedWritev(this: Writable, chunks, cb) {
      const refused = check();
      if (refused) return cb(refused);
      return writev.call(this, chunks, cb);
    };
  }
}

/** `to` runs over `from` (TLS inside a tunnel): it gets `from`'s fence. */
export function inheritFence(from: Socket, to: Socket): void {
  const check = (from as Writable)[kFence];
  if (check) fence(to, check);
}
