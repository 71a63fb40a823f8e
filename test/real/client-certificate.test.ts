/**
 * Client certificates to an https:// proxy (mutual TLS), against a real TLS
 * terminator in front of a real proxy: stunnel with `verify = 2` (a client
 * certificate is required and must chain to its CA) relaying to tinyproxy.
 * The right certificate passes, proved by the egress address the echo
 * server sees; a missing or foreign one is a ProxyAuthError — under TLS 1.3
 * (the refusal arrives after the handshake, on the first read) and under
 * TLS 1.2 (during it). The key never shows in what the library prints.
 */
import diagnostics from 'node:diagnostics_channel';
import https from 'node:https';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ProxyAuthError, ProxyConnectError, SessionProxyManager, findSessionProxyError, parseProxy } from '../../src/index.js';
import { startEchoServer, testCa, type EchoServer } from '../../src/testing/index.js';
import { skipWithout, startStunnel, startTinyproxy, type RealProxy } from '../support/real-proxies.js';
import { makeCa, type Pem } from '../support/tls-material.js';
import { readJson } from '../support/scenario.js';

const EGRESS = { tinyproxy: '127.0.0.41', stunnel: '127.0.0.42' };

describe.skipIf(skipWithout('stunnel4', 'tinyproxy', 'openssl'))('client certificates: stunnel (verify = 2) in front of tinyproxy', () => {
  let echo: EchoServer;
  let tinyproxy: RealProxy;
  let tls13: RealProxy;
  let tls12: RealProxy;
  let manager: SessionProxyManager;
  let serverCa: string;
  let client: Pem;
  let encrypted: Pem;
  let foreign: Pem;
  const published: unknown[] = [];
  const collect = (m: unknown): void => void published.push(m);
  const channelNames = ['route', 'proxy-down', 'proxy-up'].map((n) => `session-proxy:${n}`);

  beforeAll(async () => {
    const proxyCa = makeCa('stunnel test CA');
    const clientCa = makeCa('corporate client CA');
    const server = proxyCa.issue({ cn: 'localhost', use: 'server' });
    serverCa = proxyCa.cert;
    client = clientCa.issue({ cn: 'alice', use: 'client' });
    encrypted = clientCa.issue({ cn: 'carol', use: 'client', passphrase: 'pass-Phrase-3' });
    foreign = makeCa('somebody else').issue({ cn: 'mallory', use: 'client' });
    echo = await startEchoServer();
    tinyproxy = await startTinyproxy({ egressIp: EGRESS.tinyproxy });
    const stunnel = { egressIp: EGRESS.stunnel, upstream: { host: tinyproxy.host, port: tinyproxy.port }, cert: server.cert, key: server.key, clientCa: clientCa.cert };
    [tls13, tls12] = await Promise.all([startStunnel(stunnel), startStunnel({ ...stunnel, tlsMax: 'TLSv1.2' })]);
    for (const c of channelNames) diagnostics.subscribe(c, collect);
    const via = (p: RealProxy, tls: object) => ({ url: p.url, tls: { ca: serverCa, servername: 'localhost', ...tls } });
    manager = new SessionProxyManager({
      accounts: {
        alice: via(tls13, { cert: client.cert, key: client.key }),
        carol: via(tls13, { cert: encrypted.cert, key: encrypted.key, passphrase: 'pass-Phrase-3' }),
        alice12: via(tls12, { cert: client.cert, key: client.key }),
        nobody: via(tls13, {}),
        nobody12: via(tls12, {}),
        mallory: via(tls13, { cert: foreign.cert, key: foreign.key }),
        mallory12: via(tls12, { cert: foreign.cert, key: foreign.key }),
      },
      noProxy: [],
      requestTls: { ca: testCa },
      failover: false,
    }).install();
  }, 30_000);

  afterAll(async () => {
    for (const c of channelNames) diagnostics.unsubscribe(c, collect);
    await manager?.uninstall();
    await Promise.all([echo?.close(), tinyproxy?.close(), tls13?.close(), tls12?.close()]);
  }, 30_000);

  const viaFetch = (account: string, path: string) => manager.withProxy(account, async () => (await fetch(`${echo.httpsUrl}${path}`)).json() as Promise<{ ip: string }>);
  const viaHttps = (account: string, path: string) =>
    manager.withProxy(account, () => new Promise<{ ip: string }>((resolve, reject) => https.get(`${echo.httpsUrl}${path}`, (res) => readJson<{ ip: string }>(res).then(resolve, reject)).on('error', reject)));
  const viaWs = (account: string, path: string) =>
    manager.withProxy(account, () => new Promise<{ ip: string }>((resolve, reject) => {
      const ws = new WebSocket(`${echo.wssUrl}${path}`);
      ws.once('open', () => ws.send('hi'));
      ws.once('message', (d) => {
        resolve(JSON.parse(String(d)));
        ws.close();
      });
      ws.once('error', reject);
    }));
  const failure = async (p: Promise<unknown>): Promise<unknown> => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err, 'the request should have failed').toBeDefined();
    return findSessionProxyError(err) ?? err;
  };

  it('the right client certificate passes: fetch, https and ws leave from tinyproxy behind stunnel (TLS 1.3 and 1.2, an encrypted key too)', async () => {
    for (const [account, tag] of [['alice', '13'], ['alice12', '12'], ['carol', 'enc']] as const) {
      const results = await Promise.all([viaFetch(account, `/f${tag}`), viaHttps(account, `/h${tag}`), viaWs(account, `/w${tag}`)]);
      expect(results.map((r) => r.ip), account).toEqual([EGRESS.tinyproxy, EGRESS.tinyproxy, EGRESS.tinyproxy]);
    }
    // Each went through stunnel (it logs one accepted connection per tunnel at least).
    expect(tls13.log()).toMatch(/accepted connection/);
    expect(tls12.log()).toMatch(/accepted connection/);
  });

  it('no client certificate: ProxyAuthError, under TLS 1.3 (alert on the first read) and TLS 1.2 (during the handshake)', async () => {
    const peers = echo.peers.length;
    for (const account of ['nobody', 'nobody12']) {
      for (const request of [viaFetch, viaHttps, viaWs]) {
        const err = await failure(request(account, '/none'));
        expect(err, `${account} ${request.name}`).toBeInstanceOf(ProxyAuthError);
        expect((err as Error).message).toMatch(/requires a client certificate|client certificate/);
        expect((err as ProxyAuthError).account).toBe(account);
      }
    }
    const tls13Error = (await failure(viaFetch('nobody', '/n13'))) as Error;
    expect(tls13Error.message).toContain('certificate required');
    expect((tls13Error.cause as NodeJS.ErrnoException).code).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    const tls12Error = (await failure(viaFetch('nobody12', '/n12'))) as Error;
    // OpenSSL 3.0 (Node 20) and 3.5 (Node 22, 24) name the alert differently.
    expect((tls12Error.cause as NodeJS.ErrnoException).code).toMatch(/^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_HANDSHAKE_FAILURE$/);
    expect(echo.peers.length).toBe(peers);
  });

  it('a certificate from another CA: ProxyAuthError "refused the client certificate" (both TLS versions)', async () => {
    for (const account of ['mallory', 'mallory12']) {
      const err = await failure(viaFetch(account, '/m'));
      expect(err, account).toBeInstanceOf(ProxyAuthError);
      expect(err).toBeInstanceOf(ProxyConnectError);
      expect((err as Error).message).toMatch(/proxy refused the client certificate \(TLS alert: (unknown ca|bad certificate|certificate unknown)\)/);
    }
  });

  it('the certificate is part of the proxy identity; the key is a secret nothing prints', async () => {
    const alice = manager.current('alice')!;
    expect(alice).toBeDefined();
    const same = parseProxy({ url: tls13.url, tls: { ca: serverCa, servername: 'localhost', cert: client.cert, key: client.key } });
    const other = parseProxy({ url: tls13.url, tls: { ca: serverCa, servername: 'localhost', cert: encrypted.cert, key: encrypted.key, passphrase: 'pass-Phrase-3' } });
    const none = parseProxy({ url: tls13.url, tls: { ca: serverCa, servername: 'localhost' } });
    expect(new Set([same.identityKey, other.identityKey, none.identityKey]).size).toBe(3);
    const errors = await Promise.all(['nobody', 'mallory', 'mallory12'].map((a) => failure(viaFetch(a, '/e'))));
    const surfaces = {
      'String(endpoint)': String(same),
      'JSON(endpoint)': JSON.stringify(same),
      'inspect(endpoint)': inspect(same, { depth: 10, showHidden: true }),
      'endpoint.tls': inspect(same.tls, { depth: 10 }) + JSON.stringify(same.tls),
      'spread endpoint': inspect({ ...same }, { depth: 10, showHidden: true }),
      'inspect(manager)': inspect(manager, { depth: 10, showHidden: true }),
      'JSON(manager)': JSON.stringify(manager),
      'current()': JSON.stringify(manager.current('carol')),
      'stats()': JSON.stringify(manager.stats()),
      errors: errors.map((e) => inspect(e, { depth: 10 }) + String((e as Error).stack)).join('\n'),
      'channel payloads': inspect(published, { depth: 10 }),
    };
    const keyBody = (pem: string): string => pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('\n').slice(0, 40);
    expect(published.length).toBeGreaterThan(0);
    for (const [label, text] of Object.entries(surfaces)) {
      for (const secret of [keyBody(client.key), keyBody(encrypted.key), 'pass-Phrase-3', 'PRIVATE KEY']) expect(text, label).not.toContain(secret);
    }
    expect(same.getTlsKey()?.key).toBe(client.key);
    expect(same.tls?.cert).toBe(client.cert);
  });
});
