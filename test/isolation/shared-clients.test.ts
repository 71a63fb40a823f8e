/**
 * The shared-client matrix: one client instance of each kind an app shares
 * between accounts — undici Pool/Agent/Client, a Pool as fetch's dispatcher,
 * got over http2 with its global agent, one grpc-js client on the global
 * subchannel pool, a shared http(s).Agent (through http(s).request and
 * through `new http.ClientRequest`), one WebSocket — driven concurrently from
 * alice's scope, bob's scope and outside any scope (the default route),
 * through real daemons: alice on tinyproxy (Basic auth), bob on microsocks
 * (user/pass), the default route on squid, each with its own egress address.
 *
 * Every request is found again by its id in what the server received: a
 * request that arrived from another route's egress (or direct, 127.0.0.1)
 * fails the row whether or not the client saw an error. Refusals are allowed
 * only where documented, and each must be a LeakBlockedError:
 * - undici Pool/Agent, the http(s).Agent rows: none;
 * - undici.Client: its first route (alice's, who dispatches first) is served,
 *   other routes may be refused;
 * - got http2 and grpc-js: one route is served in full, the others may be refused;
 * - a WebSocket is a stream: alice opens it, sends from alice's scope and from
 *   outside any scope leave from alice's egress, one send from bob's scope
 *   destroys the connection and nothing of bob's arrives.
 *
 * The same matrix runs in a child Node ≥ 24.5 started with NODE_USE_ENV_PROXY=1
 * and the default proxy in HTTP(S)_PROXY from start-up (Node's own http agents
 * dial the proxy themselves there): this file again, under vitest, with the
 * proxies of the parent named in SHARED_MATRIX_CHILD.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import * as undici from 'undici';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError } from '../../src/index.js';
import { startEchoServer, testCa, type EchoServer } from '../../src/testing/index.js';
import { skipWithout, startMicrosocks, startSquid, startTinyproxy, type RealProxy } from '../support/real-proxies.js';
import { EchoClient, echoService } from '../socket/grpc-echo.js';

const ROUTES = ['alice', 'bob', 'default'] as const;
type Route = (typeof ROUTES)[number];
const DIRECT = '127.0.0.1';
/** Requests per route and client: enough to queue on one-connection pools. */
const PER_ROUTE = 6;
/** Bound of one request (none should come near it). */
const REQUEST_TIMEOUT_MS = 10_000;
const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy', 'grpc_proxy'];

/** What the child gets from its parent: the running daemons. */
interface ProxySpec {
  url: string;
  egressIp: string;
}
type ProxySpecs = Record<Route, ProxySpec>;

const CHILD = process.env.SHARED_MATRIX_CHILD ? (JSON.parse(process.env.SHARED_MATRIX_CHILD) as { proxies: ProxySpecs; out: string }) : undefined;
/** Node's own agents dial the env proxy (NODE_USE_ENV_PROXY=1 from start-up). */
const ENV_PROXIED = CHILD !== undefined && process.env.NODE_USE_ENV_PROXY === '1';

// ---------------------------------------------------------------------------
// the rows
// ---------------------------------------------------------------------------

interface World {
  echo: EchoServer;
  grpc: GrpcRecorder;
}

/** One shared client, opened once, sent to from every route. */
interface Driver {
  send(id: string): Promise<unknown>;
  /** The egress addresses request `id` arrived from (empty: it never arrived). */
  arrivals(id: string): string[];
  close(): Promise<void> | void;
}

/**
 * none: every request of every route served. client: the first route (alice)
 * served in full, the others may be refused. foreign: one route served in full,
 * the others may be refused.
 */
type Policy = 'none' | 'client' | 'foreign' | 'default-only';

interface Row {
  name: string;
  policy: Policy;
  /**
   * Under NODE_USE_ENV_PROXY: an Agent that dials the environment's proxy
   * itself (Node ≥ 24.5 `proxyEnv`) sends account-scoped requests to the
   * default route's proxy — already rewritten for it (absolute-form path,
   * its Proxy-Authorization) — so those are refused; the default route is
   * served in full.
   */
  envProxied?: Policy;
  open(world: World): Driver;
}

