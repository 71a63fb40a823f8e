/**
 * Option `pac`: the same clients (fetch, http, https, ws, an own undici
 * Pool, http2, grpc-js) follow a PAC served by a loopback HTTP server,
 * branch by branch (PROXY / SOCKS5 / DIRECT by host name, by dnsDomainIs,
 * by isInNet on an address and on dnsResolve()), proved by the egress the
 * target saw; the first proxy of an answer dead → the next; the PAC server
 * down → fail closed (or direct with pacFallback); a PAC that tries to
 * escape its sandbox gets nothing; a runaway PAC is interrupted; the
 * dynamic import of the ESM-only resolver works from the CJS build.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { SessionProxyManager, ProxyUnavailableError, findSessionProxyError, ConfigError } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { PacEngine } from '../../src/routing/pac/engine.js';
import { PacDns } from '../../src/routing/pac/helpers.js';
import { parsePacAnswer } from '../../src/routing/pac/answer.js';
import { grpcEcho, startGrpcEcho } from '../socket/grpc-echo.js';
import { readJson } from '../support/scenario.js';
import { cleanEnv, needsDist, root, run, lastJson } from '../ecosystem/support/run.js';
import { wsExchange } from '../support/http-clients.js';

const EGRESS = { exchange: '127.0.0.2', socks: '127.0.0.3', alice: '127.0.0.4', net: '127.0.0.5' } as const;
const DIRECT = '127.0.0.1';
const HOSTS = { 'api.exchange.test': '127.0.0.1', 'echo.test': '127.0.0.1', 'dead-first.test': '127.0.0.1' };

let echo: EchoServer;
let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
const proxies = {} as Record<keyof typeof EGRESS, MockProxy>;
let deadPort: number;
let pacServer: http.Server;
let pacUrl: string;
let pacText: string;
let pacRequests = 0;
let manager: SessionProxyManager;
const dnsEvents: Array<{ account?: string; hostname: string; reason: string }> = [];
const onDns = (m: unknown): void => void dnsEvents.push(m as (typeof dnsEvents)[number]);

const script = (): string => `
function FindProxyForURL(url, host) {
  if (dnsDomainIs(host, ".exchange.test")) return "PROXY 127.0.0.1:${proxies.exchange.port}";
  if (host == "echo.test") return "SOCKS5 127.0.0.1:${proxies.socks.port}";
  if (host == "dead-first.test") return "PROXY 127.0.0.1:${deadPort}; PROXY 127.0.0.1:${proxies.exchange.port}";
  if (host == "loop.test") { while (true) {} }
  if (host == "throws.test") throw new Error("no route for " + host);
  if (host == "localhost" && isInNet(dnsResolve(host), "127.0.0.0", "255.0.0.0")) return "DIRECT";
  if (isInNet(host, "127.0.0.0", "255.255.255.0")) return "PROXY 127.0.0.1:${proxies.net.port}";
  return "DIRECT";
}`;

async function startPacServer(): Promise<void> {
  pacServer = http.createServer((req, res) => {
    pacRequests++;
    res.writeHead(200, { 'content-type': 'application/x-ns-proxy-autoconfig' });
    res.end(pacText);
  });
  pacServer.listen(0, '127.0.0.1');
  await once(pacServer, 'listening');
  pacUrl = `http://127.0.0.1:${(pacServer.address() as AddressInfo).port}/proxy.pac`;
}

beforeAll(async () => {
  echo = await startEchoServer({ http2: true });
  grpcServer = await startGrpcEcho();
  for (const who of Object.keys(EGRESS) as Array<keyof typeof EGRESS>) proxies[who] = await startMockProxy({ egressIp: EGRESS[who], hosts: HOSTS });
  const dead = await startMockProxy();
  deadPort = dead.port;
  await dead.close();
  pacText = script();
  await startPacServer();
  diagnostics.subscribe('session-proxy:dns', onDns);
  manager = new SessionProxyManager({ pac: { url: pacUrl, refreshInterval: 150, evalTimeout: 200 }, accounts: { alice: proxies.alice.url }, noProxy: [] }).install();
});
afterAll(async () => {
  diagnostics.unsubscribe('session-proxy:dns', onDns);
  await manager?.uninstall();
  pacServer?.close();
  await Promise.all([echo?.close(), grpcServer?.close(), ...Object.values(proxies).map((p) => p.close())]);
});

const url = (host: string, secure = false, ws = false): string => `${ws ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http'}://${host}:${secure ? echo.httpsPort : echo.httpPort}`;

const wsIp = async (url: string): Promise<string> => (await wsExchange(url)).ip;

function h2Ip(u: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(u, { ca: testCa });
    session.on('error', reject);
    const stream = session.request({ ':path': '/h2' });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => {
      session.close();
      resolve((JSON.parse(body) as { ip: string }).ip);
    });
    stream.on('error', reject);
  });
}

const fetchIp = async (u: string): Promise<string> => ((await (await fetch(`${u}/f`)).json()) as { ip: string }).ip;
const httpGetIp = (u: string): Promise<string> =>
  new Promise((resolve, reject) => (u.startsWith('https') ? https : http).get(`${u}/h`, { ca: testCa }, (res) => readJson<{ ip: string }>(res).then((r) => resolve(r.ip), reject)).on('error', reject));
const poolIp = async (u: string): Promise<string> => {
  const pool = new Pool(u, { connect: { ca: testCa } });
  try {
    return ((await (await pool.request({ path: '/pool', method: 'GET' })).body.json()) as { ip: string }).ip;
  } finally {
    await pool.destroy();
  }
};

describe('clients follow the PAC (served by a loopback HTTP server)', () => {
  it('PROXY / SOCKS5 / DIRECT branches by host, dnsDomainIs, isInNet, on every layer', async () => {
    const cases: Array<[string, () => Promise<string>, string]> = [
      ['fetch, dnsDomainIs(.exchange.test) → PROXY', () => fetchIp(url('api.exchange.test')), EGRESS.exchange],
      ['fetch, host == echo.test → SOCKS5', () => fetchIp(url('echo.test')), EGRESS.socks],
      ['fetch, isInNet(dnsResolve(localhost)) → DIRECT', () => fetchIp(url('localhost')), DIRECT],
      ['fetch, isInNet(127.0.0.1, 127.0.0.0/24) → PROXY', () => fetchIp(url('127.0.0.1')), EGRESS.net],
      ['http.get → SOCKS5', () => httpGetIp(url('echo.test')), EGRESS.socks],
      ['https.get → PROXY', () => httpGetIp(url('api.exchange.test', true)), EGRESS.exchange],
      ['https.get → DIRECT', () => httpGetIp(url('localhost', true)), DIRECT],
      ['ws wss:// → PROXY', () => wsIp(`${url('api.exchange.test', true, true)}/ws`), EGRESS.exchange],
      ['ws ws:// → isInNet PROXY', () => wsIp(`${url('127.0.0.1', false, true)}/ws`), EGRESS.net],
      ['own undici Pool (socket layer) → PROXY', () => poolIp(url('api.exchange.test', true)), EGRESS.exchange],
      ['own undici Pool → DIRECT', () => poolIp(url('localhost', true)), DIRECT],
      ['http2.connect → PROXY', () => h2Ip(url('api.exchange.test', true)), EGRESS.exchange],
      ['http2.connect → isInNet PROXY', () => h2Ip(url('127.0.0.1', true)), EGRESS.net],
      ['grpc-js (127.0.0.1) → isInNet PROXY', async () => (await grpcEcho(grpcServer.target)).peer.replace(/^ipv4:/, '').replace(/:\d+$/, ''), EGRESS.net],
    ];
    const results = await Promise.all(cases.map(async ([name, go, want]) => ({ name, want, got: await go().catch((e: unknown) => `error: ${String((e as Error)?.message ?? e)}`) })));
    expect(results.filter((r) => r.got !== r.want).map((r) => `${r.name}: got ${r.got}, expected ${r.want}`)).toEqual([]);
    // The PAC's DNS helper looked localhost up itself (plumbing), and said so.
    expect(dnsEvents.some((e) => e.hostname === 'localhost' && e.account === undefined && /PAC/.test(e.reason))).toBe(true);
  }, 40_000);

  it("PAC governs the default route only: inside alice's scope her proxy carries every target", async () => {
    expect(await manager.withProxy('alice', () => fetchIp(url('localhost')))).toBe(EGRESS.alice);
    expect(await manager.withProxy('alice', () => poolIp(url('api.exchange.test', true)))).toBe(EGRESS.alice);
  });

  it('the first proxy of an answer is dead → the next one (failover through health)', async () => {
    const before = proxies.exchange.log.length;
    expect(await fetchIp(url('dead-first.test'))).toBe(EGRESS.exchange);
    expect(await httpGetIp(url('dead-first.test'))).toBe(EGRESS.exchange);
    expect(proxies.exchange.log.slice(before).filter((e) => e.targetHost === 'dead-first.test').length).toBe(2);
  });

  it('a script that throws, or runs forever, fails closed for that host (bounded), and the next host still works', async () => {
    const started = Date.now();
    const looped = await fetchIp(url('loop.test')).catch((e: unknown) => findSessionProxyError(e));
    expect(looped).toBeInstanceOf(ProxyUnavailableError);
    expect((looped as Error).message).toMatch(new RegExp(`the PAC ${pacUrl.replace(/[.]/g, '\\.')} failed for http://loop\\.test.*interrupted`));
    expect(Date.now() - started).toBeLessThan(5_000);
    const thrown = await fetchIp(url('throws.test')).catch((e: unknown) => findSessionProxyError(e));
    expect(thrown).toBeInstanceOf(ProxyUnavailableError);
    expect((thrown as Error).message).toMatch(/Error: no route for throws\.test/);
    expect(await fetchIp(url('echo.test'))).toBe(EGRESS.socks);
  });

  it('the PAC is refreshed: a changed script changes the answers', async () => {
    const served = pacRequests;
    pacText = script().replace(`"SOCKS5 127.0.0.1:${proxies.socks.port}"`, `"PROXY 127.0.0.1:${proxies.net.port}"`);
    let got = '';
    // Bounded: the refresh runs every 150 ms; each turn waits for the PAC server to be asked again.
    for (let i = 0; i < 40 && got !== EGRESS.net; i++) {
      if (pacRequests <= served + i) await once(pacServer, 'request');
      got = await httpGetIp(url('echo.test'));
    }
    expect(got).toBe(EGRESS.net);
    pacText = script();
  });
});

describe('a PAC that cannot be had fails closed', () => {
  it("PAC server down → ProxyUnavailableError naming the PAC, nothing sent; pacFallback: 'direct' goes direct", async () => {
    await manager.uninstall();
    const down = `http://127.0.0.1:${deadPort}/wpad.dat`;
    const peersBefore = echo.peers.length;
    const closed = new SessionProxyManager({ pac: down, noProxy: [] }).install();
    try {
      for (const go of [() => fetchIp(url('localhost')), () => httpGetIp(url('localhost')), () => poolIp(url('localhost', true))]) {
        const err = await go().then((ip) => `answered from ${ip}`, (e: unknown) => findSessionProxyError(e) ?? e);
        expect(err).toBeInstanceOf(ProxyUnavailableError);
        expect((err as Error).message).toContain(`the PAC ${down} could not be loaded`);
      }
      expect(echo.peers.length).toBe(peersBefore);
    } finally {
      await closed.uninstall();
    }
    const open = new SessionProxyManager({ pac: down, pacFallback: 'direct', noProxy: [] }).install();
    try {
      expect(await fetchIp(url('localhost'))).toBe(DIRECT);
    } finally {
      await open.uninstall();
    }
    manager.install();
  });

  it('a PAC whose top level never ends does not load (bounded); a PAC file:// and an inline script work', async () => {
    await manager.uninstall();
    const dir = mkdtempSync(join(tmpdir(), 'sp-pac-'));
    try {
      const started = Date.now();
      const runaway = new SessionProxyManager({ pac: { script: 'while (true) {} function FindProxyForURL() { return "DIRECT"; }', evalTimeout: 100 }, noProxy: [] }).install();
      try {
        const err = await fetchIp(url('localhost')).catch((e: unknown) => findSessionProxyError(e));
        expect(err).toBeInstanceOf(ProxyUnavailableError);
        expect((err as Error).message).toMatch(/the PAC script \(given inline\) cannot be used: the PAC script did not compile: ran longer than evalTimeout/);
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await runaway.uninstall();
      }
      const file = join(dir, 'proxy.pac');
      writeFileSync(file, `function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:${proxies.net.port}"; }`);
      const fromFile = new SessionProxyManager({ pac: `file://${file}`, noProxy: [] }).install();
      try {
        expect(await fetchIp(url('localhost'))).toBe(EGRESS.net);
      } finally {
        await fromFile.uninstall();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      manager.install();
    }
  });
});

describe('the sandbox', () => {
  const engine = (text: string, evalTimeoutMs = 500): Promise<PacEngine> => PacEngine.create(text, new PacDns('test'), { evalTimeoutMs, memoryLimit: 16 * 1024 * 1024 });

  it('a PAC that tries to escape (process, require, globalThis.constructor, Function) gets nothing', async () => {
    const e = await engine(`
      function FindProxyForURL(url, host) {
        var seen = [];
        seen.push(typeof process, typeof require, typeof module, typeof Buffer, typeof fetch, typeof setTimeout);
        var F = this.constructor.constructor;
        var p = F('return typeof process');
        seen.push(p());
        var G = globalThis.constructor.constructor;
        var g = G('return this');
        seen.push(typeof g().process, typeof g().require);
        seen.push(String(globalThis.constructor === Object));
        try { var r = F('return require("fs")'); seen.push(typeof r()); } catch (err) { seen.push('threw ' + err.name); }
        return seen.join(',');
      }`);
    try {
      expect(await e.findProxyForURL('http://x.test/', 'x.test')).toBe('undefined,undefined,undefined,undefined,undefined,undefined,undefined,undefined,undefined,true,threw ReferenceError');
    } finally {
      e.dispose();
    }
  });

  it("myIpAddress comes from the interfaces, never a connection; a memory bomb is stopped; the VM recovers", async () => {
    const e = await engine(`
      function FindProxyForURL(url, host) {
        if (host == "bomb") { var a = []; while (true) a.push(new Array(10000).join("x") + a.length); }
        return myIpAddress();
      }`, 5_000);
    try {
      expect(await e.findProxyForURL('http://x/', 'x')).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      await expect(e.findProxyForURL('http://bomb/', 'bomb')).rejects.toThrow(/memory limit|interrupted|evalTimeout/);
      expect(await e.findProxyForURL('http://x/', 'x')).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    } finally {
      e.dispose();
    }
  });

  it('answers are read as browsers do: PROXY/HTTP, HTTPS, SOCKS(4), SOCKS5 (remote DNS), DIRECT; bad entries skipped', () => {
    const a = parsePacAnswer(' PROXY p1:3128; HTTPS p2; SOCKS s4:1080 ;SOCKS5 [::1]:1081; DIRECT; BOGUS x:1; PROXY u:pw@h:1 ');
    expect(a.entries.map((e) => (e.kind === 'direct' ? 'DIRECT' : e.proxy.url))).toEqual(['http://p1:3128', 'https://p2:443', 'socks4://s4:1080', 'socks5h://[::1]:1081', 'DIRECT']);
    expect(a.skipped).toEqual(['BOGUS x:1', 'PROXY u:pw@h:1']);
  });

  it('configuration: pac is checked like every option', () => {
    expect(() => new SessionProxyManager({ pac: 'ftp://x/proxy.pac' })).toThrow(/pac: expected a PAC URL \(http:\/\/, https:\/\/ or file:\/\/\) or the text of a PAC script/);
    expect(() => new SessionProxyManager({ pac: { url: pacUrl, script: 'function FindProxyForURL(){}' } })).toThrow(/pac: expected exactly one of "url" and "script"/);
    expect(() => new SessionProxyManager({ pac: { url: pacUrl, evalTimout: 5 } as never })).toThrow(/pac\.evalTimout: unknown key \(did you mean "evalTimeout"\?\)/);
    expect(() => new SessionProxyManager({ pac: pacUrl, pacFallback: 'proxy' as never })).toThrow(ConfigError);
  });
});

describe.skipIf(needsDist)('from the CJS build', () => {
  it('require("session-proxy") loads the ESM-only pac-resolver with a dynamic import() and routes by it', async () => {
    // Spawned with no manager installed here (an installed one would hand the child its own preload).
    await manager.uninstall();
    const dir = mkdtempSync(join(tmpdir(), 'sp-pac-cjs-'));
    try {
      const main = join(dir, 'main.cjs');
      writeFileSync(
        main,
        `const { SessionProxyManager } = require(${JSON.stringify(join(root, 'dist/index.cjs'))});
const http = require('node:http');
const m = new SessionProxyManager({ noProxy: [], pac: 'function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:${proxies.net.port}"; }' }).install();
http.get(${JSON.stringify(`${url('localhost')}/cjs`)}, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', async () => { console.log(JSON.stringify({ ip: JSON.parse(body).ip, type: typeof require })); await m.uninstall(); });
}).on('error', (e) => { console.log(JSON.stringify({ error: String(e && e.message) })); process.exitCode = 1; });
`,
      );
      const r = await run([main], { env: cleanEnv(), timeoutMs: 20_000 });
      expect(lastJson(r), r.stderr).toEqual({ ip: EGRESS.net, type: 'function' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      manager.install();
    }
  }, 30_000);
});
