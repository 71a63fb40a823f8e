/**
 * Shared pieces of the fuzz tests (test/fuzz/*.test.ts): the run budget and
 * seed, a runner that counts the inputs each property tried and prints them
 * after the file, the checks every property makes on an error (typed, no
 * password in any view of it), and mutation arbitraries over strings and
 * bytes.
 *
 * Budget: every property has a CI-sized number of runs, small enough that
 * the whole of test/fuzz stays well under 20 s per Node on two shared cores.
 *
 * - FUZZ_RUNS=<factor>  multiplies every property's runs (FUZZ_RUNS=50 for a long local run);
 * - FUZZ_SEED=<n>       replays a seed fast-check printed (default: a fixed seed, so CI is reproducible);
 * - FUZZ_SEED=random    a new seed each run (printed in the summary line and in any failure).
 */
import fc from 'fast-check';
import { inspect } from 'node:util';
import { afterAll } from 'vitest';
import { SessionProxyError } from '../../src/errors.js';

export const SEED: number = (() => {
  const raw = process.env.FUZZ_SEED;
  if (raw === undefined || raw === '') return 0x5e55_1011;
  if (raw === 'random') return (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`FUZZ_SEED must be an integer or "random", got ${raw}`);
  return n;
})();

export const FACTOR: number = (() => {
  const raw = process.env.FUZZ_RUNS;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`FUZZ_RUNS must be a positive factor, got ${raw}`);
  return n;
})();

/** The runs of a property whose CI budget is `base`. */
export function runs(base: number): number {
  return Math.max(1, Math.round(base * FACTOR));
}

/** A vitest timeout for a test whose CI budget takes about `ms`, scaled with FUZZ_RUNS. */
export function budget(ms: number): number {
  return Math.max(20_000, Math.round(ms * FACTOR * 3));
}

interface Tally {
  name: string;
  runs: number;
  ms: number;
}
const tallies: Tally[] = [];
const outcomes = new Map<string, number>();

/** Counts what an input led to (`ok`, `ProxyAuthError`, …), for the summary line: are the fuzzers reaching every path? */
export function outcome(kind: string): void {
  outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
}

/**
 * Prints, after the file, how many inputs each property tried:
 * `[fuzz] parse: seed 1582632977, 2400 inputs in 812 ms — parseProxy(random) 600, …`.
 */
