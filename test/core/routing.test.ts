/**
 * The routing core against the testing kit: two accounts and a default, each
 * on its own mock proxy with its own egress address, `noProxy: []` so that
 * loopback targets are routed too.
 */
import diagnostics from 'node:diagnostics_channel';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import axios from 'axios';
import { SessionProxyManager } from '../../src/index.js';
import { startMockProxy, testCa } from '../../src/testing/index.js';
import { httpsGetJson, sequentialPeers, startScenario, type Scenario } from '../support/scenario.js';
import { httpClients } from '../support/http-clients.js';

const SYMBOLS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')] as const;
const g = globalThis as unknown as Record<symbol, unknown>;

const EGRESS = { alice: '127.0.0.2', bob: '127.0.0.3', default: '127.0.0.4' } as const;
type Who = keyof typeof EGRESS;

let world: Scenario;
let manager: SessionProxyManager;

beforeAll(async () => {
  world = await startScenario({
    alice: { egressIp: EGRESS.alice, auth: { username: 'alice', password: 'alice-Secr3t:@/#' } },
    bob: { egressIp: EGRESS.bob },
    default: { egressIp: EGRESS.default, auth: { username: 'dflt', password: 'dflt-Secr3t' } },
  });
  manager = new SessionProxyManager({
    proxy: world.proxies.default.url,
    accounts: { alice: world.proxies.alice.url, bob: world.proxies.bob.urlFor('socks5h') },
    noProxy: [],
    requestTls: { ca: testCa },
  }).install();
});

afterAll(async () => {
  await manager?.uninstall();
  await world?.close();
});

describe('every HTTP road leaves through the scope\'s proxy', () => {
  it('routes 200+ interleaved concurrent requests by account, default outside scopes, none direct', async () => {
    const jobs: Array<Promise<{ who: Who; client: string; ip: string }>> = [];
    const all = httpClients(world.echo);
    const rounds = Math.ceil(210 / (Object.keys(all).length * 3));
    for (let round = 0; round < rounds; round++) {
      for (const [name, client] of Object.entries(all)) {
        for (const who of ['alice', 'bob', 'default'] as const) {
          const run = async (): Promise<{ ip: string }> => client();
          const job = who === 'default' ? run() : manager.withProxy(who, run);
          jobs.push(job.then((r) => ({ who, client: name, ip: r.ip })));
        }
      }
    }
    expect(jobs.length).toBeGreaterThanOrEqual(200);
    const results = await Promise.all(jobs);
    const wrong = results.filter((r) => r.ip !== EGRESS[r.who]);
    expect(wrong).toEqual([]);
    const clientsSeen = new Set(results.map((r) => r.client));
    expect(clientsSeen.size).toBe(Object.keys(all).length);
    expect(world.echo.peers.filter((p) => p.ip === '127.0.0.1')).toEqual([]);
  });

  it('axios reading HTTP_PROXY (the default proxy) inside a scope still leaves through the account', async () => {
    expect(process.env.HTTP_PROXY).toContain(`:${world.proxies.default.port}`);
    const r = await manager.withProxy('alice', async () => (await axios.get(`${world.echo.httpUrl}/env`)).data);
    expect(r.ip).toBe(EGRESS.alice);
  });
});

describe('keep-alive', () => {
  it('20 sequential HTTPS requests in one account share one tunnel (fetch and https.get)', async () => {
    // A fresh account, so its pools hold no sockets from the concurrent test.
    const proxy = await startMockProxy({ egressIp: '127.0.0.5' });
    manager.setAccount('carol', proxy.urlFor('socks5h'));
    const viaFetch = await sequentialPeers(20, () =>
      manager.withProxy('carol', async () => (await fetch(`${world.echo.httpsUrl}/ka`)).json() as Promise<{ ip: string; port: number }>),
    );
    expect(viaFetch.ips).toEqual(new Set(['127.0.0.5']));
    expect(viaFetch.ports.size).toBe(1);
    const viaGet = await sequentialPeers(20, () => manager.withProxy('carol', () => httpsGetJson(`${world.echo.httpsUrl}/ka2`, testCa)));
    expect(viaGet.ips).toEqual(new Set(['127.0.0.5']));
    expect(viaGet.ports.size).toBe(1);
    // One tunnel for fetch's pool and one for the https agent's: 40 requests, 2 CONNECTs.
    expect(proxy.log.length).toBe(2);
    await manager.removeAccount('carol');
    await proxy.close();
  });
});

