/**
 * `systemCa: true`: the OS's CA store trusted in addition to Node's roots by
 * the library's own TLS connections — to targets (fetch/undici, http/https,
 * ws, global WebSocket) and to https:// proxies. The store is made
 * overridable the way OpenSSL is, with `SSL_CERT_FILE` / `SSL_CERT_DIR`:
 * Node ≥ 22.15 reads its system store through them, and the library's Node
 * 20 path reads the file named by `SSL_CERT_FILE`. So this file points them
 * at a temporary bundle holding the test CAs *before anything reads the
 * store* (it is read once per process), and a CA found only there is what
 * makes the connections pass.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls, { type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { request as undiciRequest } from 'undici';
import { ProxyConnectError, SessionProxyManager, findSessionProxyError } from '../../src/index.js';
import { startEchoServer, startMockProxy, testCa, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { readSystemBundle, readSystemStore, splitPem, NODE_READS_SYSTEM_STORE } from '../../src/trust/system-ca.js';
import { Trust } from '../../src/trust/trust.js';
import { hasBinary, skipWithout, startStunnel, startTinyproxy, type RealProxy } from '../support/real-proxies.js';
import { makeCa, type Pem } from '../support/tls-material.js';
import { readJson } from '../support/scenario.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-system-ca-'));
const bundle = path.join(dir, 'ca-certificates.crt');
const emptyDir = path.join(dir, 'certs');
fs.mkdirSync(emptyDir);
// The CA of the https proxy below (stunnel), made now: the bundle must hold it before the store is read.
const proxyCa = hasBinary('openssl') ? makeCa('corporate proxy CA') : undefined;
const bundled = [testCa, ...(proxyCa ? [proxyCa.cert] : [])];
fs.writeFileSync(bundle, bundled.join(''));
// Before any manager (or anything else) reads the system store.
process.env.SSL_CERT_FILE = bundle;
process.env.SSL_CERT_DIR = emptyDir;

const fingerprints = (pems: readonly string[]): string[] => pems.map((p) => new X509Certificate(p).fingerprint256);
const EGRESS = '127.0.0.51';

let echo: EchoServer;
let proxy: MockProxy;
beforeAll(async () => {
  [echo, proxy] = await Promise.all([startEchoServer(), startMockProxy({ egressIp: EGRESS })]);
});
afterAll(async () => {
  await Promise.all([echo?.close(), proxy?.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

type Ip = { ip: string };
const clients = (): Record<string, () => Promise<Ip>> => ({
  fetch: async () => (await fetch(`${echo.httpsUrl}/f`)).json() as Promise<Ip>,
  'npm undici request': async () => (await undiciRequest(`${echo.httpsUrl}/u`)).body.json() as Promise<Ip>,
  'https.get': () => new Promise((resolve, reject) => https.get(`${echo.httpsUrl}/h`, (res) => readJson<Ip>(res).then(resolve, reject)).on('error', reject)),
  'ws wss://': () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${echo.wssUrl}/w`);
      ws.once('open', () => ws.send('x'));
      ws.once('message', (d) => {
        resolve(JSON.parse(String(d)));
        ws.close();
      });
      ws.once('error', reject);
    }),
  ...(typeof globalThis.WebSocket === 'function'
    ? {
        'global WebSocket': () =>
          new Promise<Ip>((resolve, reject) => {
            const ws = new globalThis.WebSocket(`${echo.wssUrl}/gw`);
            ws.onopen = () => ws.send('x');
            ws.onmessage = (ev) => {
              resolve(JSON.parse(String(ev.data)));
              ws.close();
            };
            ws.onerror = () => reject(new Error('global WebSocket failed'));
          }),
      }
    : {}),
});

describe('systemCa: the OS store', () => {
  it(`is read from the overridden bundle (${NODE_READS_SYSTEM_STORE ? "Node's tls.getCACertificates('system')" : 'Node 20: the SSL_CERT_FILE bundle'})`, () => {
    expect(fingerprints(readSystemStore().certificates).sort()).toEqual(fingerprints(bundled).sort());
    // The Node 20 reader on every Node: SSL_CERT_FILE, else the distribution's bundle; a missing file reads as none.
    expect(fingerprints(readSystemBundle().certificates)).toEqual(fingerprints(bundled));
    expect(readSystemBundle({ SSL_CERT_FILE: path.join(dir, 'missing.pem') })).toMatchObject({ certificates: [], source: expect.stringContaining('ENOENT') });
    expect(splitPem(`junk\n${testCa}junk${testCa}`)).toHaveLength(2);
  });

  it('one SecureContext per distinct set of TLS options, reused; a caller’s own secureContext is left alone; off = unchanged', () => {
    const trust = new Trust(true);
    const target = (o: ConnectionOptions): ConnectionOptions => trust.forTarget(o);
    const a = target({ rejectUnauthorized: true });
    const b = target({ rejectUnauthorized: true });
    const c = target({ ca: testCa });
    expect(a.secureContext).toBeDefined();
    expect(a.secureContext).toBe(b.secureContext);
    expect(c.secureContext).not.toBe(a.secureContext);
    expect(c.ca).toBe(testCa);
    const own = { secureContext: a.secureContext };
    expect(trust.forTarget(own)).toBe(own);
    const off = { ca: testCa };
    expect(new Trust(false).forTarget(off)).toBe(off);
  });
});

describe('systemCa: targets', () => {
  it('without it, the CA only the OS store has is not trusted: every layer fails with a TLS error', async () => {
    const manager = new SessionProxyManager({ proxy: proxy.url, noProxy: [] }).install();
    try {
      for (const [name, client] of Object.entries(clients())) {
        const err = await client().then(() => undefined, (e: unknown) => e);
        expect(err, name).toBeDefined();
        const text = `${String((err as Error).message)} ${String(((err as Error).cause as Error | undefined)?.message)} ${String((err as NodeJS.ErrnoException).code)} ${String(((err as Error).cause as NodeJS.ErrnoException | undefined)?.code)}`;
        if (name !== 'global WebSocket') expect(text, name).toMatch(/self[- ]signed|SELF_SIGNED|unable to (get|verify)|UNABLE_TO/i);
      }
    } finally {
      await manager.uninstall();
    }
  });

  it('with it, fetch, undici, https.get, ws and the global WebSocket trust it — through the proxy, and a caller’s own ca still counts', async () => {
    const manager = new SessionProxyManager({ proxy: proxy.url, noProxy: [], systemCa: true }).install();
    try {
      for (const [name, client] of Object.entries(clients())) expect((await client()).ip, name).toBe(EGRESS);
      // A request's own ca is kept (and the OS's added to it): a caller's CA is never dropped.
      const own = await new Promise<Ip>((resolve, reject) => https.get(`${echo.httpsUrl}/own`, { ca: testCa }, (res) => readJson<Ip>(res).then(resolve, reject)).on('error', reject));
      expect(own.ip).toBe(EGRESS);
      // The probe of verifyEgress too.
      const r = await manager.verifyEgress(undefined, { endpoints: [`${echo.httpsUrl}/ip`] });
      expect(r.ip).toBe(EGRESS);
    } finally {
      await manager.uninstall();
    }
  });
});

describe('requestTls and the caller’s own TLS settings (http layer)', () => {
  const getVia = (o: https.RequestOptions): Promise<Ip> =>
    new Promise((resolve, reject) => https.get(`${echo.httpsUrl}/own`, o, (res) => readJson<Ip>(res).then(resolve, reject)).on('error', reject));

  it('a caller agent’s ca wins over requestTls’s secureContext (trust comes from one source); without one, requestTls’s context applies', async () => {
    const elsewhere = tls.createSecureContext({ ca: tls.rootCertificates as string[] });
    const manager = new SessionProxyManager({ proxy: proxy.url, noProxy: [], requestTls: { secureContext: elsewhere } }).install();
    try {
      expect((await getVia({ agent: new https.Agent({ ca: testCa }) })).ip).toBe(EGRESS);
      expect((await getVia({ ca: testCa })).ip).toBe(EGRESS);
      await expect(getVia({})).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    } finally {
      await manager.uninstall();
    }
  });
});

describe.skipIf(skipWithout('stunnel4', 'tinyproxy', 'openssl'))('systemCa: an https:// proxy whose CA only the OS store has', () => {
  let tinyproxy: RealProxy;
  let stunnel: RealProxy;
  let client: Pem;
  beforeAll(async () => {
    const clientCa = makeCa('corporate client CA');
    client = clientCa.issue({ cn: 'alice', use: 'client' });
    const server = proxyCa!.issue({ cn: 'localhost', use: 'server' });
    tinyproxy = await startTinyproxy({ egressIp: '127.0.0.52' });
    stunnel = await startStunnel({ egressIp: '127.0.0.53', upstream: { host: tinyproxy.host, port: tinyproxy.port }, cert: server.cert, key: server.key, clientCa: clientCa.cert });
  }, 30_000);
  afterAll(async () => {
    await Promise.all([stunnel?.close(), tinyproxy?.close()]);
  });

  it('is refused without systemCa (ProxyConnectError, the proxy’s certificate unverified), trusted with it (no tls.ca given)', async () => {
    const entry = { url: stunnel.url, tls: { servername: 'localhost', cert: client.cert, key: client.key } };
    const plain = new SessionProxyManager({ proxy: entry, noProxy: [], requestTls: { ca: testCa } }).install();
    try {
      const err = findSessionProxyError(await fetch(`${echo.httpsUrl}/p`).then(() => undefined, (e: unknown) => e));
      expect(err).toBeInstanceOf(ProxyConnectError);
      expect(String((err as Error).cause)).toMatch(/self[- ]signed|unable to (get|verify)/i);
    } finally {
      await plain.uninstall();
    }
    const manager = new SessionProxyManager({ proxy: entry, noProxy: [], requestTls: { ca: testCa }, systemCa: true });
    manager.install();
    try {
      expect(((await (await fetch(`${echo.httpsUrl}/p`)).json()) as Ip).ip).toBe('127.0.0.52');
    } finally {
      await manager.uninstall();
    }
  });
});
