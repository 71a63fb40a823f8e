/**
 * Option `rules`: each rule kind on every layer (fetch, http, https, ws, an
 * app's own undici Pool, http2, grpc-js), outside and inside an account's
 * scope, proved by the egress address the target saw. Each target is its
 * own echo + gRPC server, matched by `127.0.0.1:port`:
 *
 * | target   | rule                           | outside scopes     | in alice's scope   |
 * |----------|--------------------------------|--------------------|--------------------|
 * | proxied  | proxy R (egress .5)            | .5                 | alice's .2         |
 * | direct   | 'direct'                       | 127.0.0.1          | alice's .2         |
 * | blocked  | 'block'                        | LeakBlockedError   | alice's .2         |
 * | scoped   | 'direct', scopes: true         | 127.0.0.1          | 127.0.0.1          |
 * | fenced   | 'block', scopes: true          | LeakBlockedError   | LeakBlockedError   |
 * | none     | —                              | default proxy .4   | alice's .2         |
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { once } from 'node:events';
import { Pool } from 'undici';
import { SessionProxyManager, ConfigError, LeakBlockedError, findSessionProxyError, loadConfig } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { grpcEcho, startGrpcEcho } from '../socket/grpc-echo.js';
import { readJson } from '../support/scenario.js';
import { serializeConfig } from '../../src/config/serialize.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wsExchange } from '../support/http-clients.js';
import { h2Get } from '../support/socket-clients.js';

const EGRESS = { alice: '127.0.0.2', default: '127.0.0.4', rule: '127.0.0.5', scheme: '127.0.0.6' } as const;
const DIRECT = '127.0.0.1';
const TARGETS = ['proxied', 'direct', 'blocked', 'scoped', 'fenced', 'none'] as const;
type TargetName = (typeof TARGETS)[number];

interface World {
  echo: EchoServer;
  grpc: Awaited<ReturnType<typeof startGrpcEcho>>;
}
const world = {} as Record<TargetName, World>;
const proxies = {} as Record<keyof typeof EGRESS, MockProxy>;
let manager: SessionProxyManager;
let schemeEcho: EchoServer;
const routeEvents: Array<Record<string, unknown>> = [];
const onRoute = (m: unknown): void => void routeEvents.push(m as Record<string, unknown>);

const entries = (name: TargetName): string[] => [`127.0.0.1:${world[name].echo.httpPort}`, `127.0.0.1:${world[name].echo.httpsPort}`, world[name].grpc.target];

beforeAll(async () => {
  for (const name of TARGETS) world[name] = { echo: await startEchoServer({ http2: true }), grpc: await startGrpcEcho() };
  schemeEcho = await startEchoServer();
  for (const who of Object.keys(EGRESS) as Array<keyof typeof EGRESS>) proxies[who] = await startMockProxy({ egressIp: EGRESS[who] });
  manager = new SessionProxyManager({
    proxy: proxies.default.url,
    accounts: { alice: proxies.alice.urlFor('socks5h') },
    noProxy: [],
    rules: [
      { match: entries('proxied'), proxy: proxies.rule.url },
      { match: entries('direct'), proxy: 'direct' },
      { match: entries('blocked'), proxy: 'block' },
      { match: entries('scoped'), proxy: 'direct', scopes: true },
      { match: entries('fenced'), proxy: 'block', scopes: true },
      // A scheme: honoured by fetch/http/ws, not by the socket layer (an own undici Pool sees host:port).
      { match: `https://127.0.0.1:${schemeEcho.httpsPort}`, proxy: proxies.scheme.urlFor('socks5') },
    ],
  }).install();
  diagnostics.subscribe('session-proxy:route', onRoute);
});
afterAll(async () => {
  diagnostics.unsubscribe('session-proxy:route', onRoute);
  await manager?.uninstall();
  await Promise.all([...Object.values(world).flatMap((w) => [w.echo.close(), w.grpc.close()]), schemeEcho?.close(), ...Object.values(proxies).map((p) => p.close())]);
});

const ipOfPeer = (peer: string): string => peer.replace(/^ipv4:/, '').replace(/:\d+$/, '');

const h2Ip = async (e: EchoServer, path: string): Promise<string> => (await h2Get(e, path)).ip;

const wsIp = async (url: string): Promise<string> => (await wsExchange(url)).ip;

/** One request per layer; each resolves with the IP the target saw. */
const clients: Record<string, (w: World) => Promise<string>> = {
  'fetch (undici layer)': async ({ echo }) => ((await (await fetch(`${echo.httpUrl}/f`)).json()) as { ip: string }).ip,
  'http.get': ({ echo }) => new Promise((resolve, reject) => http.get(`${echo.httpUrl}/h`, (res) => readJson<{ ip: string }>(res).then((r) => resolve(r.ip), reject)).on('error', reject)),
  'https.get': ({ echo }) =>
    new Promise((resolve, reject) => https.get(`${echo.httpsUrl}/s`, { ca: testCa }, (res) => readJson<{ ip: string }>(res).then((r) => resolve(r.ip), reject)).on('error', reject)),
  'ws wss://': ({ echo }) => wsIp(`${echo.wssUrl}/ws`),
  'own undici Pool (socket layer)': async ({ echo }) => {
    const pool = new Pool(echo.httpsUrl, { connect: { ca: testCa } });
    try {
      const r = await pool.request({ path: '/pool', method: 'GET' });
      return ((await r.body.json()) as { ip: string }).ip;
    } finally {
      await pool.destroy();
    }
  },
  'http2.connect': ({ echo }) => h2Ip(echo, '/h2'),
  'grpc-js': async ({ grpc }) => ipOfPeer((await grpcEcho(grpc.target)).peer),
};

