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
import Module, { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import got from 'got';
import http2wrapper from 'http2-wrapper';
import * as grpc from '@grpc/grpc-js';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError, type SessionProxyOptions } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoReply, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { EchoClient, startGrpcEcho } from './grpc-echo.js';
import { looksLikeHttp2Wrapper, http2WrapperProblems } from '../../src/guard/http2-wrapper-partition.js';
import { ROUTE_OPTION, channelTargets, grpcChannelProblems, grpcInstanceProblems, grpcTransportProblems } from '../../src/guard/grpc-partition.js';
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

/** Module._load as it was before any manager of this file was installed. */
const loadBeforeInstall = (Module as unknown as { _load: unknown })._load;

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

// ---------------------------------------------------------------------------
// lifecycle: before install, copies loaded later, copies not understood, uninstall
// ---------------------------------------------------------------------------

const requireHere = createRequire(import.meta.url);
/** The copy's own internal module (found the way the partition finds it: loaded by the copy itself). */
const grpcInternal = (file: string): Record<string, unknown> => createRequire(requireHere.resolve('@grpc/grpc-js'))(`./${file}`) as Record<string, unknown>;
const h2Agent = requireHere('http2-wrapper/source/agent.js') as { Agent: typeof http2wrapper.Agent };

describe('connections opened before install', () => {
  it('a got http2 session and a grpc-js connection opened before install carry no route\'s traffic afterwards', async () => {
    // Direct, before install: a session in got's globalAgent, a connected grpc-js client.
    expect((await gotH2(echo)('outside', 0)).ip).toBe('127.0.0.1');
    const early = new EchoClient(grpcServer.target, grpc.credentials.createInsecure());
    expect((await grpcCall(early)).ip).toBe('127.0.0.1');
    const manager = new SessionProxyManager({ accounts: { alice: mocks.alice.url }, noProxy: [] }).install();
    try {
      const viaGot = await manager.withProxy('alice', () => Promise.all([0, 1, 2].map((i) => gotH2(echo)('alice', i))));
      const viaGrpc = await manager.withProxy('alice', () => Promise.all([0, 1, 2].map(() => grpcCall(early))));
      expect([...viaGot, ...viaGrpc].map((r) => r.ip)).toEqual(Array(6).fill('127.0.0.2'));
    } finally {
      early.close();
      await manager.uninstall();
    }
  });
});

