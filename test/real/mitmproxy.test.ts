/**
 * Behind a TLS-inspecting proxy (mitmproxy's mitmdump, as a corporate network
 * runs one): mitmdump terminates each client's TLS with a certificate it
 * mints under its own CA and opens its own TLS to the target, which it
 * verifies against the target's CA (ssl_verify_upstream_trusted_ca, not
 * ssl_insecure). Two ways to trust it, each in a child Node process (the
 * environment variable is read at start-up only):
 * - NODE_EXTRA_CA_CERTS=<mitmproxy's CA>: every layer — fetch, http/https,
 *   ws, global WebSocket, an app's undici Pool, http2, grpc-js — works, so
 *   the library's forced agents and tunnels keep Node's CAs (with systemCa
 *   too);
 * - requestTls: { ca }: the layers the library owns (fetch/undici, http/https,
 *   ws, global WebSocket) work.
 * Every success is proved twice: the echo server saw mitmdump's egress
 * address, and mitmdump's flow log lists the request's own path. A wrong CA
 * fails with a TLS error and nothing reaches the target; a target mitmdump
 * cannot verify is refused by mitmdump itself.
 *
 * mitmproxy is heavy: this file runs once, on Node 20.
 */
import { spawn } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoServer, testCa, type EchoServer } from '../../src/testing/index.js';
import { testCert, testKey } from '../../src/testing/certs.js';
import { skipWithout, startMitmdump, type Mitmproxy } from '../support/real-proxies.js';
import { makeCa } from '../support/tls-material.js';
import { startGrpcEcho } from '../socket/grpc-echo.js';
import { distBuilt, root } from '../ecosystem/support/run.js';

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const skip = (() => {
  if (NODE_MAJOR !== 20) {
    console.warn(`[session-proxy] skipping the mitmproxy tests on Node ${process.versions.node}: they run once, on Node 20 (mitmproxy is heavy)`);
    return true;
  }
  if (!distBuilt) {
    if (process.env.CI) throw new Error('the mitmproxy tests run the built package in child processes: npm run build first');
    console.warn('[session-proxy] skipping the mitmproxy tests: dist/ is not built (npm run build)');
    return true;
  }
  return skipWithout('mitmdump', 'openssl');
})();

const EGRESS = '127.0.0.61';
const CLIENT = path.join(root, 'test/fixtures/corporate-tls/clients.mjs');
const EVERY_LAYER = ['fetch', 'npm undici request', 'http.get', 'https.get', 'ws wss://', 'global WebSocket', 'undici Pool', 'http2.connect', 'grpc-js (TLS)'];
const OWNED_LAYERS = ['fetch', 'npm undici request', 'http.get', 'https.get', 'ws wss://', 'global WebSocket'];
const SOCKET_LAYERS = ['undici Pool', 'http2.connect', 'grpc-js (TLS)'];
type Result = { ip?: string; error?: string; code?: string };