const streamPath = (id: string): string => `/stream?chunks=2&size=8&delay=5&id=${id}`;
const byPath = (echo: EchoServer) => (id: string): string[] => echo.requests.filter((r) => r.path === streamPath(id)).map((r) => r.ip);

const undiciBody = async (r: { statusCode: number; body: { text(): Promise<string> } }): Promise<void> => {
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}: ${text.slice(0, 100)}`);
};
const fetchBody = async (r: Response): Promise<void> => {
  const text = await r.text();
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${text.slice(0, 100)}`);
};

/** One HTTP/1 exchange on a ClientRequest; resolves once the body is read. */
function exchange(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      res.on('data', () => undefined);
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Shared Node agents; under NODE_USE_ENV_PROXY they read the env proxy themselves, as Node's global agents do. */
function sharedAgent<T extends typeof http.Agent | typeof https.Agent>(Agent: T): InstanceType<T> {
  const options = { keepAlive: true, maxSockets: 1, ...(ENV_PROXIED ? { proxyEnv: process.env } : {}) };
  return new Agent(options as http.AgentOptions) as InstanceType<T>;
}

const ROWS: Row[] = [
  {
    name: 'undici.Pool c1: pool.request',
    policy: 'none',
    open({ echo }) {
      const pool = new undici.Pool(echo.httpUrl, { connections: 1 });
      return { send: (id) => pool.request({ path: streamPath(id), method: 'GET' }).then(undiciBody), arrivals: byPath(echo), close: () => pool.close() };
    },
  },
  {
    name: 'undici.Pool c4 (https): undici.request',
    policy: 'none',
    open({ echo }) {
      const pool = new undici.Pool(echo.httpsUrl, { connections: 4, connect: { ca: testCa } });
      return { send: (id) => undici.request(`${echo.httpsUrl}${streamPath(id)}`, { dispatcher: pool }).then(undiciBody), arrivals: byPath(echo), close: () => pool.close() };
    },
  },
  {
    name: 'undici.Pool c1: request + fetch dispatcher',
    policy: 'none',
    open({ echo }) {
      // The same Pool through pool.request and as global fetch's dispatcher, interleaved.
      const pool = new undici.Pool(echo.httpUrl, { connections: 1 });
      let n = 0;
      return {
        send: (id) =>
          n++ % 2
            ? fetch(`${echo.httpUrl}${streamPath(id)}`, { dispatcher: pool } as unknown as RequestInit).then(fetchBody)
            : pool.request({ path: streamPath(id), method: 'GET' }).then(undiciBody),
        arrivals: byPath(echo),
        close: () => pool.close(),
      };
    },
  },
  {
    name: 'undici.Agent c1: request + fetch dispatcher',
    policy: 'none',
    open({ echo }) {
      const agent = new undici.Agent({ connections: 1 });
      let n = 0;
      return {
        send: (id) =>
          n++ % 2
            ? fetch(`${echo.httpUrl}${streamPath(id)}`, { dispatcher: agent } as unknown as RequestInit).then(fetchBody)
            : undici.request(`${echo.httpUrl}${streamPath(id)}`, { dispatcher: agent }).then(undiciBody),
        arrivals: byPath(echo),
        close: () => agent.close(),
      };
    },
  },
  {
    name: 'undici.Client: client.request',
    policy: 'client',
    open({ echo }) {
      const client = new undici.Client(echo.httpUrl);
      return { send: (id) => client.request({ path: streamPath(id), method: 'GET' }).then(undiciBody), arrivals: byPath(echo), close: () => client.close() };
    },
  },
  {
    name: 'got http2 (global http2-wrapper agent)',
    policy: 'foreign',
    open({ echo }) {
      return {
        send: (id) =>
          got(`${echo.httpsUrl}${streamPath(id)}`, {
            http2: true,
            https: { certificateAuthority: testCa },
            retry: { limit: 0 },
            timeout: { request: REQUEST_TIMEOUT_MS },
          }).text(),
        arrivals: byPath(echo),
        close: () => http2wrapper.globalAgent.destroy(),
      };
    },
  },
  grpcRow('grpc-js client (global subchannel pool)'),
  {
    name: 'http.request({ agent: shared })',
    policy: 'none',
    open({ echo }) {
      const agent = sharedAgent(http.Agent);
      return {
        send: (id) => exchange(http.request({ host: echo.host, port: echo.httpPort, path: streamPath(id), agent })),
        arrivals: byPath(echo),
        close: () => agent.destroy(),
      };
    },
  },
  {
    name: 'https.request({ agent: shared })',
    policy: 'none',
    open({ echo }) {
      const agent = sharedAgent(https.Agent);
      return {
        send: (id) => exchange(https.request({ host: echo.host, port: echo.httpsPort, path: streamPath(id), agent, ca: testCa })),
        arrivals: byPath(echo),
        close: () => agent.destroy(),
      };
    },
  },
  {
    name: 'new http.ClientRequest (shared http.Agent)',
    policy: 'none',
    envProxied: 'default-only',
    open({ echo }) {
      const agent = sharedAgent(http.Agent);
      return {
        send: (id) => exchange(new http.ClientRequest({ host: echo.host, port: echo.httpPort, path: streamPath(id), agent })),
        arrivals: byPath(echo),
        close: () => agent.destroy(),
      };
    },
  },
  {
    name: 'new http.ClientRequest (shared https.Agent)',
    policy: 'none',
    envProxied: 'default-only',
    open({ echo }) {
      const agent = sharedAgent(https.Agent);
      return {
        send: (id) => exchange(new http.ClientRequest({ protocol: 'https:', host: echo.host, port: echo.httpsPort, path: streamPath(id), agent, ca: testCa } as http.ClientRequestArgs)),
        arrivals: byPath(echo),
        close: () => agent.destroy(),
      };
    },
  },
  {
    name: 'new http.ClientRequest (http.globalAgent)',
    policy: 'none',
    envProxied: 'default-only',
    open({ echo }) {
      // Under NODE_USE_ENV_PROXY, Node's global agent is the env-proxied one.
      return {
        send: (id) => exchange(new http.ClientRequest({ host: echo.host, port: echo.httpPort, path: streamPath(id) })),
        arrivals: byPath(echo),
        close: () => undefined,
      };
    },
  },
];

// ---------------------------------------------------------------------------
// gRPC: a recorder server and the shared-client row
// ---------------------------------------------------------------------------

interface GrpcRecorder {
  target: string;
  /** Every call received: its id and the peer address. */
  calls: Array<{ id: string; ip: string }>;
  close(): Promise<void>;
}

async function startGrpcRecorder(): Promise<GrpcRecorder> {
  const calls: GrpcRecorder['calls'] = [];
  const server = new grpc.Server();
  server.addService(echoService, {
    echo: (call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const ip = call.getPeer().replace(/^ipv4:/, '').replace(/:\d+$/, '');
      calls.push({ id: call.request.id, ip });
      cb(null, { ip });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { target: `127.0.0.1:${port}`, calls, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

type EchoCall = (req: { id: string }, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { ip: string }) => void) => void;

function grpcRow(name: string): Row {
  return {
    name,
    policy: 'foreign',
    open({ grpc: server }) {
      // One client, default options: the process-wide subchannel pool.
      const client = new EchoClient(server.target, grpc.credentials.createInsecure());
      const echo = (client as unknown as { echo: EchoCall }).echo.bind(client);
      return {
        send: (id) => new Promise((resolve, reject) => echo({ id }, { deadline: Date.now() + REQUEST_TIMEOUT_MS }, (err, res) => (err ? reject(err) : resolve(res)))),
        arrivals: (id) => server.calls.filter((c) => c.id === id).map((c) => c.ip),
        close: () => client.close(),
      };
    },
  };
}

// ---------------------------------------------------------------------------
// driving and checking
// ---------------------------------------------------------------------------

interface Outcome {
  matrix: string;
  row: string;
  ok: Record<Route, number>;
  refused: Record<Route, number>;
  /** Requests that arrived from an egress other than their route's. */
  wrong: string[];
  /** Connections the servers accepted from 127.0.0.1 during the row (a proxy was due for every route). */
  direct: number;
  /** Errors that are not a LeakBlockedError, and served requests that never arrived. */
  other: string[];
  /** The first refusal's message per route, for the report. */
  why: Partial<Record<Route, string>>;
}

const zero = (): Record<Route, number> => ({ alice: 0, bob: 0, default: 0 });

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const describeError = (err: unknown): string => {
  const e = err as { message?: string; code?: unknown; cause?: { message?: string } };
  return `${String(e?.message ?? err)}${e?.code !== undefined ? ` [${String(e.code)}]` : ''}${e?.cause?.message ? ` (cause: ${e.cause.message})` : ''}`;
};

let seq = 0;

async function drive(manager: SessionProxyManager, world: World, row: Row, matrix: string, egress: Record<Route, string>): Promise<Outcome> {
  const peersBefore = world.echo.peers.length;
  const grpcBefore = world.grpc.calls.length;
  const driver = row.open(world);
  const out: Outcome = { matrix, row: row.name, ok: zero(), refused: zero(), wrong: [], direct: 0, other: [], why: {} };
  const jobs: Array<Promise<void>> = [];
  const sent: Array<{ id: string; route: Route }> = [];
  // alice first in every round: she is a Client's first route.
  for (let i = 0; i < PER_ROUTE; i++) {
    for (const route of ROUTES) {
      const id = `r${++seq}-${route}`;
      sent.push({ id, route });
      const run = (): Promise<unknown> => driver.send(id);
      const started = route === 'default' ? run() : manager.withProxy(route, run);
      jobs.push(
        bounded(started, `${row.name} ${id}`).then(
          () => {
            const from = driver.arrivals(id);
            if (from.length === 0) out.other.push(`${id}: served but never arrived`);
            else if (from.every((ip) => ip === egress[route])) out.ok[route]++;
          },
          (err: unknown) => {
            if (findSessionProxyError(err) instanceof LeakBlockedError) {
              out.refused[route]++;
              out.why[route] ??= describeError(findSessionProxyError(err));
            } else out.other.push(`${id}: ${describeError(err)}`);
          },
        ),
      );
    }
  }
  await Promise.all(jobs);
  await driver.close();
  // Whatever the client was told: nothing may have arrived from another route's egress.
  for (const { id, route } of sent) {
    for (const ip of driver.arrivals(id)) if (ip !== egress[route]) out.wrong.push(`${id} arrived from ${ip}, expected ${egress[route]}`);
  }
  out.direct =
    world.echo.peers.slice(peersBefore).filter((p) => p.ip === DIRECT).length + world.grpc.calls.slice(grpcBefore).filter((c) => c.ip === DIRECT).length;
  return out;
}

function check(row: Pick<Row, 'name' | 'policy' | 'envProxied'>, o: Outcome, e: typeof expect.soft = expect): void {
  const total = (r: Record<Route, number>): number => r.alice + r.bob + r.default;
  const policy = o.matrix.startsWith('env proxy') ? (row.envProxied ?? row.policy) : row.policy;
  e(o.wrong, `${o.matrix} | ${row.name}: requests from a wrong egress`).toEqual([]);
  e(o.direct, `${o.matrix} | ${row.name}: direct connections`).toBe(0);
  e(o.other, `${o.matrix} | ${row.name}: errors other than LeakBlockedError`).toEqual([]);
  for (const route of ROUTES) e(o.ok[route] + o.refused[route], `${o.matrix} | ${row.name}: outcomes of ${route}`).toBe(PER_ROUTE);
  if (policy === 'none') {
    e(total(o.refused), `${o.matrix} | ${row.name}: refusals ${JSON.stringify(o.why)}`).toBe(0);
  } else if (policy === 'default-only') {
    e(o.refused.default, `${o.matrix} | ${row.name}: refusals of the default route`).toBe(0);
  } else if (policy === 'client') {
    e(o.refused.alice, `${o.matrix} | ${row.name}: refusals of the Client's first route`).toBe(0);
  } else {
    e(ROUTES.some((r) => o.refused[r] === 0), `${o.matrix} | ${row.name}: no route served in full`).toBe(true);
  }
}

// ---------------------------------------------------------------------------
// WebSocket: a stream, so the writer's scope counts
// ---------------------------------------------------------------------------

async function driveWebSocket(manager: SessionProxyManager, echo: EchoServer, scheme: 'ws' | 'wss', matrix: string, egress: Record<Route, string>): Promise<Outcome> {
  const name = `ws ${scheme}:// (alice opens)`;
  const out: Outcome = { matrix, row: name, ok: zero(), refused: zero(), wrong: [], direct: 0, other: [], why: {} };
  const peersBefore = echo.peers.length;
  const tag = `ws${++seq}`;
  const url = `${scheme === 'ws' ? echo.wsUrl : echo.wssUrl}/${tag}`;
  const ws = await manager.withProxy('alice', () => {
    const socket = new WebSocket(url, { ca: testCa });
    return bounded(once(socket, 'open'), `${name} open`).then(() => socket);
  });
  const closed = once(ws, 'close');
  ws.on('error', () => undefined);
  // alice's sends and sends from outside any scope (heartbeats), interleaved: both ride alice's connection.
  const bodies: Array<{ body: string; route: Route }> = [];
  let replies = 0;
  const allReplies = new Promise<void>((resolve) => {
    ws.on('message', () => {
      if (++replies === PER_ROUTE * 2) resolve();
    });
  });
  for (let i = 0; i < PER_ROUTE; i++) {
    const own = `${tag}-alice-${i}`;
    const unscoped = `${tag}-unscoped-${i}`;
    manager.withProxy('alice', () => ws.send(own));
    ws.send(unscoped);
    bodies.push({ body: own, route: 'alice' }, { body: unscoped, route: 'default' });
  }
  await bounded(allReplies, `${name} replies`).catch((err: unknown) => out.other.push(describeError(err)));
  const arrivals = (body: string): string[] => echo.requests.filter((r) => r.method === 'WS' && r.body === body).map((r) => r.ip);
  for (const { body, route } of bodies) {
    const from = arrivals(body);
    if (from.length === 0) out.other.push(`${body}: sent but never arrived`);
    // An unscoped send passes on the opener's connection: alice's egress, by design.
    for (const ip of from) if (ip !== egress.alice) out.wrong.push(`${body} arrived from ${ip}, expected ${egress.alice}`);
    if (from.length > 0 && from.every((ip) => ip === egress.alice)) out.ok[route]++;
  }
  // bob's send: the connection is destroyed with LeakBlockedError before the frame leaves.
  const socket = (ws as unknown as { _socket: net.Socket })._socket;
  const socketError = once(socket, 'error').then(([err]) => err as Error);
  const bobBody = `${tag}-bob`;
  manager.withProxy('bob', () => ws.send(bobBody));
  const err = await bounded(socketError, `${name} bob's send`).catch((e: unknown) => e);
  if (findSessionProxyError(err) instanceof LeakBlockedError) out.refused.bob++;
  else out.other.push(`bob's send: ${describeError(err)}`);
  const [code] = await bounded(closed, `${name} close`);
  if (code !== 1006) out.other.push(`close code ${String(code)}, expected 1006`);
  for (const ip of arrivals(bobBody)) out.wrong.push(`${bobBody} arrived from ${ip}`);
  out.direct = echo.peers.slice(peersBefore).filter((p) => p.ip === DIRECT).length;
  return out;
}

function checkWebSocket(o: Outcome, e: typeof expect.soft = expect): void {
  e(o.wrong, `${o.matrix} | ${o.row}: frames from a wrong egress`).toEqual([]);
  e(o.direct, `${o.matrix} | ${o.row}: direct connections`).toBe(0);
  e(o.other, `${o.matrix} | ${o.row}: unexpected`).toEqual([]);
  e(o.ok, `${o.matrix} | ${o.row}: alice's and unscoped sends`).toEqual({ alice: PER_ROUTE, bob: 0, default: PER_ROUTE });
  e(o.refused, `${o.matrix} | ${o.row}: refusals`).toEqual({ alice: 0, bob: 1, default: 0 });
}

// ---------------------------------------------------------------------------
// the matrices
// ---------------------------------------------------------------------------

const outcomes: Outcome[] = [];

function table(rows: Outcome[], title: string): string {
  const cell = (o: Outcome): string => {
    const ok = o.ok.alice + o.ok.bob + o.ok.default;
    const refused = o.refused.alice + o.refused.bob + o.refused.default;
    const by = (r: Record<Route, number>): string => ROUTES.map((k) => r[k]).join('/');
    const bad = o.wrong.length || o.direct || o.other.length ? `  WRONG ${o.wrong.length} DIRECT ${o.direct} OTHER ${o.other.length}` : '';
    return `ok ${String(ok).padStart(2)} (${by(o.ok)})  refused ${String(refused).padStart(2)} (${by(o.refused)})${bad}`;
  };
  const width = Math.max(...rows.map((o) => `${o.matrix} | ${o.row}`.length));
  return [`[shared-clients ${title}] per client: ok/refused (alice/bob/default)`, ...rows.map((o) => `${`${o.matrix} | ${o.row}`.padEnd(width)}  ${cell(o)}`)].join('\n');
}

afterAll(() => {
  if (outcomes.length === 0) return;
  console.log(table(outcomes, `${process.version}${ENV_PROXIED ? ' NODE_USE_ENV_PROXY=1' : ''}`));
  if (CHILD) fs.writeFileSync(CHILD.out, JSON.stringify(outcomes));
});

interface Setup {
  proxies: ProxySpecs;
}

function matrix(label: string, setup: () => Setup, options: { env: boolean; rows: Row[]; ws: boolean }): void {
  describe(label, () => {
    let manager: SessionProxyManager;
    let world: World;
    let egress: Record<Route, string>;
    beforeAll(async () => {
      const { proxies } = setup();
      egress = { alice: proxies.alice.egressIp, bob: proxies.bob.egressIp, default: proxies.default.egressIp };
      const [echo, grpcServer] = await Promise.all([startEchoServer({ http2: true }), startGrpcRecorder()]);
      world = { echo, grpc: grpcServer };
      manager = new SessionProxyManager({
        proxy: proxies.default.url,
        accounts: { alice: proxies.alice.url, bob: proxies.bob.url },
        noProxy: [],
        env: options.env,
      }).install();
    });
    afterAll(async () => {
      await manager?.uninstall();
      await Promise.all([world?.echo.close(), world?.grpc.close()]);
    });

    for (const row of options.rows) {
      it(row.name, async () => {
        if (options.env) expect(process.env.HTTPS_PROXY ?? process.env.https_proxy).toBeTruthy();
        const o = await drive(manager, world, row, label, egress);
        outcomes.push(o);
        check(row, o);
      });
    }
    if (options.ws) {
      for (const scheme of ['ws', 'wss'] as const) {
        it(`ws ${scheme}://: alice opens and sends, an unscoped send passes on alice's egress, bob's send destroys it`, async () => {
          const o = await driveWebSocket(manager, world.echo, scheme, label, egress);
          outcomes.push(o);
          checkWebSocket(o);
        });
      }
    }
  });
}

const EGRESS: Record<Route, string> = { alice: '127.0.0.31', bob: '127.0.0.32', default: '127.0.0.33' };

if (CHILD) {
  // The child: the parent's daemons, the default proxy in the environment since start-up.
  matrix(`env proxy ${process.version}`, () => ({ proxies: CHILD.proxies }), { env: true, rows: ROWS, ws: true });
} else {
  describe.skipIf(skipWithout('tinyproxy', 'microsocks', 'squid'))('shared clients through tinyproxy (alice), microsocks (bob), squid (default)', () => {
    const proxies = {} as Record<Route, RealProxy>;
    const saved = new Map(PROXY_VARS.map((n) => [n, process.env[n]]));
    beforeAll(async () => {
      // An operator's proxy variables would change what grpc-js dials: the matrices set their own.
      for (const n of PROXY_VARS) delete process.env[n];
      [proxies.alice, proxies.bob, proxies.default] = await Promise.all([
        startTinyproxy({ egressIp: EGRESS.alice, auth: { username: 'alice', password: 'tiny-Pw-7' } }),
        startMicrosocks({ egressIp: EGRESS.bob, auth: { username: 'bob', password: 'socks-Pw-8' } }),
        startSquid({ egressIp: EGRESS.default }),
      ]);
    }, 30_000);
    afterAll(async () => {
      await Promise.all(Object.values(proxies).map((p) => p?.close()));
      for (const [n, v] of saved) {
        if (v === undefined) delete process.env[n];
        else process.env[n] = v;
      }
    }, 30_000);
    const specs = (): Setup => ({ proxies: { alice: proxies.alice, bob: proxies.bob, default: proxies.default } });

    matrix('in-process', specs, { env: false, rows: ROWS, ws: true });
    matrix('HTTPS_PROXY exported', specs, { env: true, rows: ROWS.filter((r) => r.name.startsWith('grpc-js')), ws: false });

    describe('NODE_USE_ENV_PROXY=1, default proxy in the environment from start-up (child Node ≥ 24.5)', () => {
      const node = envProxyNode();
      it.skipIf(node.skip !== undefined)(`the same matrix in a child ${node.version ?? ''}: zero wrong egress, zero direct`, async () => {
        const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shared-clients-')), 'outcomes.json');
        try {
          const specs = Object.fromEntries(ROUTES.map((r) => [r, { url: proxies[r].url, egressIp: proxies[r].egressIp }]));
          const env: NodeJS.ProcessEnv = {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            LANG: 'C',
            ...(process.env.CI !== undefined ? { CI: process.env.CI } : {}),
            NODE_USE_ENV_PROXY: '1',
            HTTP_PROXY: proxies.default.url,
            HTTPS_PROXY: proxies.default.url,
            SHARED_MATRIX_CHILD: JSON.stringify({ proxies: specs, out }),
          };
          const result = await runChild(node.path!, env);
          const childOutcomes = fs.existsSync(out) ? (JSON.parse(fs.readFileSync(out, 'utf8')) as Outcome[]) : [];
          if (childOutcomes.length) console.log(table(childOutcomes, `child ${node.version} NODE_USE_ENV_PROXY=1`));
          expect(childOutcomes.length, `child vitest wrote no outcomes:\n${result.output.slice(-8000)}`).toBe(ROWS.length + 2);
          // Every row of the child against its policy, all of them reported.
          for (const o of childOutcomes) {
            const row = ROWS.find((r) => r.name === o.row);
            if (row) check(row, o, expect.soft);
            else checkWebSocket(o, expect.soft);
          }
          expect(result.code, `child vitest failed:\n${result.output.slice(-8000)}`).toBe(0);
        } finally {
          fs.rmSync(path.dirname(out), { recursive: true, force: true });
        }
      }, 90_000);
      if (node.skip) it(`skipped: ${node.skip}`, () => console.log(`[shared-clients] NODE_USE_ENV_PROXY matrix skipped: ${node.skip}`));
    });
  });
}

/** The Node that runs the env-proxy child: this one when ≥ 24.5, or SESSION_PROXY_NODE24 (a path) when that is ≥ 24.5. */
function envProxyNode(): { path?: string; version?: string; skip?: string } {
  const atLeast245 = (v: string): boolean => {
    const [major, minor] = v.replace(/^v/, '').split('.').map(Number) as [number, number];
    return major > 24 || (major === 24 && minor >= 5);
  };
  if (atLeast245(process.version)) return { path: process.execPath, version: process.version };
  const other = process.env.SESSION_PROXY_NODE24;
  if (other) {
    try {
      const version = execFileSync(other, ['-p', 'process.version'], { encoding: 'utf8', timeout: 10_000 }).trim();
      if (atLeast245(version)) return { path: other, version };
      return { skip: `SESSION_PROXY_NODE24=${other} is ${version}, not ≥ 24.5` };
    } catch (err) {
      return { skip: `SESSION_PROXY_NODE24=${other} does not run: ${String(err)}` };
    }
  }
  return { skip: `this is Node ${process.version}; NODE_USE_ENV_PROXY needs ≥ 24.5 (set SESSION_PROXY_NODE24 to a Node 24 binary to run it from here)` };
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const THIS_FILE = path.relative(ROOT, fileURLToPath(import.meta.url));

/** This file under vitest in a child, killed after a bound. */
function runChild(node: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', THIS_FILE, '--reporter=dot'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const add = (c: string): void => {
      if (output.length < 1 << 20) output += c;
    };
    child.stdout.setEncoding('utf8').on('data', add);
    child.stderr.setEncoding('utf8').on('data', add);
    const timer = setTimeout(() => child.kill('SIGKILL'), 80_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