describe('copies loaded after install, copies it does not understand, uninstall', () => {
  let manager: SessionProxyManager | undefined;
  beforeAll(() => {
    manager = new SessionProxyManager({ accounts: { alice: mocks.alice.url }, noProxy: [] }).install();
  });
  afterAll(async () => {
    await manager?.uninstall();
  });

  it('an http2-wrapper loaded after install (through Module._load) is partitioned too', () => {
    // A fresh copy: its files out of require.cache for a moment, then put back as they were.
    const dir = requireHere.resolve('http2-wrapper').replace(/index\.js$/, '');
    const cache = requireHere.cache;
    const saved = Object.entries(cache).filter(([file]) => file.startsWith(dir));
    for (const [file] of saved) delete cache[file];
    try {
      const fresh = requireHere('http2-wrapper') as typeof http2wrapper;
      expect(fresh.Agent).not.toBe(http2wrapper.Agent);
      expect((fresh.Agent.prototype.getSession as { name: string }).name).toBe('routedGetSession');
      expect((fresh.Agent.prototype.normalizeOptions as { name: string }).name).toBe('routedNormalizeOptions');
    } finally {
      for (const file of Object.keys(cache)) if (file.startsWith(dir)) delete cache[file];
      for (const [file, mod] of saved) cache[file] = mod;
    }
  });

  it('an http2-wrapper whose Agent it does not understand refuses its requests (LeakBlockedError), with a warning', async () => {
    const warnings: Array<{ code?: string; message: string }> = [];
    const onWarning = (w: Error & { code?: string }): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const unknown = requireHere('../fixtures/partition/http2-wrapper-unknown.cjs') as { Agent: new () => { request(): Promise<unknown> } };
      await expect(new unknown.Agent().request()).rejects.toBeInstanceOf(LeakBlockedError);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.code === 'SESSION_PROXY_HTTP2_WRAPPER_INTERNALS')).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('an Agent subclass whose normalizeOptions calls super is partitioned; one that drops the route is refused', async () => {
    class Calling extends http2wrapper.Agent {
      override normalizeOptions(options?: object): string {
        return `${super.normalizeOptions(options as never)}:mine`;
      }
    }
    class Dropping extends http2wrapper.Agent {
      override normalizeOptions(): string {
        return 'one-key-for-all';
      }
    }
    const via = (agent: http2wrapper.Agent) => got(`${echo.httpsUrl}/subclass`, { http2: true, agent: { http2: agent }, https: { certificateAuthority: testCa }, retry: { limit: 0 } }).json<EchoReply>();
    const calling = new Calling();
    const dropping = new Dropping();
    try {
      expect((await manager!.withProxy('alice', () => via(calling))).ip).toBe('127.0.0.2');
      const err = await manager!.withProxy('alice', () => via(dropping)).then(() => undefined, (e: unknown) => e);
      expect(findSessionProxyError(err), String(err)).toBeInstanceOf(LeakBlockedError);
    } finally {
      calling.destroy();
      dropping.destroy();
    }
  });

  it('grpc-js waitForReady and connectivity state answer for the caller\'s route', async () => {
    const client = new EchoClient(grpcServer.target, grpc.credentials.createInsecure());
    try {
      await manager!.withProxy('alice', () => new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve()))));
      const channel = client.getChannel();
      expect(manager!.withProxy('alice', () => channel.getConnectivityState(false))).toBe(grpc.connectivityState.READY);
      // Outside any scope nothing has connected yet: the default route's copy of the channel is idle.
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.IDLE);
      expect((await manager!.withProxy('alice', () => grpcCall(client))).ip).toBe('127.0.0.2');
    } finally {
      client.close();
    }
  });

  it('a grpc-js channel the partition never saw (the bare InternalChannel as channelOverride) is refused its connection', async () => {
    const channel = new grpc.Channel(grpcServer.target, grpc.credentials.createInsecure(), {});
    const internal = (channel as unknown as { internalChannel: grpc.Channel }).internalChannel;
    const bare = new EchoClient(grpcServer.target, grpc.credentials.createInsecure(), { channelOverride: internal });
    try {
      const err = await manager!.withProxy('alice', () => grpcCall(bare)).then(() => undefined, (e: unknown) => e);
      expect(isRefusal(err), String(err)).toBe(true);
    } finally {
      channel.close();
    }
  });

  it('uninstall puts back every patched method and Module._load (function identity); the unknown copy sends again', async () => {
    const M = Module as unknown as { _load: unknown };
    const channelJs = grpcInternal('channel.js') as { ChannelImplementation: { prototype: Record<string, unknown> } };
    const transportJs = grpcInternal('transport.js') as { Http2SubchannelConnector: { prototype: Record<string, unknown> } };
    const methods = (): unknown[] => [
      h2Agent.Agent.prototype.getSession,
      h2Agent.Agent.prototype.normalizeOptions,
      ...['createCall', 'getConnectivityState', 'watchConnectivityState', 'close'].map((m) => channelJs.ChannelImplementation.prototype[m]),
      transportJs.Http2SubchannelConnector.prototype.connect,
    ];
    const during = methods();
    await manager!.uninstall();
    manager = undefined;
    const after = methods();
    after.forEach((fn, i) => expect(fn, `method ${i} restored`).not.toBe(during[i]));
    expect(after.map((fn) => (fn as { name: string }).name)).toEqual(['getSession', 'normalizeOptions', 'createCall', 'getConnectivityState', 'watchConnectivityState', 'close', 'connect']);
    expect(M._load).toBe(loadBeforeInstall);
    const unknown = requireHere('../fixtures/partition/http2-wrapper-unknown.cjs') as { Agent: new () => { request(): Promise<unknown> } };
    await expect(new unknown.Agent().request()).resolves.toBe('sent');
  });
});

// ---------------------------------------------------------------------------
// canaries: the internals the two partitions rely on. Each fails naming what moved.
// ---------------------------------------------------------------------------