describe.skipIf(skip)('TLS-inspecting proxy: mitmdump', () => {
  let echo: EchoServer;
  let grpcServer: Awaited<ReturnType<typeof startGrpcEcho>>;
  let rogue: https.Server;
  let rogueUrl: string;
  let rogueRequests = 0;
  let mitm: Mitmproxy;

  beforeAll(async () => {
    echo = await startEchoServer({ http2: true });
    grpcServer = await startGrpcEcho({ tls: { cert: testCert, key: testKey } });
    // A target whose certificate mitmdump has no CA for.
    const other = makeCa('not the target CA').issue({ cn: 'localhost', use: 'server' });
    rogue = https.createServer({ cert: other.cert, key: other.key }, (_req, res) => {
      rogueRequests++;
      res.end('{"ip":"reached"}');
    });
    await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
    rogueUrl = `https://127.0.0.1:${(rogue.address() as { port: number }).port}`;
    mitm = await startMitmdump({ egressIp: EGRESS, upstreamCa: testCa });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([echo?.close(), grpcServer?.close(), mitm?.close(), new Promise((r) => (rogue ? rogue.close(r) : r(undefined)))]);
  }, 30_000);

  /** Runs the clients in a child Node process; `extraCa`: start it with NODE_EXTRA_CA_CERTS=mitmproxy's CA. */
  function child(mode: string, clients: readonly string[], o: { extraCa?: boolean; manager?: Record<string, unknown> } = {}): Promise<Record<string, Result>> {
    const input = {
      dist: pathToFileURL(path.join(root, 'dist/index.mjs')).href,
      mode,
      proxy: mitm.url,
      echo: { httpUrl: echo.httpUrl, httpsUrl: echo.httpsUrl, wssUrl: echo.wssUrl },
      grpcTarget: grpcServer.target,
      rogueUrl,
      clients,
      manager: o.manager ?? {},
    };
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C' };
    if (o.extraCa) env.NODE_EXTRA_CA_CERTS = mitm.caFile;
    // Node 20's global WebSocket is behind a flag.
    const flags = NODE_MAJOR < 22 ? ['--experimental-websocket', '--no-warnings'] : [];
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [...flags, CLIENT, JSON.stringify(input)], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => p.kill('SIGKILL'), 40_000);
      p.on('error', reject);
      p.on('close', (code) => {
        clearTimeout(timer);
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve((JSON.parse(line) as { results: Record<string, Result> }).results);
        } catch {
          reject(new Error(`child (${mode}) exited ${code} without results\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`));
        }
      });
    });
  }

  const slug = (client: string): string => client.replace(/[^a-z0-9]+/gi, '-');
  /** Every client got a 200 from the echo server via mitmdump's egress, and mitmdump's flow log lists its path. */
  function expectThroughMitm(mode: string, results: Record<string, Result>, clients: readonly string[]): void {
    const log = mitm.log();
    for (const client of clients) {
      expect(results[client], `${mode}: ${client}`).toEqual({ ip: EGRESS });
      const line = client === 'grpc-js (TLS)' ? '/sessionproxy.test.Echo/Echo' : `/${mode}/${slug(client)}`;
      expect(log, `${mode}: ${client} is in mitmdump's flow log`).toContain(line);
    }
  }

  it('NODE_EXTRA_CA_CERTS: every layer — fetch, undici, http, https, ws, global WebSocket, an own undici Pool, http2, grpc-js — gets its 200 through mitmdump', async () => {
    const before = echo.peers.length;
    const results = await child('extra', EVERY_LAYER, { extraCa: true });
    expectThroughMitm('extra', results, EVERY_LAYER);
    // HTTP/2 and gRPC stayed HTTP/2 through the inspection.
    expect(mitm.log()).toMatch(/\/extra\/http2-connect HTTP\/2\.0/);
    expect(echo.peers.slice(before).filter((p) => p.ip !== EGRESS)).toEqual([]);
  }, 60_000);

  it('NODE_EXTRA_CA_CERTS with systemCa: Node’s extra CA is kept beside the OS store', async () => {
    const clients = ['fetch', 'https.get', 'ws wss://', 'global WebSocket'];
    expectThroughMitm('extra-system', await child('extra-system', clients, { extraCa: true, manager: { systemCa: true } }), clients);
  }, 60_000);

  it('requestTls: { ca }: the layers the library owns get their 200 through mitmdump', async () => {
    const results = await child('request-tls', OWNED_LAYERS, { manager: { requestTls: { ca: mitm.ca } } });
    expectThroughMitm('request-tls', results, OWNED_LAYERS);
  }, 60_000);

  it('without the CA, the clients the library only relays fail on TLS: NODE_EXTRA_CA_CERTS is what reaches them', async () => {
    const results = await child('no-ca', SOCKET_LAYERS, { manager: { requestTls: { ca: mitm.ca } } });
    for (const client of SOCKET_LAYERS) {
      expect(results[client]?.ip, client).toBeUndefined();
      expect(`${results[client]?.error} ${results[client]?.code}`, client).toMatch(/self[- ]signed|SELF_SIGNED|unable to (get|verify)|UNABLE_TO/i);
    }
  }, 60_000);

  it('a wrong CA fails with a TLS error on every owned layer, and nothing reaches the target (no silent bypass)', async () => {
    const before = echo.requests.length;
    const results = await child('wrong-ca', OWNED_LAYERS.filter((c) => c !== 'http.get'), { manager: { requestTls: { ca: testCa } } });
    for (const [client, r] of Object.entries(results)) {
      expect(r.ip, client).toBeUndefined();
      // The certificate mitmdump minted does not chain to testCa.
      if (client !== 'global WebSocket') expect(`${r.error} ${r.code}`, client).toMatch(/self[- ]signed|SELF_SIGNED|unable to (get|verify)|UNABLE_TO/i);
    }
    expect(echo.requests.slice(before).filter((r) => r.path.startsWith('/wrong-ca/'))).toEqual([]);
    expect(mitm.log()).not.toMatch(/GET https:\/\/[^ ]+\/wrong-ca\//);
  }, 60_000);

  it('mitmdump verifies the target itself: a target whose CA it lacks is refused by it (502), never reached', async () => {
    const results = await child('rogue', ['fetch (untrusted upstream)'], { manager: { requestTls: { ca: mitm.ca } } });
    expect(results['fetch (untrusted upstream)']?.ip).toBeUndefined();
    expect(rogueRequests).toBe(0);
    expect(mitm.log()).toMatch(/certificate verify failed|Certificate verify failed|self[- ]signed|unable to get local issuer/i);
  }, 60_000);
});
