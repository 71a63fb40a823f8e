/**
 * Two clients that share connections process-wide, driven concurrently by
 * alice, bob and code outside any scope, so that requests queue behind a
 * session another route is still connecting:
 *
 * - got `http2: true` with its default agent (http2-wrapper's globalAgent):
 *   requests for one origin made while a session connects are queued in the
 *   agent and run later from the session's event listener, in the session
 *   creator's async context;
 * - one grpc-js client (and a second one of the same target) on the global
 *   subchannel pool: calls started while the subchannel connects wait in the
 *   pick queue and start from a connectivity-state callback. With a default
 *   proxy, HTTPS_PROXY is exported and grpc-js CONNECTs through it
 *   (http.request, answered by the env-CONNECT stand-in).
 *
 * Every reply must come from its own route's egress; a refusal must be a
 * LeakBlockedError (guard/http2-wrapper-partition.ts and grpc-partition.ts
 * make both serve every route, so none is expected either). Each round
 * asserts that the requests outnumbered the connections, i.e. that they
 * queued behind connecting sessions.
 */
import diagnostics from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import * as grpc from '@grpc/grpc-js';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError, type SessionProxyOptions } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoReply, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { EchoClient, startGrpcEcho } from './grpc-echo.js';
import { skipWithout, startMicrosocks, startTinyproxy, type RealProxy } from '../support/real-proxies.js';

type Route = 'alice' | 'bob' | 'outside';
const ROUTES: readonly Route[] = ['alice', 'bob', 'outside'];
/** Requests per route and round: far more than the sessions one route opens. */
const PER_ROUTE = 12;

interface Outcome {
  route: Route;
  ip?: string;
  /** The connection the reply came over, as the server saw it. */
  conn?: string;
  refused?: boolean;
  error?: string;
}

interface Tally {
  ok: number;
  refused: number;
  wrong: string[];
  other: string[];
  /** Distinct connections that carried replies, per route. */
  connections: Record<Route, number>;
}

function tally(outcomes: Outcome[], egress: Record<Route, string>): Tally {
  const t: Tally = { ok: 0, refused: 0, wrong: [], other: [], connections: { alice: 0, bob: 0, outside: 0 } };
  const conns = { alice: new Set<string>(), bob: new Set<string>(), outside: new Set<string>() };
  for (const o of outcomes) {
    if (o.refused) t.refused++;
    else if (o.error !== undefined) t.other.push(`${o.route}: ${o.error}`);
    else if (o.ip === egress[o.route]) {
      t.ok++;
      conns[o.route].add(o.conn!);
    } else t.wrong.push(`${o.route} left from ${o.ip} (expected ${egress[o.route]})`);
  }
  for (const r of ROUTES) t.connections[r] = conns[r].size;
  return t;
}

function isRefusal(err: unknown): boolean {
  if (findSessionProxyError(err) instanceof LeakBlockedError) return true;
  // grpc-js reports an error thrown by session.request() as the call's status details.
  const details = String((err as { details?: unknown })?.details ?? (err as Error)?.message ?? '');
  return /LeakBlockedError|refused to send traffic that would leave from the wrong IP/.test(details);
}

/** Runs `one` PER_ROUTE times for each route, all started in one tick, interleaved. */
async function round(manager: SessionProxyManager, one: (route: Route, i: number) => Promise<{ ip: string; conn: string }>): Promise<Outcome[]> {
  const jobs: Array<Promise<Outcome>> = [];
  for (let i = 0; i < PER_ROUTE; i++) {
    for (const route of ROUTES) {
      const run = (): Promise<{ ip: string; conn: string }> => one(route, i);
      const p = route === 'outside' ? run() : manager.withProxy(route, run);
      jobs.push(p.then((r) => ({ route, ...r }), (err: unknown) => (isRefusal(err) ? { route, refused: true } : { route, error: String(err) })));
    }
  }
  return Promise.all(jobs);
}

const report = (client: string, phase: string, t: Tally): void => {
  console.log(`[shared-http2-grpc] node ${process.versions.node} ${client} (${phase}): ok ${t.ok}, refused ${t.refused}, wrong IP ${t.wrong.length}, other ${t.other.length}; connections ${JSON.stringify(t.connections)}`);
};

const gotH2 = (echo: EchoServer) => async (route: Route, i: number): Promise<{ ip: string; conn: string }> => {
  const reply = await got(`${echo.httpsUrl}/got-h2/${route}/${i}`, { http2: true, https: { certificateAuthority: testCa }, retry: { limit: 0 } }).json<EchoReply>();
  return { ip: reply.ip, conn: `${reply.ip}:${reply.port}` };
};

function grpcCall(client: grpc.Client): Promise<{ ip: string; conn: string }> {
  return new Promise((resolve, reject) => {
    (client as unknown as { echo: (req: unknown, cb: (e: Error | null, r: { peer: string }) => void) => void }).echo({}, (err, res) => {
      if (err) return reject(err);
      const conn = res.peer.replace(/^ipv4:/, '');
      resolve({ ip: conn.replace(/:\d+$/, ''), conn });
    });
  });
}

/** Route decisions for `port`, by layer: 'http' is the env-CONNECT stand-in, 'socket' the socket hook. */
function watchDecisions(port: number): { layers: Map<string, number>; stop(): void } {
  const layers = new Map<string, number>();
  const onRoute = (msg: unknown): void => {
    const m = msg as { target: string; layer: string };
    if (m.target.endsWith(`:${port}`)) layers.set(m.layer, (layers.get(m.layer) ?? 0) + 1);
  };
  diagnostics.subscribe('session-proxy:route', onRoute);
  return { layers, stop: () => diagnostics.unsubscribe('session-proxy:route', onRoute) };
}