describe('canary: the http2-wrapper internals guard/http2-wrapper-partition.ts relies on', () => {
  it('got loads this http2-wrapper, and its Agent has getSession and normalizeOptions', () => {
    const fromGot = createRequire(requireHere.resolve('got')).resolve('http2-wrapper');
    expect(fromGot, 'got resolves another http2-wrapper than the one these canaries check').toBe(requireHere.resolve('http2-wrapper'));
    for (const e of [http2wrapper, h2Agent] as unknown as Array<Record<string, unknown>>) {
      expect(looksLikeHttp2Wrapper(e), 'http2-wrapper is no longer recognized (Agent.kCurrentStreamCount, or auto/ClientRequest/globalAgent)').toBe(true);
      expect(http2WrapperProblems(e)).toEqual([]);
    }
    expect(h2Agent.Agent, 'index.js and agent.js export different Agent classes').toBe(http2wrapper.Agent);
  });

  it('a ClientRequest enters Agent#request, which enters getSession(origin, options, [{ resolve, reject }]) in the caller\'s context', async () => {
    const agent = new http2wrapper.Agent();
    const seen: Array<{ origin: unknown; options: unknown; listeners: unknown }> = [];
    (agent as unknown as { getSession: unknown }).getSession = (origin: unknown, options: unknown, listeners: unknown) => {
      seen.push({ origin, options, listeners });
      return Promise.resolve();
    };
    const req = http2wrapper.request('https://canary.invalid:8443/x', { agent });
    req.on('error', () => undefined);
    req.end();
    for (let i = 0; i < 20 && seen.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(seen, 'ClientRequest no longer reaches agent.getSession through agent.request').toHaveLength(1);
    const [call] = seen;
    expect(String(call!.origin)).toBe('https://canary.invalid:8443/');
    expect(call!.options, 'getSession no longer gets the request options').toMatchObject({ host: 'canary.invalid', port: 8443 });
    expect(call!.listeners, 'listeners are no longer [{ resolve, reject }]').toEqual([{ resolve: expect.any(Function), reject: expect.any(Function) }]);
    req.destroy();
  });

  it('requests of two routes queue on entries of their own, keyed by normalizeOptions(options)', async () => {
    const manager = new SessionProxyManager({ accounts: { alice: mocks.alice.url, bob: mocks.bob.url }, noProxy: [] }).install();
    const agent = new http2wrapper.Agent();
    try {
      // A connection that never comes: every getSession queues behind the first entry of its key.
      const options = { createConnection: () => new Promise(() => undefined) } as unknown as Parameters<typeof agent.getSession>[1];
      const origin = 'https://canary.invalid:8443';
      for (const run of [(f: () => void) => manager.withProxy('alice', f), (f: () => void) => manager.withProxy('bob', f), (f: () => void) => f()]) {
        run(() => void agent.getSession(origin, options).catch(() => undefined));
        run(() => void agent.getSession(origin, options).catch(() => undefined));
      }
      const queue = (agent as unknown as { queue: Record<string, Record<string, { listeners: unknown[] }>> }).queue;
      const keys = Object.keys(queue);
      expect(keys, 'the agent no longer keys its queue by normalizeOptions(options)').toHaveLength(3);
      expect(keys.map((k) => JSON.parse(k.slice(k.lastIndexOf(':') + 1)) as string).sort()).toEqual(['alice', 'bob', 'default']);
      for (const k of keys) expect(queue[k]![`${origin}`]?.listeners, 'queue entries no longer hold their listeners per origin').toHaveLength(2);
    } finally {
      agent.destroy();
      await manager.uninstall();
    }
  });
});

describe('canary: the grpc-js internals guard/grpc-partition.ts relies on', () => {
  it('channel.js and transport.js are recognized, and a channel has the internals a twin is built from', () => {
    const channelJs = grpcInternal('channel.js');
    expect(channelJs.ChannelImplementation, 'grpc.Channel is no longer channel.js\'s ChannelImplementation').toBe(grpc.Channel);
    expect(grpcChannelProblems(channelJs)).toEqual([]);
    expect(grpcTransportProblems(grpcInternal('transport.js'))).toEqual([]);
    const channel = new grpc.Channel(grpcServer.target, grpc.credentials.createInsecure(), { 'grpc.primary_user_agent': 'canary' });
    try {
      expect(grpcInstanceProblems(channel)).toEqual([]);
      const ic = (channel as unknown as { internalChannel: { getOptions(): Record<string, unknown>; getTarget(): string } }).internalChannel;
      expect(ic.getOptions()['grpc.primary_user_agent'], 'InternalChannel.getOptions() no longer returns the options the channel was made with').toBe('canary');
      expect(ic.getTarget()).toBe(`dns:${grpcServer.target}`);
    } finally {
      channel.close();
    }
  });

  it('with HTTPS_PROXY set, the real target is kept in grpc.http_connect_target and getTarget() names the proxy', () => {
    const saved = { https_proxy: process.env.https_proxy, grpc_proxy: process.env.grpc_proxy, no_proxy: process.env.no_proxy, no_grpc_proxy: process.env.no_grpc_proxy };
    for (const k of Object.keys(saved)) delete process.env[k];
    process.env.https_proxy = 'http://127.0.0.1:9';
    const channel = new grpc.Channel(grpcServer.target, grpc.credentials.createInsecure(), {});
    try {
      const ic = (channel as unknown as { internalChannel: { getOptions(): Record<string, unknown>; getTarget(): string } }).internalChannel;
      expect(ic.getOptions()['grpc.http_connect_target'], 'grpc-js no longer keeps the proxied target in grpc.http_connect_target').toBe(`dns:${grpcServer.target}`);
      expect(ic.getTarget()).toBe('dns:127.0.0.1:9');
      expect(channelTargets(ic as never)).toEqual([{ host: '127.0.0.1', port: Number(grpcServer.target.split(':')[1]) }]);
    } finally {
      channel.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('channel options reach Http2SubchannelConnector.connect, and key the global subchannel pool', async () => {
    const connector = (grpcInternal('transport.js') as { Http2SubchannelConnector: { prototype: { connect: (...a: unknown[]) => unknown } } }).Http2SubchannelConnector.prototype;
    const connect = connector.connect;
    const routes: unknown[] = [];
    connector.connect = function recording(this: unknown, ...args: unknown[]) {
      routes.push((args[2] as Record<string, unknown>)[ROUTE_OPTION]);
      return connect.apply(this, args);
    };
    const clients = ['x', 'y', 'x'].map((r) => new EchoClient(grpcServer.target, grpc.credentials.createInsecure(), { [ROUTE_OPTION]: r }));
    try {
      const replies = await Promise.all(clients.map((c) => grpcCall(c)));
      expect(routes.sort(), 'the option no longer reaches the connector, or the pool no longer shares a subchannel between equal options').toEqual(['x', 'y']);
      expect(replies[0]!.conn, 'two clients with equal options no longer share the global pool\'s subchannel').toBe(replies[2]!.conn);
      expect(replies[0]!.conn, 'the pool no longer keys subchannels by channel options').not.toBe(replies[1]!.conn);
    } finally {
      connector.connect = connect;
      for (const c of clients) c.close();
    }
  });

  it('grpc target syntax: dns, dns with an authority, ipv4 lists, ipv6, unix', () => {
    const t = (target: string): unknown => channelTargets({ getOptions: () => ({}), getTarget: () => target, credentials: {} });
    expect(t('dns:example.test:50051')).toEqual([{ host: 'example.test', port: 50051 }]);
    expect(t('dns://8.8.8.8/example.test:50051')).toEqual([{ host: 'example.test', port: 50051 }]);
    expect(t('dns:example.test')).toEqual([{ host: 'example.test', port: 443 }]);
    expect(t('ipv4:10.0.0.1:1,10.0.0.2:2')).toEqual([{ host: '10.0.0.1', port: 1 }, { host: '10.0.0.2', port: 2 }]);
    expect(t('ipv6:[::1]:50051')).toEqual([{ host: '::1', port: 50051 }]);
    expect(t('unix:/tmp/grpc.sock')).toEqual([]);
  });
});
