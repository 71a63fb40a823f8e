/**
 * One undici Pool / Agent / Client of the app's own (any copy: ours, ccxt's
 * pinned one, one loaded after install) shared by alice, bob and code outside
 * any scope: every reply comes from the route's egress, Pools and Agents
 * refuse nothing, each route on connections of its own; a Client serves its
 * first route and refuses the others with LeakBlockedError. Plus canaries for
 * the undici internals guard/undici-partition.ts relies on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Module, { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as ownUndici from 'undici';
import ccxt from 'ccxt';
import { SessionProxyManager, LeakBlockedError, findSessionProxyError } from '../../src/index.js';
import type { EchoServer } from '../../src/testing/index.js';
import { dispatchOwners, ownSymbol, type UndiciExports } from '../../src/layers/undici-copies.js';
import { agentTwin, balancedPoolTwin, poolTwin } from '../../src/guard/undici-partition.js';
import { startScenario, type Scenario } from '../support/scenario.js';
import { skipWithout, startTinyproxy, type RealProxy } from '../support/real-proxies.js';

const require = createRequire(import.meta.url);
const CCXT_UNDICI = fileURLToPath(new URL('../../node_modules/ccxt/node_modules/undici/index.js', import.meta.url));
type U = typeof ownUndici;
const ccxtUndici = require(CCXT_UNDICI) as U;

const EGRESS = { alice: '127.0.0.2', bob: '127.0.0.3', default: '127.0.0.4', direct: '127.0.0.1' } as const;
type Route = 'alice' | 'bob' | 'outside';
const ROUTES: readonly Route[] = ['alice', 'bob', 'outside'];
/** Per route and client: enough to queue on a `connections: 1` pool. */
const PER_ROUTE = 8;

interface Tally {
  ok: number;
  wrong: string[];
  refused: Record<Route, number>;
  other: string[];
}

/** A request whose reply is slow (the echo server's /stream delay), so requests queue; resolves once the body is read. */
type Send = (path: string) => Promise<void>;

interface Row {
  name: string;
  /** Pool/Agent: zero refusals. Client: the first route served, the others refused. */
  kind: 'partitioned' | 'client';
  /** Upper bound of connections per route (a Pool's `connections`). */
  connections?: number;
  make(u: U, origin: string): { send: Send; close(): Promise<void> };
}

const body = async (r: { body: { text(): Promise<string> } }): Promise<void> => void (await r.body.text());
const fetchBody = async (r: Response): Promise<void> => {
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  await r.text();
};

const ROWS: Row[] = [
  {
    name: 'Pool connections:1, pool.request()',
    kind: 'partitioned',
    connections: 1,
    make: (u, origin) => {
      const pool = new u.Pool(origin, { connections: 1 });
      return { send: (path) => pool.request({ path, method: 'GET' }).then(body), close: () => pool.close() };
    },
  },
  {
    name: 'Pool connections:4, undici.request({ dispatcher })',
    kind: 'partitioned',
    connections: 4,
    make: (u, origin) => {
      const pool = new u.Pool(origin, { connections: 4 });
      return { send: (path) => u.request(`${origin}${path}`, { dispatcher: pool }).then(body), close: () => pool.close() };
    },
  },
  {
    name: 'Pool connections:1 as global fetch dispatcher',
    kind: 'partitioned',
    connections: 1,
    make: (u, origin) => {
      const pool = new u.Pool(origin, { connections: 1 });
      return { send: (path) => fetch(`${origin}${path}`, { dispatcher: pool } as unknown as RequestInit).then(fetchBody), close: () => pool.close() };
    },
  },
  {
    name: 'Agent connections:2, undici.request({ dispatcher })',
    kind: 'partitioned',
    connections: 2,
    make: (u, origin) => {
      const agent = new u.Agent({ connections: 2 });
      return { send: (path) => u.request(`${origin}${path}`, { dispatcher: agent }).then(body), close: () => agent.close() };
    },
  },
  {
    name: 'Agent connections:1 as global fetch dispatcher',
    kind: 'partitioned',
    connections: 1,
    make: (u, origin) => {
      const agent = new u.Agent({ connections: 1 });
      return { send: (path) => fetch(`${origin}${path}`, { dispatcher: agent } as unknown as RequestInit).then(fetchBody), close: () => agent.close() };
    },
  },
  {
    name: 'Client, client.request()',
    kind: 'client',
    make: (u, origin) => {
      const client = new u.Client(origin);
      return { send: (path) => client.request({ path, method: 'GET' }).then(body), close: () => client.close() };
    },
  },
];

let seq = 0;

