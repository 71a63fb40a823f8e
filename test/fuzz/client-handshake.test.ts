/**
 * Fuzzing our side of the handshakes (src/tunnel: HTTP CONNECT, SOCKS5 with
 * and without user/pass, SOCKS4/4a) over real loopback sockets: a tiny
 * server plays the proxy and answers openTunnel's handshake with real
 * replies, mutated (bytes inserted, deleted, replaced, repeated, cut, huge
 * runs) and sometimes carrying the password (raw, percent-encoded, in Basic
 * credentials), sent whole or in fragments, then hangs up, resets or stays
 * silent. openTunnel must resolve with a socket or reject with a
 * ProxyConnectError / ProxyAuthError within its connectTimeout, never hang,
 * never throw anything untyped, and never show the password; nothing may
 * escape as an uncaught exception.
 */
import fc from 'fast-check';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ProxyAuthError, ProxyConnectError } from '../../src/errors.js';
import { parseProxy } from '../../src/proxy/parse.js';
import type { ProxyEndpoint } from '../../src/proxy/endpoint.js';
import { openTunnel } from '../../src/tunnel/open-tunnel.js';
import { budget, expectNoSecret, expectPrintable, expectTyped, fragments, fuzz, mutatedBytes, outcome as seen, reportAfterAll, secretForms, watchProcess } from './support.js';

reportAfterAll('client-handshake');
const uncaught = watchProcess();

const CONNECT_TIMEOUT = 100;
const USER = 'bot';
const SECRETS = ['Zq9xK-S3CR3T-wv7', 'pässwörd-Zq9-🔑'];

interface Script {
  response: Buffer;
  cuts: number[];
  gapMs: number;
  trigger: 'connect' | 'data';
  after: 'end' | 'destroy' | 'reset' | 'stay';
}

let script: Script | undefined;
const open = new Set<net.Socket>();
let server: net.Server;
let port: number;

function play(socket: net.Socket, s: Script): void {
  const run = async (): Promise<void> => {
    for (const piece of fragments(s.response, s.cuts)) {
      if (socket.destroyed) return;
      socket.write(piece);
      if (s.gapMs) await sleep(s.gapMs);
    }
    if (socket.destroyed) return;
    if (s.after === 'end') socket.end();
    else if (s.after === 'destroy') socket.destroy();
    else if (s.after === 'reset') socket.resetAndDestroy();
  };
  if (s.trigger === 'connect') void run();
  else socket.once('data', () => void run());
  socket.resume();
}