interface Phase {
  name: string;
  /** Starts the proxies; returns the manager options and each route's egress. */
  start(): Promise<{ options: SessionProxyOptions; egress: Record<Route, string>; close(): Promise<void> }>;
  /** Whether grpc-js must take the env-CONNECT path (a default proxy is exported). */
  envConnect: boolean;
}

let echo: EchoServer;
let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
const mocks = {} as Record<'alice' | 'bob' | 'dflt', MockProxy>;

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  grpcServer = await startGrpcEcho();
  mocks.alice = await startMockProxy({ egressIp: '127.0.0.2' });
  mocks.bob = await startMockProxy({ egressIp: '127.0.0.3' });
  mocks.dflt = await startMockProxy({ egressIp: '127.0.0.4' });
});
afterAll(async () => {
  await Promise.all([echo?.close(), grpcServer?.close(), ...Object.values(mocks).map((m) => m.close())]);
});

const phases: Phase[] = [
  {
    name: 'mock proxies, default proxy exported',
    envConnect: true,
    start: async () => ({
      options: { proxy: mocks.dflt.url, accounts: { alice: mocks.alice.url, bob: mocks.bob.urlFor('socks5h') }, noProxy: [] },
      egress: { alice: '127.0.0.2', bob: '127.0.0.3', outside: '127.0.0.4' },
      close: async () => undefined,
    }),
  },
  {
    name: 'mock proxies, no default proxy',
    envConnect: false,
    start: async () => ({
      options: { accounts: { alice: mocks.alice.urlFor('socks5h'), bob: mocks.bob.url }, noProxy: [] },
      egress: { alice: '127.0.0.2', bob: '127.0.0.3', outside: '127.0.0.1' },
      close: async () => undefined,
    }),
  },
];
const realPhase: Phase = {
  name: 'tinyproxy and microsocks, tinyproxy as default',
  envConnect: true,
  start: async () => {
    const started: RealProxy[] = [];
    try {
      started.push(await startTinyproxy({ egressIp: '127.0.0.5' }));
      started.push(await startMicrosocks({ egressIp: '127.0.0.6' }));
      started.push(await startTinyproxy({ egressIp: '127.0.0.7' }));
    } catch (err) {
      await Promise.all(started.map((p) => p.close()));
      throw err;
    }
    const [alice, bob, dflt] = started as [RealProxy, RealProxy, RealProxy];
    return {
      options: { proxy: dflt.url, accounts: { alice: alice.url, bob: bob.url }, noProxy: [] },
      egress: { alice: '127.0.0.5', bob: '127.0.0.6', outside: '127.0.0.7' },
      close: async () => void (await Promise.all(started.map((p) => p.close()))),
    };
  },
};

function phaseSuite(phase: Phase): void {
  let manager: SessionProxyManager;
  let egress: Record<Route, string>;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const started = await phase.start();
    egress = started.egress;
    close = started.close;
    manager = new SessionProxyManager(started.options).install();
  });
  afterAll(async () => {
    await manager?.uninstall();
    await close?.();
  });

  it('got http2: true on its default agent: every reply from its own route\'s egress, queued requests included', async () => {
    const agent = http2wrapper.globalAgent;
    let sessions = 0;
    const onSession = (): void => void sessions++;
    agent.on('session', onSession);
    const outcomes = await round(manager, gotH2(echo));
    agent.off('session', onSession);
    const t = tally(outcomes, egress);
    report('got http2 (globalAgent)', phase.name, t);
    expect(t.wrong).toEqual([]);
    expect(t.other).toEqual([]);
    expect(t.refused).toBe(0);
    // 36 requests started in one tick rode a handful of sessions: the rest were queued behind connecting ones.
    expect(sessions).toBeGreaterThan(0);
    expect(sessions).toBeLessThan(ROUTES.length * PER_ROUTE / 2);
    for (const r of ROUTES) expect(t.connections[r]).toBeLessThan(PER_ROUTE / 2);
  });

  it('one grpc-js client (global subchannel pool) and a second of the same target: every call from its own route\'s egress', async () => {
    expect(Boolean(process.env.https_proxy)).toBe(phase.envConnect);
    const shared = new EchoClient(grpcServer.target, grpc.credentials.createInsecure());
    const second = new EchoClient(grpcServer.target, grpc.credentials.createInsecure());
    const decisions = watchDecisions(Number(grpcServer.target.split(':')[1]));
    try {
      const outcomes = await round(manager, (route, i) => grpcCall(i % 3 === 2 ? second : shared));
      const t = tally(outcomes, egress);
      report('grpc-js (global subchannel pool)', phase.name, t);
      expect(t.wrong).toEqual([]);
      expect(t.other).toEqual([]);
      expect(t.refused).toBe(0);
      // Calls outnumbered connections: they waited in the pick queue for a connecting subchannel.
      for (const r of ROUTES) expect(t.connections[r]).toBeLessThan(PER_ROUTE / 2);
      // With a default proxy grpc-js CONNECTs through HTTPS_PROXY (the 'http' layer's stand-in); else it dials (the socket hook).
      expect(decisions.layers.get(phase.envConnect ? 'http' : 'socket') ?? 0).toBeGreaterThan(0);
      if (phase.envConnect) expect(decisions.layers.get('socket') ?? 0).toBe(0);
    } finally {
      decisions.stop();
      shared.close();
      second.close();
    }
  });
}

for (const phase of phases) describe(phase.name, () => phaseSuite(phase));
describe.skipIf(skipWithout('tinyproxy', 'microsocks'))(realPhase.name, () => phaseSuite(realPhase));
