/**
 * Just enough HTTP/1.1 message handling for a forward proxy: heads, body
 * framing (length, chunked, until-close) and chunked coding. Written here
 * rather than borrowed from `http.request` because the proxy's upstream must
 * stay on the raw plumbing socket, out of reach of any installed manager.
 */
import type { SocketReader } from './reader.js';

export const CRLF = Buffer.from('\r\n');
export const HEAD_END = Buffer.from('\r\n\r\n');
/** Bounds a head, so a client that never sends CRLFCRLF cannot grow memory. */
export const MAX_HEAD = 64 * 1024;
const MAX_LINE = 8 * 1024;
const PIECE = 64 * 1024;

export type HeaderList = Array<[name: string, value: string]>;

export interface Head {
  /** The three parts of the start line; the reason phrase may contain spaces. */
  start: [string, string, string];
  headers: HeaderList;
}

export type Framing =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'close' };

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus the proxy's own. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
]);

export function parseHead(raw: Buffer): Head {
  // latin1 keeps every byte as one char, so nothing is mangled on the way through.
  const lines = raw.toString('latin1').split('\r\n');
  const first = lines.shift() ?? '';
  const a = first.indexOf(' ');
  const b = a < 0 ? -1 : first.indexOf(' ', a + 1);
  if (a <= 0) throw new Error('malformed start line');
  const start: [string, string, string] =
    b < 0 ? [first.slice(0, a), first.slice(a + 1), ''] : [first.slice(0, a), first.slice(a + 1, b), first.slice(b + 1)];
  const headers: HeaderList = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    // Obsolete line folding and nameless lines are refused, as RFC 9112 §5.2 allows.
    if (colon <= 0 || line.startsWith(' ') || line.startsWith('\t')) throw new Error('malformed header line');
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return { start, headers };
}

export function headerValues(head: Head, name: string): string[] {
  const lower = name.toLowerCase();
  return head.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

export function headerValue(head: Head, name: string): string | undefined {
  return headerValues(head, name)[0];
}

/** Comma-separated tokens of a header, lower-cased (Connection: keep-alive, Upgrade). */
export function headerTokens(head: Head, name: string): string[] {
  return headerValues(head, name)
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** The end-to-end headers: hop-by-hop ones and those named in Connection are dropped. */
export function endToEndHeaders(head: Head): HeaderList {
  const named = new Set(headerTokens(head, 'connection'));
  return head.headers.filter(([n]) => {
    const lower = n.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !named.has(lower);
  });
}

export function serializeHead(startLine: string, headers: HeaderList): Buffer {
  let text = `${startLine}\r\n`;
  for (const [n, v] of headers) text += `${n}: ${v}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

function lengthOf(head: Head): number | undefined {
  const values = headerValues(head, 'content-length');
  if (values.length === 0) return undefined;
  const distinct = new Set(values.flatMap((v) => v.split(',')).map((v) => v.trim()));
  const [only] = distinct;
  if (distinct.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) throw new Error('bad content-length');
  return Number(only);
}

function isChunked(head: Head): boolean {
  const codings = headerTokens(head, 'transfer-encoding');
  if (codings.length === 0) return false;
  // Only "chunked" as the final coding frames a message; anything else is a smuggling risk.
  if (codings[codings.length - 1] !== 'chunked') throw new Error('unsupported transfer-encoding');
  return true;
}

export function requestFraming(head: Head): Framing {
  if (isChunked(head)) return { kind: 'chunked' };
  const length = lengthOf(head);
  return length ? { kind: 'length', length } : { kind: 'none' };
}

export function responseFraming(head: Head, requestMethod: string): Framing {
  const status = Number(head.start[1]);
  if (requestMethod === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return { kind: 'none' };
  }
  if (isChunked(head)) return { kind: 'chunked' };
  const length = lengthOf(head);
  if (length !== undefined) return length === 0 ? { kind: 'none' } : { kind: 'length', length };
  return { kind: 'close' };
}

/** The decoded body, piece by piece (chunk extensions and trailers are dropped). */
export async function* readBody(reader: SocketReader, framing: Framing): AsyncGenerator<Buffer> {
  switch (framing.kind) {
    case 'none':
      return;
    case 'length':
      for (let left = framing.length; left > 0; ) {
        const piece = await reader.readAtMost(Math.min(left, PIECE));
        if (piece === null) throw new Error('body ended early');
        left -= piece.length;
        yield piece;
      }
      return;
    case 'close':
      for (let piece = await reader.readAtMost(PIECE); piece !== null; piece = await reader.readAtMost(PIECE)) {
        yield piece;
      }
      return;
    case 'chunked':
      for (;;) {
        const sizeText = (await reader.readUntil(CRLF, MAX_LINE)).toString('latin1').split(';')[0]!.trim();
        if (!/^[0-9a-f]{1,12}$/i.test(sizeText)) throw new Error('bad chunk size');
        const size = parseInt(sizeText, 16);
        if (size === 0) {
          await skipTrailers(reader);
          return;
        }
        for (let left = size; left > 0; ) {
          const piece = await reader.readAtMost(Math.min(left, PIECE));
          if (piece === null) throw new Error('body ended early');
          left -= piece.length;
          yield piece;
        }
        if ((await reader.readExact(2)).toString('latin1') !== '\r\n') throw new Error('bad chunk terminator');
      }
  }
}

/** The trailer section: header lines up to an empty one (bounded, like a head). */
async function skipTrailers(reader: SocketReader): Promise<void> {
  for (let lines = 0; lines < 256; lines++) {
    if ((await reader.readUntil(CRLF, MAX_LINE)).length === 0) return;
  }
  throw new Error('too many trailer lines');
}

/** One chunk of chunked coding around `data` (never called with empty data: that is the last-chunk). */
export function chunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF]);
}

export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