/**
 * Drives `row` concurrently from alice's scope, bob's scope and outside any
 * scope (alice first, so she is a Client's home route); classifies every
 * outcome by the egress IP the echo server saw for that request.
 */
async function drive(manager: SessionProxyManager, echo: EchoServer, u: U, row: Row, expected: Record<Route, string>): Promise<Tally & { connections: Record<Route, number> }> {
  const { send, close } = row.make(u, echo.httpUrl);
  const peersBefore = echo.peers.length;
  const tally: Tally = { ok: 0, wrong: [], refused: { alice: 0, bob: 0, outside: 0 }, other: [] };
  const jobs: Array<Promise<void>> = [];
  for (let i = 0; i < PER_ROUTE; i++) {
    for (const route of ROUTES) {
      const path = `/stream?chunks=2&size=8&delay=5&id=${++seq}`;
      const run = (): Promise<void> => send(path);
      const started = route === 'outside' ? run() : manager.withProxy(route, run);
      jobs.push(
        started.then(
          () => {
            const seen = echo.requests.find((r) => r.path === path);
            if (seen?.ip === expected[route]) tally.ok++;
            else tally.wrong.push(`${route} left from ${seen?.ip ?? 'nowhere'}, expected ${expected[route]}`);
          },
          (err: unknown) => {
            if (findSessionProxyError(err) instanceof LeakBlockedError) tally.refused[route]++;
            else tally.other.push(`${route}: ${String(err)} ${String((err as Error).cause ?? '')}`);
          },
        ),
      );
    }
  }
  await Promise.all(jobs);
  await close();
  const connections = { alice: 0, bob: 0, outside: 0 };
  for (const p of echo.peers.slice(peersBefore)) for (const r of ROUTES) if (p.ip === expected[r]) connections[r]++;
  return { ...tally, connections };
}

function checkRow(row: Row, t: Awaited<ReturnType<typeof drive>>): void {
  const refused = t.refused.alice + t.refused.bob + t.refused.outside;
  // Never the wrong IP, and no error other than a clean refusal.
  expect(t.wrong, `${row.name}: wrong egress`).toEqual([]);
  expect(t.other, `${row.name}: unexpected errors`).toEqual([]);
  if (row.kind === 'partitioned') {
    expect(refused, `${row.name}: refusals`).toBe(0);
    expect(t.ok).toBe(PER_ROUTE * ROUTES.length);
    if (row.connections !== undefined) {
      for (const r of ROUTES) expect(t.connections[r], `${row.name}: connections of ${r}`).toBeLessThanOrEqual(row.connections);
    }
  } else {
    // alice dispatched first: her requests all succeed, the other routes' are refused.
    expect(t.refused).toEqual({ alice: 0, bob: PER_ROUTE, outside: PER_ROUTE });
    expect(t.ok).toBe(PER_ROUTE);
  }
}

const report: string[] = [];
afterAll(() => {
  // Figures for the report: per client, succeeded / refused.
  if (report.length) console.log(`[shared-undici ${process.version}]\n${report.join('\n')}`);
});

function matrix(label: string, withDefault: boolean): void {
  describe(`${label}`, () => {
    let world: Scenario;
    let manager: SessionProxyManager;
    const expected: Record<Route, string> = { alice: EGRESS.alice, bob: EGRESS.bob, outside: withDefault ? EGRESS.default : EGRESS.direct };
    beforeAll(async () => {
      world = await startScenario({ alice: { egressIp: EGRESS.alice }, bob: { egressIp: EGRESS.bob }, default: { egressIp: EGRESS.default } });
      manager = new SessionProxyManager({
        accounts: { alice: world.proxies.alice!.url, bob: world.proxies.bob!.urlFor('socks5h') },
        proxy: withDefault ? world.proxies.default!.url : undefined,
        env: false,
        noProxy: [],
      }).install();
    });
    afterAll(async () => {
      await manager?.uninstall();
      await world?.close();
    });

    for (const [copy, u] of [['undici', ownUndici], ['ccxt undici 7.29.1', ccxtUndici]] as const) {
      for (const row of ROWS) {
        it(`${copy}: ${row.name}`, async () => {
          const t = await drive(manager, world.echo, u, row, expected);
          report.push(`${label} | ${copy} | ${row.name}: ok ${t.ok}, refused ${JSON.stringify(t.refused)}, wrong ${t.wrong.length}, conns ${JSON.stringify(t.connections)}`);
          checkRow(row, t);
        });
      }
    }

    it('one ccxt exchange instance (its own undici Agent) used from every scope, in rounds that reuse kept-alive connections', async () => {
      const exchange = new ccxt.binance();
      const outcomes: string[] = [];
      // ccxt's Agent does not cap connections: only reuse across rounds puts one scope on another's connection.
      for (let round = 0; round < 4; round++) {
        const jobs = ROUTES.flatMap((route) =>
          Array.from({ length: 2 }, () => {
            const run = (): Promise<unknown> => exchange.fetch(`${world.echo.httpUrl}/ccxt-${++seq}`, 'GET');
            return (route === 'outside' ? run() : manager.withProxy(route, run)).then(
              (reply) => ((reply as { ip: string }).ip === expected[route] ? 'right' : `WRONG ${route}: ${(reply as { ip: string }).ip}`),
              (err: unknown) => `error ${route}: ${String(err)}`,
            );
          }),
        );
        outcomes.push(...(await Promise.all(jobs)));
      }
      await exchange.close?.();
      report.push(`${label} | ccxt exchange.fetch: ok ${outcomes.filter((o) => o === 'right').length}/${outcomes.length}`);
      expect(outcomes.filter((o) => o !== 'right')).toEqual([]);
    });
  });
}