/** A refusal by a 'block' rule, as each client reports it (grpc-js carries our message in `details`). */
function blockedByRule(err: unknown): boolean {
  const typed = findSessionProxyError(err);
  if (typed instanceof LeakBlockedError && /blocked by rule #\d/.test(typed.message)) return true;
  const text = String((err as { details?: unknown })?.details ?? '') + String((err as Error)?.message ?? '');
  return /blocked by rule #\d/.test(text);
}

/**
 * grpc-js reaches the target through HTTPS_PROXY (the env layer exports the default proxy), whose
 * CONNECT the http layer answers itself; a refused CONNECT reaches grpc-js without its reason
 * (`UNAVAILABLE … Last error: undefined`): the route event for that target says why.
 */
function blockedGrpc(err: unknown, port: number | undefined): boolean {
  if ((err as { code?: unknown })?.code !== 14 || port === undefined) return false;
  return routeEvents.some((e) => e.decision === 'blocked' && String(e.target).endsWith(`:${port}`) && (e.rule as { action?: string } | undefined)?.action === 'block');
}

async function outcome(run: () => Promise<string>, grpcPort?: number): Promise<string> {
  try {
    return await run();
  } catch (err) {
    return blockedByRule(err) || blockedGrpc(err, grpcPort) ? 'blocked' : `error: ${String((err as Error)?.message ?? err)}`;
  }
}

const EXPECTED: Record<TargetName, { outside: string; alice: string }> = {
  proxied: { outside: EGRESS.rule, alice: EGRESS.alice },
  direct: { outside: DIRECT, alice: EGRESS.alice },
  blocked: { outside: 'blocked', alice: EGRESS.alice },
  scoped: { outside: DIRECT, alice: DIRECT },
  fenced: { outside: 'blocked', alice: 'blocked' },
  none: { outside: EGRESS.default, alice: EGRESS.alice },
};

describe('the rules table on every layer', () => {
  for (const scope of ['outside', 'alice'] as const) {
    it(`${scope === 'outside' ? 'outside any scope (the default route)' : "inside alice's scope"}: every layer, every rule kind`, async () => {
      const jobs: Array<Promise<{ target: TargetName; client: string; got: string }>> = [];
      for (const target of TARGETS) {
        for (const [client, run] of Object.entries(clients)) {
          const go = (): Promise<string> => run(world[target]);
          const grpcPort = client === 'grpc-js' ? Number(world[target].grpc.target.split(':')[1]) : undefined;
          jobs.push(outcome(scope === 'alice' ? () => manager.withProxy('alice', go) : go, grpcPort).then((got) => ({ target, client, got })));
        }
      }
      const results = await Promise.all(jobs);
      const wrong = results.filter((r) => r.got !== EXPECTED[r.target][scope]).map((r) => `${r.target} / ${r.client}: got ${r.got}, expected ${EXPECTED[r.target][scope]}`);
      expect(wrong).toEqual([]);
      // Nothing at all reached a blocked target.
      for (const target of TARGETS.filter((t) => EXPECTED[t][scope] === 'blocked')) {
        expect(world[target].echo.peers.filter((p) => p.at > 0).length, `${target} saw no connection`).toBe(0);
      }
    }, 60_000);
  }

  it('a rule with a scheme is honoured where the scheme is known (https.get, fetch), and the socket layer sees host:port only', async () => {
    const viaHttps = await clients['https.get']!({ echo: schemeEcho } as World);
    expect(viaHttps).toBe(EGRESS.scheme);
    const viaPool = await clients['own undici Pool (socket layer)']!({ echo: schemeEcho } as World);
    expect(viaPool).toBe(EGRESS.default);
    // The plain-http port is not https: no match, the default proxy.
    expect(await clients['fetch (undici layer)']!({ echo: schemeEcho } as World)).toBe(EGRESS.default);
  });

  it('the route event names the rule that matched', async () => {
    routeEvents.length = 0;
    await clients['http.get']!(world.proxied);
    await outcome(() => clients['http.get']!(world.blocked));
    const proxied = routeEvents.find((e) => e.layer === 'http' && String(e.target).endsWith(`:${world.proxied.echo.httpPort}`));
    expect(proxied).toMatchObject({ decision: 'proxy', account: undefined, rule: { index: 1, action: 'proxy', match: entries('proxied').join(',') } });
    expect(String(proxied!.proxy)).toContain(`:${proxies.rule.port}`);
    const blocked = routeEvents.find((e) => e.layer === 'http' && String(e.target).endsWith(`:${world.blocked.echo.httpPort}`));
    expect(blocked).toMatchObject({ decision: 'blocked', rule: { index: 3, action: 'block' } });
  });

  it("a rule's connections are its own: one undici Pool shared by the default route and alice gives each its own connections", async () => {
    const shared = new Pool(world.proxied.echo.httpUrl, { connections: 1 });
    try {
      const ips: string[] = [];
      for (let i = 0; i < 6; i++) {
        const go = async (): Promise<string> => ((await (await shared.request({ path: `/shared-${i}`, method: 'GET' })).body.json()) as { ip: string }).ip;
        ips.push(i % 2 ? await manager.withProxy('alice', go) : await go());
      }
      expect(ips).toEqual([EGRESS.rule, EGRESS.alice, EGRESS.rule, EGRESS.alice, EGRESS.rule, EGRESS.alice]);
    } finally {
      await shared.destroy();
    }
  });

  it("a connection opened for a rule refuses alice's writes; a scopes: true rule's (direct) connection takes anyone's", async () => {
    const ruleSocket = net.connect({ host: '127.0.0.1', port: world.proxied.echo.httpPort });
    await once(ruleSocket, 'connect');
    const refused = once(ruleSocket, 'error').then(([e]) => e as Error);
    manager.withProxy('alice', () => ruleSocket.write('GET /alice-on-rule HTTP/1.1\r\nhost: x\r\n\r\n'));
    const err = await refused;
    expect(err).toBeInstanceOf(LeakBlockedError);
    expect(err.message).toMatch(/serving rule #1 was used by a write of account "alice"/);
    expect(world.proxied.echo.requests.filter((r) => r.path === '/alice-on-rule')).toEqual([]);

    const scopedSocket = net.connect({ host: '127.0.0.1', port: world.scoped.echo.httpPort });
    await once(scopedSocket, 'connect');
    const answered = new Promise<string>((resolve) => {
      let buf = '';
      scopedSocket.setEncoding('utf8');
      scopedSocket.on('data', (d: string) => (buf += d));
      scopedSocket.on('end', () => resolve(buf));
    });
    manager.withProxy('alice', () => scopedSocket.write('GET /alice-on-scoped HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    expect(await answered).toContain('"ip":"127.0.0.1"');
  });

  it('a rule cannot be used as an account', () => {
    expect(() => manager.withProxy('\0rule #1', () => 1)).toThrow(/unknown account/);
    expect(manager.accountNames().sort()).toEqual(['alice', 'default']);
  });
});

describe('rules: configuration', () => {
  const base = { accounts: { alice: 'http://127.0.0.1:1', bob: 'http://127.0.0.1:2' } };

  it("a rule's proxy held by an account is a ConfigError (exclusive), naming the rule", () => {
    expect(() => new SessionProxyManager({ ...base, rules: [{ match: 'api.example.com', proxy: 'http://127.0.0.1:2' }] })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ ...base, rules: [{ match: 'api.example.com', proxy: 'http://127.0.0.1:2' }] })).toThrow(/rule #1 and account "bob" would have to share a proxy/);
    // A pool with a free proxy is fine; without exclusive, sharing is allowed.
    expect(() => new SessionProxyManager({ ...base, rules: [{ match: 'a.example.com', proxy: ['http://127.0.0.1:2', 'http://127.0.0.1:3'] }] })).not.toThrow();
    expect(() => new SessionProxyManager({ ...base, exclusive: false, rules: [{ match: 'a.example.com', proxy: 'http://127.0.0.1:2' }] })).not.toThrow();
  });

  it("scopes: true with a proxy, a bad match, an unknown key: ConfigError with the key path", () => {
    expect(() => new SessionProxyManager({ rules: [{ match: 'a.example.com', proxy: 'http://127.0.0.1:3', scopes: true }] })).toThrow(/rules\[0\]: a rule with scopes: true may only be 'direct' or 'block'/);
    expect(() => new SessionProxyManager({ rules: [{ match: '10.0.0.0/33', proxy: 'direct' }] })).toThrow(/rules\[0\]\.match: invalid match entry "10\.0\.0\.0\/33"/);
    expect(() => new SessionProxyManager({ rules: [{ match: 'ftp://a.example.com', proxy: 'direct' }] })).toThrow(/rules\[0\]\.match: .*scheme must be one of http, https, ws, wss/);
    expect(() => new SessionProxyManager({ rules: [{ match: 'https://a.example.com/v1', proxy: 'direct' }] })).toThrow(/no path/);
    expect(() => new SessionProxyManager({ rules: [{ match: [], proxy: 'direct' }] })).toThrow(/rules\[0\]\.match/);
    expect(() => new SessionProxyManager({ rules: [{ match: 'a', proxy: 'drect' as 'direct' }] })).toThrow(/rules\[0\]\.proxy/);
    expect(() => new SessionProxyManager({ rules: [{ match: 'a', proxy: 'direct', scope: true } as never] })).toThrow(/rules\[0\]\.scope: unknown key \(did you mean "scopes"\?\)/);
    expect(() => new SessionProxyManager({ rules: { match: 'a' } as never })).toThrow(/rules: expected an array/);
  });

  it('a config file with rules loads (pools parsed with the file’s defaultProtocol), and its mistakes are ConfigErrors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sp-rules-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ defaultProtocol: 'socks5h', rules: [{ match: ['*.openai.com', 'https://api.anthropic.com'], proxy: ['10.0.0.9:1080', { url: 'http://10.0.0.8:3128', password: '${PW}' }] }, { match: 'localhost:11434', proxy: 'direct', scopes: true }] }));
      const options = loadConfig({ configFile: file }, { PW: 'secret' });
      expect(options.rules).toHaveLength(2);
      const [first, second] = options.rules!;
      expect((first!.proxy as Array<{ url: string }>).map((p) => p.url)).toEqual(['socks5h://10.0.0.9:1080', 'http://:***@10.0.0.8:3128']);
      expect(second).toEqual({ match: 'localhost:11434', proxy: 'direct', scopes: true });
      writeFileSync(file, JSON.stringify({ rules: [{ match: 'a.example.com', proxy: 'block', scopes: 'yes' }] }));
      expect(() => loadConfig({ configFile: file }, {})).toThrow(/rules\[0\]\.scopes: expected true or false, got a string \(in config file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rules travel to Node children', () => {
  it('SESSION_PROXY_CONFIG_JSON carries the rules (a rule\'s proxies with their passwords) and loads back the same', () => {
    const rules = [
      { match: ['*.openai.com', 'https://api.anthropic.com'], proxy: 'http://u:s3cret@10.0.0.9:3128' },
      { match: 'localhost:11434', proxy: 'direct' as const, scopes: true },
    ];
    const json = serializeConfig({ proxy: 'http://10.0.0.1:1', rules, pac: 'http://wpad.corp/proxy.pac', pacFallback: 'direct' });
    const back = loadConfig({}, { SESSION_PROXY_CONFIG_JSON: json });
    expect(back.pac).toBe('http://wpad.corp/proxy.pac');
    expect(back.pacFallback).toBe('direct');
    expect(back.rules![1]).toEqual({ match: 'localhost:11434', proxy: 'direct', scopes: true });
    const [proxy] = back.rules![0]!.proxy as Array<{ getPassword(): string | undefined; url: string }>;
    expect([proxy!.url, proxy!.getPassword()]).toEqual(['http://u:***@10.0.0.9:3128', 's3cret']);
  });
});

describe('rules and requireScope', () => {
  it('outside scopes with requireScope: a direct rule and noProxy pass, what no rule routes is refused', async () => {
    await manager.uninstall();
    const strictManager = new SessionProxyManager({
      accounts: { alice: proxies.alice.url },
      requireScope: true,
      noProxy: [`127.0.0.1:${world.none.echo.httpsPort}`],
      rules: [{ match: `127.0.0.1:${world.direct.echo.httpPort}`, proxy: 'direct' }, { match: `127.0.0.1:${world.proxied.echo.httpPort}`, proxy: proxies.rule.url }],
    }).install();
    try {
      expect(await clients['fetch (undici layer)']!(world.direct)).toBe(DIRECT);
      expect(await clients['fetch (undici layer)']!(world.proxied)).toBe(EGRESS.rule);
      expect(await clients['https.get']!(world.none)).toBe(DIRECT);
      const refused = await clients['fetch (undici layer)']!(world.none).catch((e: unknown) => findSessionProxyError(e));
      expect(refused).toBeInstanceOf(LeakBlockedError);
      expect((refused as Error).message).toMatch(/requireScope/);
      expect(await strictManager.withProxy('alice', () => clients['fetch (undici layer)']!(world.direct))).toBe(EGRESS.alice);
    } finally {
      await strictManager.uninstall();
      manager.install();
    }
  });
});
