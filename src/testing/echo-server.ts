/**
 * An echo server for egress tests: HTTP and HTTPS (optionally HTTP/2) on two
 * ports, WebSocket on both. Every answer says which IP and port the request
 * came from, so a test can tell which egress (proxy, `egressIp`) it took.
 * It only accepts connections, it never opens any.
 */
import { setMaxListeners } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { testCa, testCert, testKey } from './certs.js';

export interface EchoServerOptions {
  /** Listen address, default '127.0.0.1'. */
  host?: string;
  /** Also serve HTTP/2 (ALPN h2) on the TLS port. */
  http2?: boolean;
}

export interface EchoPeer {
  ip: string;
  port: number;
  protocol: 'http' | 'https' | 'ws' | 'wss' | 'h2';
  at: number;
}

export interface EchoTimelineEntry {
  at: number;
  ip: string;
  port: number;
  method: string;
  path: string;
}

export interface EchoReply {
  ip: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The request body as UTF-8, if there was one. */
  body?: string;
}

export interface EchoServer {
  host: string;
  httpPort: number;
  httpsPort: number;
  httpUrl: string;
  httpsUrl: string;
  wsUrl: string;
  wssUrl: string;
  /** The CA that signed the server certificate (= testCa). */
  ca: string;
  /** One entry per accepted TCP/TLS connection: the egress as the world sees it. */
  peers: EchoPeer[];
  /** Every request answered (WebSocket messages too, as method 'WS'). */
  requests: EchoReply[];
  /**
   * The same requests with when they arrived (Date.now()), in order: what a
   * test reads to tell which egress served whom over time (the fleet tests).
   */
  timeline: EchoTimelineEntry[];
  /** Closes the servers, destroying open connections. */
  close(): Promise<void>;
}

/** Request bodies are echoed back, so they are bounded. */
const MAX_BODY = 8 * 1024 * 1024;
/** Bounds of /stream, so a typo in a test cannot make the server stream forever. */
const MAX_CHUNKS = 10_000;
const MAX_CHUNK_SIZE = 1024 * 1024;
const MAX_CHUNK_DELAY_MS = 1_000;

/** What the handler needs from a request, HTTP/1 or the HTTP/2 compatibility API alike. */
interface AnyRequest extends AsyncIterable<Buffer | string> {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  socket: { remoteAddress?: string | undefined; remotePort?: number | undefined } | null;
}