matrix('with a default proxy', true);
matrix('without a default proxy', false);

describe('a copy loaded after install', () => {
  let world: Scenario;
  let manager: SessionProxyManager;
  beforeAll(async () => {
    world = await startScenario({ alice: { egressIp: EGRESS.alice }, bob: { egressIp: EGRESS.bob } });
    manager = new SessionProxyManager({ accounts: { alice: world.proxies.alice!.url, bob: world.proxies.bob!.url }, env: false, noProxy: [] }).install();
  });
  afterAll(async () => {
    await manager?.uninstall();
    await world?.close();
  });

  it('is partitioned too (a fresh load of ccxt\'s undici, by path, after install)', async () => {
    const dir = CCXT_UNDICI.replace(/index\.js$/, '');
    const cache = require.cache as Record<string, unknown>;
    const saved = new Map<string, unknown>();
    // The real path too: node_modules may be a symlink.
    for (const key of Object.keys(cache)) {
      if (!key.startsWith(dir) && !key.includes('/ccxt/node_modules/undici/')) continue;
      saved.set(key, cache[key]);
      delete cache[key];
    }
    const fresh = require(CCXT_UNDICI) as U;
    // Later installs must find the copy the other tests use in require.cache again.
    for (const [key, mod] of saved) cache[key] = mod;
    expect(fresh.Pool).not.toBe(ccxtUndici.Pool);
    const expected = { alice: EGRESS.alice, bob: EGRESS.bob, outside: EGRESS.direct };
    const t = await drive(manager, world.echo, fresh, ROWS[0]!, expected);
    report.push(`loaded after install | ${ROWS[0]!.name}: ok ${t.ok}, refused ${JSON.stringify(t.refused)}, wrong ${t.wrong.length}`);
    checkRow(ROWS[0]!, t);
  });
});

describe.skipIf(skipWithout('tinyproxy'))('a real daemon (tinyproxy) for alice', () => {
  let world: Scenario;
  let tiny: RealProxy;
  let manager: SessionProxyManager;
  beforeAll(async () => {
    tiny = await startTinyproxy({ egressIp: '127.0.0.5' });
    world = await startScenario({ bob: { egressIp: EGRESS.bob }, default: { egressIp: EGRESS.default } });
    manager = new SessionProxyManager({ accounts: { alice: tiny.url, bob: world.proxies.bob!.url }, proxy: world.proxies.default!.url, env: false, noProxy: [] }).install();
  });
  afterAll(async () => {
    await manager?.uninstall();
    await Promise.all([world?.close(), tiny?.close()]);
  });

  for (const [copy, u] of [['undici', ownUndici], ['ccxt undici 7.29.1', ccxtUndici]] as const) {
    for (const row of [ROWS[0]!, ROWS[2]!, ROWS[3]!]) {
      it(`${copy}: ${row.name}`, async () => {
        const t = await drive(manager, world.echo, u, row, { alice: '127.0.0.5', bob: EGRESS.bob, outside: EGRESS.default });
        report.push(`tinyproxy | ${copy} | ${row.name}: ok ${t.ok}, refused ${JSON.stringify(t.refused)}, wrong ${t.wrong.length}`);
        checkRow(row, t);
      });
    }
  }
});