describe('scopes', () => {
  it('withProxy returns fn\'s value, sync and async; nested scopes use the innermost account', async () => {
    expect(manager.withProxy('alice', () => 42)).toBe(42);
    await expect(manager.withProxy('alice', async () => 'x')).resolves.toBe('x');
    const inner = await manager.withProxy('alice', () => manager.withProxy('bob', async () => {
      expect(manager.currentAccount()).toBe('bob');
      return (await fetch(`${world.echo.httpUrl}/n`)).json() as Promise<{ ip: string }>;
    }));
    expect(inner.ip).toBe(EGRESS.bob);
    expect(manager.currentAccount()).toBeUndefined();
  });

  it('bind() runs a callback in the account\'s scope wherever it is called', async () => {
    const bound = manager.bind('bob', async () => (await fetch(`${world.echo.httpUrl}/b`)).json() as Promise<{ ip: string }>);
    const r = await manager.withProxy('alice', () => bound());
    expect(r.ip).toBe(EGRESS.bob);
  });

  it('unknown accounts throw UnknownAccountError synchronously', () => {
    expect(() => manager.withProxy('nobody', () => 1)).toThrowError(/unknown account "nobody"/);
    try {
      manager.withProxy('nobody', () => 1);
    } catch (err) {
      expect((err as { code: string }).code).toBe('SP_ERR_UNKNOWN_ACCOUNT');
    }
  });

  it('current() reports the active proxy redacted', () => {
    const info = manager.current('alice');
    expect(info.url).toContain('alice:***@');
    expect(JSON.stringify(info)).not.toContain('Secr3t');
  });

  it('re-asserts the global dispatcher when another copy of undici replaced it', async () => {
    // Without the re-assertion the replaced Agent would still be tunnelled by
    // the socket layer (same egress), so the egress alone proves nothing: what
    // only the routing dispatcher gives is an 'undici' route decision, the
    // routing dispatcher back at both symbols, and the replacement unused.
    const routing = g[SYMBOLS[0]];
    expect(g[SYMBOLS[1]]).toBe(routing);
    const { Agent, setGlobalDispatcher, getGlobalDispatcher } = await import('undici');
    const replacement = new Agent();
    let replacementDispatches = 0;
    const dispatch = replacement.dispatch.bind(replacement);
    replacement.dispatch = (opts, handler) => {
      replacementDispatches++;
      return dispatch(opts, handler);
    };
    const routes: Array<{ layer: string; account?: string; target: string; decision: string }> = [];
    const onRoute = (m: unknown): void => void routes.push(m as (typeof routes)[number]);
    diagnostics.subscribe('session-proxy:route', onRoute);
    try {
      setGlobalDispatcher(replacement);
      // Precondition: the other copy did replace it, under both symbols.
      expect(getGlobalDispatcher()).toBe(replacement);
      expect(g[SYMBOLS[1]]).toBe(replacement);
      const r = await manager.withProxy('alice', async () => (await fetch(`${world.echo.httpUrl}/re`)).json() as Promise<{ ip: string }>);
      expect(r.ip).toBe(EGRESS.alice);
      const target = `127.0.0.1:${world.echo.httpPort}`;
      expect(routes.filter((e) => e.target === target)).toEqual([expect.objectContaining({ layer: 'undici', account: 'alice', decision: 'proxy' })]);
      expect(replacementDispatches).toBe(0);
      expect(g[SYMBOLS[0]]).toBe(routing);
      expect(g[SYMBOLS[1]]).toBe(routing);
    } finally {
      diagnostics.unsubscribe('session-proxy:route', onRoute);
      // Leave the file's later tests the routing dispatcher even when this one failed.
      for (const s of SYMBOLS) if (g[s] !== routing) g[s] = routing;
      await replacement.close();
    }
  });
});

describe('secrets', () => {
  it('no proxy password in env exports except the default proxy URL itself, nor in manager output', () => {
    const shown = [String(manager.current('alice').url), JSON.stringify(manager.current()), JSON.stringify(manager.options.accounts ? Object.keys(manager.options.accounts) : [])];
    for (const s of shown) {
      expect(s).not.toContain('alice-Secr3t');
      expect(s).not.toContain('dflt-Secr3t');
    }
  });
});