beforeAll(async () => {
  server = net.createServer((socket) => {
    open.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => open.delete(socket));
    if (script) play(socket, script);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

const b = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
const v6 = [5, 0, 0, 4, ...Array<number>(15).fill(0), 1, 0x1f, 0x90];
const name = [5, 0, 0, 3, 9, ...Buffer.from('proxy.lan'), 0, 80];

/** Real replies (and near misses) per handshake, the corpus the mutations start from. */
const REPLIES: Record<'http' | 'socks5' | 'socks4', Buffer[]> = {
  http: [
    b('HTTP/1.1 200 Connection established\r\n\r\n'),
    b('HTTP/1.0 200 OK\r\nProxy-Agent: squid/6\r\n\r\n'),
    b('HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01\x00\x05hello'),
    b('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'),
    b('HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>cannot reach</html>'),
    b('HTTP/1.1 403 Forbidden\r\n\r\n'),
    b('HTTP/1.1 400 Bad Request\r\n\r\n'),
    b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n'),
    b('HTTP/2 200\r\n\r\n'),
    b('SSH-2.0-OpenSSH_9.6\r\n'),
  ],
  socks5: [
    b([5, 0], v4),
    b([5, 0], v6),
    b([5, 0], name),
    b([5, 2, 1, 0], v4),
    b([5, 2, 1, 1]),
    b([5, 0xff]),
    b([5, 0], [5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
    b([5, 0], [5, 1, 0, 1, 0, 0, 0, 0, 0, 0]),
    b([5, 0], v4, 'HTTP/1.1 200 OK\r\n\r\n'),
    b([4, 0x5a, 0, 0, 0, 0, 0, 0]),
  ],
  socks4: [
    b([0, 0x5a, 0, 0, 0, 0, 0, 0]),
    b([0, 0x5a, 0x1f, 0x90, 127, 0, 0, 1], 'early data'),
    b([0, 0x5b, 0, 0, 0, 0, 0, 0]),
    b([0, 0x5d, 0, 0, 0, 0, 0, 0]),
    b([0, 0x5c, 0, 0, 0, 0, 0, 0]),
    b([5, 0]),
  ],
};

interface Case {
  proxy: ProxyEndpoint;
  secret: string | undefined;
  kind: keyof typeof REPLIES;
}

function cases(): Case[] {
  const out: Case[] = [];
  const at = `127.0.0.1:${port}`;
  for (const secret of SECRETS) {
    const pw = encodeURIComponent(secret);
    out.push({ proxy: parseProxy(`http://${USER}:${pw}@${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret, kind: 'http' });
    out.push({ proxy: parseProxy(`socks5://${USER}:${pw}@${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret, kind: 'socks5' });
  }
  out.push({ proxy: parseProxy(`http://${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret: undefined, kind: 'http' });
  out.push({ proxy: parseProxy(`socks5h://${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret: undefined, kind: 'socks5' });
  out.push({ proxy: parseProxy(`socks4://${USER}@${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret: undefined, kind: 'socks4' });
  out.push({ proxy: parseProxy(`socks4a://${USER}@${at}`, { connectTimeout: CONNECT_TIMEOUT }), secret: undefined, kind: 'socks4' });
  return out;
}

/** The password as a proxy that echoes our request might send it back. */
function planted(secret: string): Buffer[] {
  const basic = Buffer.from(`${USER}:${secret}`).toString('base64');
  return [secret, encodeURIComponent(secret), basic, `Proxy-Authorization: Basic ${basic}`].map((s) => Buffer.from(s, 'utf8'));
}

const TARGETS = [
  { host: '10.0.0.1', port: 443 },
  { host: 'example.test', port: 80 },
  { host: '::1', port: 8443 },
];

describe('fuzz: openTunnel against a proxy answering mutated handshakes', () => {
  it(
    'resolves with a socket or rejects with a ProxyConnectError/ProxyAuthError in time; never the password',
    async () => {
      const all = cases();
      const arbitrary = fc
        .record({
          c: fc.nat({ max: all.length - 1 }),
          reply: fc.nat(),
          mutate: fc.boolean(),
          plant: fc.option(fc.record({ which: fc.nat({ max: 3 }), at: fc.nat() }), { freq: 3 }),
          target: fc.nat({ max: TARGETS.length - 1 }),
          cuts: fc.array(fc.nat(), { maxLength: 4 }),
          gapMs: fc.constantFrom(0, 0, 0, 0, 1, 5),
          trigger: fc.constantFrom<Script['trigger']>('data', 'data', 'connect'),
          after: fc.constantFrom<Script['after']>('end', 'end', 'end', 'end', 'destroy', 'reset', 'reset', 'stay'),
        })
        .chain((r) => {
          const replies = REPLIES[all[r.c]!.kind];
          const base = replies[r.reply % replies.length]!;
          return (r.mutate ? mutatedBytes(fc.constant(base)) : fc.constant(base)).map((response) => ({ ...r, response }));
        });

      await fuzz(
        'openTunnel',
        fc.asyncProperty(arbitrary, async (r) => {
          const { proxy, secret } = all[r.c]!;
          let response = r.response;
          if (r.plant && secret) {
            const piece = planted(secret)[r.plant.which]!;
            const at = r.plant.at % (response.length + 1);
            response = Buffer.concat([response.subarray(0, at), piece, response.subarray(at)]);
          }
          script = { response, cuts: r.cuts, gapMs: r.gapMs, trigger: r.trigger, after: r.after };
          const target = proxy.protocol === 'socks4' ? TARGETS[0]! : TARGETS[r.target]!;
          const what = `openTunnel(${proxy.url}, ${target.host}:${target.port}) answered ${JSON.stringify(response.toString('latin1').slice(0, 200))} (${r.after})`;
          const t0 = performance.now();
          const outcome = await Promise.race([
            openTunnel(proxy, target, { account: 'acct' }).then(
              (socket) => ({ socket }),
              (error: unknown) => ({ error }),
            ),
            sleep(CONNECT_TIMEOUT + 1500).then(() => ({ hang: true as const })),
          ]);
          try {
            if ('hang' in outcome) throw new Error(`${what}: neither settled within connectTimeout + 1.5 s`);
            if ('socket' in outcome) {
              seen('tunnel');
              outcome.socket.on('error', () => {});
              outcome.socket.destroy();
            } else {
              seen(/within \d+ ms/.test(String((outcome.error as Error)?.message)) ? 'timeout' : String((outcome.error as Error)?.name));
              expectTyped(outcome.error, [ProxyConnectError, ProxyAuthError], what);
              expectPrintable(outcome.error, what);
              if (secret) expectNoSecret(outcome.error, secretForms(secret, USER), what);
              if (outcome.error.account !== 'acct' || outcome.error.proxy !== proxy.url) throw new Error(`${what}: error names ${outcome.error.account} / ${outcome.error.proxy}`);
            }
            const took = performance.now() - t0;
            if (took > CONNECT_TIMEOUT + 1000) throw new Error(`${what}: took ${Math.round(took)} ms`);
          } finally {
            for (const s of open) s.destroy();
          }
          // Late events (an error on a socket we gave up on) land here, not in vitest.
          await new Promise((resolve) => setImmediate(resolve));
          const escaped = uncaught.take();
          if (escaped.length) throw new Error(`${what}: uncaught ${String((escaped[0] as Error)?.stack ?? escaped[0])}`);
        }),
        200,
      );
    },
    budget(8000),
  );
});