describe('routes other than accounts', () => {
  it('a noProxy target is the bypass route: one shared direct connection for every scope, nothing refused', async () => {
    const world = await startScenario({ alice: { egressIp: EGRESS.alice }, bob: { egressIp: EGRESS.bob } });
    const manager = new SessionProxyManager({ accounts: { alice: world.proxies.alice!.url, bob: world.proxies.bob!.url }, env: false, noProxy: ['127.0.0.1'] }).install();
    try {
      const client = { name: 'Client (bypass)', kind: 'partitioned', connections: 1, make: ROWS.find((r) => r.kind === 'client')!.make } satisfies Row;
      const t = await drive(manager, world.echo, ownUndici, client, { alice: EGRESS.direct, bob: EGRESS.direct, outside: EGRESS.direct });
      expect(t.wrong).toEqual([]);
      expect(t.refused).toEqual({ alice: 0, bob: 0, outside: 0 });
      // All three scopes counted the same direct peers: one connection in all.
      expect(t.connections.alice).toBe(1);
    } finally {
      await manager.uninstall();
      await world.close();
    }
  });

  it('a Pool connected before install gives its direct connection to no route; a Client connected before install refuses', async () => {
    const world = await startScenario({ alice: { egressIp: EGRESS.alice }, bob: { egressIp: EGRESS.bob } });
    const pool = new ownUndici.Pool(world.echo.httpUrl, { connections: 1 });
    const client = new ownUndici.Client(world.echo.httpUrl);
    const ipOf = async (d: { request: typeof pool.request }): Promise<string> => ((await (await d.request({ path: '/', method: 'GET' })).body.json()) as { ip: string }).ip;
    expect(await ipOf(pool)).toBe(EGRESS.direct);
    expect(await ipOf(client)).toBe(EGRESS.direct);
    const manager = new SessionProxyManager({ accounts: { alice: world.proxies.alice!.url, bob: world.proxies.bob!.url }, env: false, noProxy: [] }).install();
    try {
      for (const who of ['alice', 'bob'] as const) expect(await manager.withProxy(who, () => ipOf(pool))).toBe(EGRESS[who]);
      const refused = await manager.withProxy('alice', () => ipOf(client)).catch((err: unknown) => err);
      expect(findSessionProxyError(refused)).toBeInstanceOf(LeakBlockedError);
      expect(String((refused as Error).message)).toMatch(/connected before session-proxy was installed/);
    } finally {
      await manager.uninstall();
      await Promise.all([pool.close(), client.close()]);
      await world.close();
    }
  });
});

describe('lifecycle', () => {
  const dispatchOf = (cls: { prototype: object }): unknown => {
    for (let p: object | null = cls.prototype; p; p = Object.getPrototypeOf(p)) {
      const k = ownSymbol(p, 'dispatch');
      if (k) return (p as Record<symbol, unknown>)[k];
    }
    return undefined;
  };
  const methods = (u: U): unknown[] =>
    [u.Pool, u.Agent, u.Client].flatMap((c) => {
      const owner = dispatchOwners(u as unknown as UndiciExports).owners.find((o) => o.proto.isPrototypeOf(c.prototype) || (o.proto as object) === c.prototype)!;
      return [owner.proto[owner.kDispatch], owner.proto[owner.kClose], owner.proto[owner.kDestroy]];
    });

  it('uninstall puts back every patched prototype method and Module._load (function identity)', async () => {
    const M = Module as unknown as { _load: unknown };
    const before = { own: methods(ownUndici), ccxt: methods(ccxtUndici), load: M._load };
    const world = await startScenario({ alice: { egressIp: EGRESS.alice } });
    const manager = new SessionProxyManager({ accounts: { alice: world.proxies.alice!.url }, env: false, noProxy: [] }).install();
    try {
      const during = { own: methods(ownUndici), ccxt: methods(ccxtUndici) };
      for (const copy of ['own', 'ccxt'] as const) during[copy].forEach((fn, i) => expect(fn, `${copy} method ${i} patched`).not.toBe(before[copy][i]));
      expect(M._load).not.toBe(before.load);
      expect(dispatchOf(ownUndici.Pool)).not.toBe(before.own[0]);
    } finally {
      await manager.uninstall();
      await world.close();
    }
    expect(methods(ownUndici)).toEqual(before.own);
    methods(ownUndici).forEach((fn, i) => expect(fn).toBe(before.own[i]));
    methods(ccxtUndici).forEach((fn, i) => expect(fn).toBe(before.ccxt[i]));
    expect(M._load).toBe(before.load);
  });

  it('closing the Pool closes its twins; their connect events reach the Pool the app holds', async () => {
    const world = await startScenario({ alice: { egressIp: EGRESS.alice }, bob: { egressIp: EGRESS.bob } });
    const manager = new SessionProxyManager({ accounts: { alice: world.proxies.alice!.url, bob: world.proxies.bob!.url }, env: false, noProxy: [] }).install();
    try {
      const pool = new ownUndici.Pool(world.echo.httpUrl, { connections: 1 });
      const connected: unknown[] = [];
      pool.on('connect', (_origin, targets) => connected.push(targets[0]));
      for (const who of ['alice', 'bob'] as const) await manager.withProxy(who, () => pool.request({ path: '/', method: 'GET' }).then(body));
      expect(connected).toEqual([pool, pool]);
      // bob's connection lives on the twin: closing the app's Pool ends it, and says so on the Pool.
      const disconnected = new Promise<void>((resolve) => {
        let n = 0;
        pool.on('disconnect', (_origin, targets) => {
          expect(targets[0]).toBe(pool);
          if (++n === 2) resolve();
        });
      });
      await pool.close();
      await disconnected;
      expect(pool.closed).toBe(true);
    } finally {
      await manager.uninstall();
      await world.close();
    }
  });
});