export function reportAfterAll(file: string): void {
  afterAll(() => {
    const total = tallies.reduce((n, t) => n + t.runs, 0);
    const ms = tallies.reduce((n, t) => n + t.ms, 0);
    const each = tallies.map((t) => `${t.name} ${t.runs}`).join(', ');
    const seen = outcomes.size ? `; outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
    console.log(`[fuzz] ${file}: seed ${SEED}, ${total} inputs in ${Math.round(ms)} ms — ${each}${seen}`);
  });
}

/**
 * fc.check with the file's seed and budget; records the inputs tried; on a
 * failure throws fast-check's report (seed, path, shrunk counterexample,
 * the error) so that vitest shows it.
 */
export async function fuzz<Ts>(
  name: string,
  property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>,
  baseRuns: number,
  params: fc.Parameters<Ts> = {},
): Promise<void> {
  const t0 = performance.now();
  const details = await fc.check(property as fc.IAsyncProperty<Ts>, { seed: SEED, numRuns: runs(baseRuns), includeErrorInReport: true, ...params });
  tallies.push({ name, runs: details.numRuns, ms: performance.now() - t0 });
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? 'failed';
    const error = details.errorInstance instanceof Error ? details.errorInstance.message : inspect(details.errorInstance);
    const shown = report.includes(error) ? '' : `\nError: ${error}`;
    throw new Error(`[fuzz] ${name} failed (seed ${details.seed}; replay with FUZZ_SEED=${details.seed}):\n${report}${shown}`);
  }
}

// ---------------------------------------------------------------------------
// Checks on errors
// ---------------------------------------------------------------------------

type ErrorClass = abstract new (...args: never[]) => SessionProxyError;

/** Throws unless `err` is one of `kinds` (by the brand `instanceof` and by `code`). */
export function expectTyped(err: unknown, kinds: readonly ErrorClass[], what: string): asserts err is SessionProxyError {
  if (!(err instanceof SessionProxyError) || !(err instanceof Error)) {
    throw new Error(`${what}: untyped exception ${inspect(err, { depth: 2 })}`);
  }
  const codes = kinds.map((k) => codeOf(k));
  if (!kinds.some((k) => err instanceof k) || !codes.includes(err.code)) {
    throw new Error(`${what}: expected ${kinds.map((k) => (k as unknown as { kind: string }).kind).join(' or ')}, got ${err.name} (${err.code}): ${err.message}`);
  }
  if (typeof err.message !== 'string' || err.message === '') throw new Error(`${what}: ${err.name} without a message`);
}

const codes = new Map<ErrorClass, string>();
function codeOf(kind: ErrorClass): string {
  let code = codes.get(kind);
  if (code === undefined) {
    code = (new (kind as unknown as new (m: string) => SessionProxyError)('probe')).code;
    codes.set(kind, code);
  }
  return code;
}

/** Everything a log line or a report could show of an error, its causes included. */
export function views(err: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; e !== null && e !== undefined && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    if (typeof e !== 'object') {
      out.push(String(e));
      break;
    }
    const x = e as Error;
    out.push(String(x.message), String(x), String(x.stack ?? ''), JSON.stringify(x) ?? '', inspect(x, { depth: 4 }));
  }
  return out;
}

/**
 * The spellings of a password that would give it away: as is, percent-encoded
 * (minimally and fully), in Basic credentials, its UTF-8 bytes read as latin1
 * (what a proxy's bytes become in our messages), and JSON-escaped.
 */
export function secretForms(secret: string, user?: string): string[] {
  const latin1 = Buffer.from(secret, 'utf8').toString('latin1');
  const forms = new Set([
    secret,
    encodeURIComponent(secret),
    [...Buffer.from(secret, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join(''),
    Buffer.from(secret, 'utf8').toString('base64'),
    latin1,
    JSON.stringify(secret).slice(1, -1),
    JSON.stringify(latin1).slice(1, -1),
  ]);
  if (user !== undefined) forms.add(Buffer.from(`${user}:${secret}`, 'utf8').toString('base64'));
  return [...forms];
}

/** Throws if any view of `err` contains any of `forms`. */
export function expectNoSecret(err: unknown, forms: readonly string[], what: string): void {
  for (const text of views(err)) {
    for (const form of forms) {
      if (text.includes(form)) throw new Error(`${what}: the password (as ${JSON.stringify(form)}) appears in ${JSON.stringify(text.slice(0, 400))}`);
    }
  }
}

/** Throws if the message holds a character that could split or rewrite a log line (C0 controls, DEL). */
export function expectPrintable(err: SessionProxyError, what: string): void {
  const m = /[\x00-\x1f\x7f]/.exec(err.message);
  if (m) throw new Error(`${what}: control character ${JSON.stringify(m[0])} at ${m.index} in ${JSON.stringify(err.message.slice(0, 300))}`);
}

/** Records uncaught exceptions and unhandled rejections while a file runs; `take()` returns and clears them. */
export function watchProcess(): { take(): unknown[] } {
  const seen: unknown[] = [];
  const onError = (e: unknown): void => void seen.push(e);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  afterAll(() => {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  });
  return { take: () => seen.splice(0) };
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

/** Text that breaks parsers: framing characters, controls, odd Unicode, escapes, numbers, lengths, prototype keys. */
export const NASTY_TEXT: readonly string[] = [
  '\r\n', '\n', '\r', '\0', '\t', '\v', '\x1b[2J', '\x7f', '\x85', '\u2028', '\ufeff', '\u200b', '\u00a0', ' ',
  ':', '::', '@', '@@', '/', '//', '?', '#', '[', ']', '[]', '%', '%00', '%0d%0a', '%0A', '%41', '%zz', '%e2%82', '%ff', '%25', '%3A', '%40', '%ED%A0%80',
  '.', '..', '*', '*.', ',', ';', '=', '"', "'", '\\', '$', '${', '${SP_PASS}', '${NOPE}', '$${', '}', '{', '&', '+', '~', '!',
  'é', 'ü', '🔑', '\ud800', '\udfff', 'ß', 'İ', '１２３', 'ｅｘａｍｐｌｅ', 'xn--', 'xn--zz', '\u0301', '\u202e',
  '0', '00', '1', '80', '65535', '65536', '-1', '+1', '1e3', '0x50', '99999999999999999999', '１',
  '127.0.0.1', '256.1.1.1', '1.2.3', '0.0.0.0/0', '10.0.0.0/8', '/33', '/129', '::1', '[::1]', 'fe80::1%eth0', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8:9',
  'http://', 'https://', 'socks4://', 'socks4a://', 'socks5://', 'socks5h://', 'HTTP://', 'ftp://',
  'a'.repeat(64), 'a'.repeat(256), '9'.repeat(70), 'x'.repeat(20_000),
  '__proto__', 'constructor', 'prototype',
];

export const nastyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_TEXT) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);

type Edit<T> =
  | { op: 'insert'; at: number; piece: T }
  | { op: 'delete'; at: number; len: number }
  | { op: 'replace'; at: number; len: number; piece: T }
  | { op: 'repeat'; at: number; len: number; times: number }
  | { op: 'truncate'; at: number };

function edits<T>(piece: fc.Arbitrary<T>): fc.Arbitrary<Edit<T>[]> {
  const at = fc.nat({ max: 1 << 20 });
  const len = fc.integer({ min: 1, max: 16 });
  const edit: fc.Arbitrary<Edit<T>> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('insert' as const), at, piece }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), at, len }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('replace' as const), at, len, piece }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('repeat' as const), at, len, times: fc.integer({ min: 2, max: 40 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
  );
  return fc.array(edit, { minLength: 1, maxLength: 4 });
}

interface Sequence<S, T> {
  length(s: S): number;
  slice(s: S, a: number, b?: number): S;
  concat(...parts: S[]): S;
  from(piece: T): S;
}

function applyEdits<S, T>(seq: Sequence<S, T>, s: S, list: readonly Edit<T>[]): S {
  for (const e of list) {
    const n = seq.length(s);
    const at = e.at % (n + 1);
    switch (e.op) {
      case 'insert':
        s = seq.concat(seq.slice(s, 0, at), seq.from(e.piece), seq.slice(s, at));
        break;
      case 'delete':
        s = seq.concat(seq.slice(s, 0, at), seq.slice(s, at + e.len));
        break;
      case 'replace':
        s = seq.concat(seq.slice(s, 0, at), seq.from(e.piece), seq.slice(s, at + e.len));
        break;
      case 'repeat': {
        const part = seq.slice(s, at, at + e.len);
        s = seq.concat(seq.slice(s, 0, at), ...Array<S>(e.times).fill(part), seq.slice(s, at));
        break;
      }
      case 'truncate':
        s = seq.slice(s, 0, at);
        break;
    }
  }
  return s;
}

const strings: Sequence<string, string> = {
  length: (s) => s.length,
  slice: (s, a, b) => s.slice(a, b),
  concat: (...parts) => parts.join(''),
  from: (piece) => piece,
};

/** `base` with 1-4 edits (insert, delete, replace, repeat a span, truncate) using `pieces`. */
export function mutatedString(base: fc.Arbitrary<string>, pieces: fc.Arbitrary<string> = nastyText): fc.Arbitrary<string> {
  return fc.tuple(base, edits(pieces)).map(([s, list]) => applyEdits(strings, s, list));
}

const bytes: Sequence<Buffer, Buffer> = {
  length: (s) => s.length,
  slice: (s, a, b) => s.subarray(a, b),
  concat: (...parts) => Buffer.concat(parts),
  from: (piece) => piece,
};

/** Byte values and runs that mean something in the handshakes: versions, reply codes, lengths, CR/LF. */
export const nastyBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x5a, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 0x0d, 0x0a, 0x20, 0x3a).map((b) => Buffer.from([b])) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((a) => Buffer.from(a)) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('\r\n', '\r\n\r\n', '\n\n', 'HTTP/1.1 ', 'HTTP/1.0 200', ' 200 OK', ' 407 ', '999', 'Content-Length: 5', 'Transfer-Encoding: chunked', ': ', '\0', '\xed\xa0\x80')
      .map((s) => Buffer.from(s, 'latin1')),
  },
  { weight: 1, arbitrary: fc.constantFrom(300, 20_000, 70_000).map((n) => Buffer.alloc(n, 0x41)) },
);

/** `base` with 1-4 byte-level edits. */
export function mutatedBytes(base: fc.Arbitrary<Buffer>, pieces: fc.Arbitrary<Buffer> = nastyBytes): fc.Arbitrary<Buffer> {
  return fc.tuple(base, edits(pieces)).map(([s, list]) => applyEdits(bytes, s, list));
}

/** Splits `data` into pieces at the given cut points (for writing it in fragments). */
export function fragments(data: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) out.push(data.subarray(last, p));
    last = Math.max(last, p);
  }
  if (last < data.length || out.length === 0) out.push(data.subarray(last));
  return out;
}