interface AnyResponse {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  write(chunk: string | Buffer): boolean;
  end(): unknown;
  end(chunk: string | Buffer): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

/** '::ffff:127.0.0.1' (an IPv4 peer on a dual-stack socket) → '127.0.0.1'. */
function normalizeIp(address: string | undefined): string {
  const ip = address ?? '';
  return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${normalizeIp(address)}|${port}`;
}

async function readBody(req: AnyRequest): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const piece of req) {
    const buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
    size += buf.length;
    if (size > MAX_BODY) throw new RangeError('request body too large');
    chunks.push(buf);
  }
  return size === 0 ? undefined : Buffer.concat(chunks).toString('utf8');
}

function clampInt(value: string | null, fallback: number, min: number, max: number): number {
  const n = value === null ? fallback : Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

/** A whole answer with its length, so raw-socket clients in tests need not decode chunked coding. */
function send(res: AnyResponse, contentType: string, text: string): void {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
  res.end(body);
}

function waitDrain(res: AnyResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

export async function startEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  const host = options.host ?? '127.0.0.1';
  const peers: EchoPeer[] = [];
  const requests: EchoReply[] = [];
  const timeline: EchoTimelineEntry[] = [];
  const sockets = new Set<net.Socket>();
  /** Open connections by "ip|port", so a TLS socket or an upgrade finds its peer entry. */
  const livePeers = new Map<string, EchoPeer>();
  const shutdown = new AbortController();
  // Every delayed /stream waits on this one signal: many concurrent streams are normal, not a listener leak.
  setMaxListeners(0, shutdown.signal);
  const wss = new WebSocketServer({ noServer: true });

  const handle = async (req: AnyRequest, res: AnyResponse): Promise<void> => {
    const ip = normalizeIp(req.socket?.remoteAddress);
    const port = req.socket?.remotePort ?? 0;
    const path = req.url ?? '/';
    let body: string | undefined;
    try {
      body = await readBody(req);
    } catch {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
      res.end('request body too large\n');
      return;
    }
    const reply: EchoReply = { ip, port, method: req.method ?? '', path, headers: req.headers };
    if (body !== undefined) reply.body = body;
    requests.push(reply);
    timeline.push({ at: Date.now(), ip, port, method: reply.method, path });

    const url = new URL(path, 'http://echo.invalid');
    if (url.pathname === '/ip') return send(res, 'text/plain; charset=utf-8', ip);
    if (url.pathname === '/stream') {
      const chunks = clampInt(url.searchParams.get('chunks'), 10, 0, MAX_CHUNKS);
      const size = clampInt(url.searchParams.get('size'), 1024, 1, MAX_CHUNK_SIZE);
      const delay = clampInt(url.searchParams.get('delay'), 0, 0, MAX_CHUNK_DELAY_MS);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < chunks && !res.destroyed; i++) {
        // Each chunk is one repeated letter, so a test can see the order they arrived in.
        if (!res.write(Buffer.alloc(size, 97 + (i % 26)))) await waitDrain(res);
        if (delay > 0) await sleep(delay, undefined, { signal: shutdown.signal });
      }
      res.end();
      return;
    }
    send(res, 'application/json', JSON.stringify(reply));
  };
  const onRequest = (req: AnyRequest, res: AnyResponse): void => {
    handle(req, res).catch(() => {
      // Only reachable when the client went away or the server is closing.
      if (!res.destroyed) res.end();
    });
  };

  const plain = http.createServer((req, res) => onRequest(req, res));
  const tlsOptions = { cert: testCert, key: testKey };
  const secure = options.http2
    ? http2.createSecureServer({ ...tlsOptions, allowHTTP1: true }, (req, res) => onRequest(req, res))
    : https.createServer(tlsOptions, (req, res) => onRequest(req, res));

  const watch = (server: net.Server, protocol: 'http' | 'https'): void => {
    server.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      const peer: EchoPeer = { ip: normalizeIp(socket.remoteAddress), port: socket.remotePort ?? 0, protocol, at: Date.now() };
      const key = peerKey(socket.remoteAddress, socket.remotePort);
      peers.push(peer);
      livePeers.set(key, peer);
      socket.once('close', () => {
        sockets.delete(socket);
        livePeers.delete(key);
      });
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        socket.destroy();
        return;
      }
      const peer = livePeers.get(peerKey(req.socket.remoteAddress, req.socket.remotePort));
      if (peer) peer.protocol = protocol === 'http' ? 'ws' : 'wss';
      wss.handleUpgrade(req, socket, head, (ws) => echoWebSocket(ws, req));
    });
  };
  watch(plain, 'http');
  watch(secure, 'https');
  secure.on('secureConnection', (socket: import('node:tls').TLSSocket) => {
    const peer = livePeers.get(peerKey(socket.remoteAddress, socket.remotePort));
    if (peer && socket.alpnProtocol === 'h2') peer.protocol = 'h2';
  });

  const echoWebSocket = (ws: WebSocket, req: http.IncomingMessage): void => {
    ws.on('error', () => {
      // A client dropping mid-frame is not the echo server's problem.
    });
    ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8');
      const reply: EchoReply = {
        ip: normalizeIp(req.socket.remoteAddress),
        port: req.socket.remotePort ?? 0,
        method: 'WS',
        path: req.url ?? '/',
        headers: req.headers,
        body: text,
      };
      requests.push(reply);
      timeline.push({ at: Date.now(), ip: reply.ip, port: reply.port, method: 'WS', path: reply.path });
      ws.send(JSON.stringify(reply), { binary: isBinary });
    });
  };

  const listen = (server: net.Server): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: 0 }, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const httpPort = await listen(plain);
  const httpsPort = await listen(secure);
  const hostInUrl = net.isIPv6(host) ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      shutdown.abort();
      const closed = [plain, secure].map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const ws of wss.clients) ws.terminate();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await Promise.all(closed);
    })());

  return {
    host,
    httpPort,
    httpsPort,
    httpUrl: `http://${hostInUrl}:${httpPort}`,
    httpsUrl: `https://${hostInUrl}:${httpsPort}`,
    wsUrl: `ws://${hostInUrl}:${httpPort}`,
    wssUrl: `wss://${hostInUrl}:${httpsPort}`,
    ca: testCa,
    peers,
    requests,
    timeline,
    close,
  };
}