describe('canary: the undici internals guard/undici-partition.ts relies on', () => {
  for (const [copy, u] of [['undici', ownUndici], ['ccxt undici 7.29.1', ccxtUndici]] as const) {
    describe(`${copy} ${(u as unknown as { version?: string }).version ?? ''}`, () => {
      it('PoolBase, Agent and Client own [Symbol(dispatch)], [Symbol(close)] and [Symbol(destroy)]', () => {
        const { owners, problems } = dispatchOwners(u as unknown as UndiciExports);
        expect(problems, `undici internals changed in ${copy}: ${problems.join('; ')}`).toEqual([]);
        expect(owners.map((o) => o.name).sort(), `the prototypes owning [kDispatch] in ${copy} changed`).toEqual(['Agent', 'Client', 'PoolBase']);
      });

      it('Pool, BalancedPool and Agent keep their options and factory where the twin recipes read them, and round-trip through their constructors', async () => {
        const pool = new u.Pool('http://127.0.0.1:9', { connections: 3, keepAliveTimeout: 1234, clientTtl: 99 });
        for (const d of ['url', 'options', 'factory', 'connections']) expect(ownSymbol(pool, d), `no unique Symbol(${d}) on ${copy} Pool: the Pool twin recipe needs it`).toBeDefined();
        const agent = new u.Agent({ connections: 2, keepAliveTimeout: 4321, maxOrigins: 7 });
        for (const d of ['options', 'factory']) expect(ownSymbol(agent, d), `no unique Symbol(${d}) on ${copy} Agent: the Agent twin recipe needs it`).toBeDefined();
        const balanced = new u.BalancedPool(['http://127.0.0.1:9', 'http://127.0.0.1:10'], { connections: 2 });
        const rows: Array<[object, object, string[]]> = [
          [pool, poolTwin(pool as never) as object, ['url', 'options', 'factory', 'connections']],
          [agent, agentTwin(agent as never) as object, ['options', 'factory']],
          [balanced, balancedPoolTwin(balanced as never) as object, ['options', 'factory']],
        ];
        for (const [orig, twin, fields] of rows) {
          expect(twin.constructor).toBe(orig.constructor);
          for (const d of fields) {
            const a = (orig as Record<symbol, unknown>)[ownSymbol(orig, d)!];
            const b = (twin as Record<symbol, unknown>)[ownSymbol(twin, d)!];
            if (typeof a === 'function') expect(b, `${copy} ${orig.constructor.name} twin's ${d}`).toBe(a);
            else expect(b, `${copy} ${orig.constructor.name} twin's ${d} differs from the original's: its constructor no longer accepts back what it stores`).toEqual(a);
          }
          await (twin as { close(): Promise<void> }).close();
        }
        expect((balanced as unknown as { upstreams: string[] }).upstreams).toEqual(['http://127.0.0.1:9', 'http://127.0.0.1:10']);
        await Promise.all([pool.close(), agent.close(), balanced.close()]);
      });

      it('DispatcherBase.dispatch delivers what [kDispatch] throws through handler.onError', () => {
        const pool = new u.Pool('http://127.0.0.1:9');
        const owner = dispatchOwners(u as unknown as UndiciExports).owners.find((o) => o.name === 'PoolBase')!;
        const thrown = new Error('canary');
        Object.defineProperty(pool, owner.kDispatch, { value: () => { throw thrown; } });
        const errors: unknown[] = [];
        const returned = pool.dispatch({ path: '/', method: 'GET' }, { onError: (e: unknown) => errors.push(e) } as never);
        expect(returned).toBe(false);
        expect(errors, `${copy}: DispatcherBase no longer routes a throw in [kDispatch] to handler.onError`).toEqual([thrown]);
        void pool.close();
      });
    });
  }
});
