/**
 * The mock gateway on its own (no manager): the vendor's grammar read from
 * the credentials, one exit address per session, changes by lifetime, idle,
 * flip and collide, vendor-style refusals, the raw credentials in its log.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxyAuthError, ProxyConnectError } from '../../src/errors.js';
import { GatewayDefinition } from '../../src/gateways/definition.js';
import { ProxyEndpoint } from '../../src/proxy/endpoint.js';
import { openTunnel } from '../../src/tunnel/open-tunnel.js';
import { Bindings } from '../../src/testing/mock-gateway/bindings.js';
import { startEchoServer, startMockGateway, type EchoServer, type MockGateway } from '../../src/testing/index.js';

const IPS = ['127.0.0.20', '127.0.0.21', '127.0.0.22'];
let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function world(options: Partial<Parameters<typeof startMockGateway>[0]> = {}): Promise<{ gw: MockGateway; echo: EchoServer }> {
  const echo = await startEchoServer();
  const gw = await startMockGateway({ vendor: 'brightdata', egressIps: IPS, ...options });
  cleanup.push(() => echo.close(), () => gw.close());
  return { gw, echo };
}

/** One GET through `proxy` to the echo server; resolves with the address the echo server saw. */
async function egress(proxy: ProxyEndpoint, echo: EchoServer): Promise<string> {
  const port = new URL(echo.httpUrl).port;
  const socket = await openTunnel(proxy, { host: '127.0.0.1', port: Number(port) });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/ip', createConnection: () => socket as Socket, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', reject);
    req.end();
  });
}

const brightdata = (gw: MockGateway, extra: Record<string, unknown> = {}): GatewayDefinition =>
  new GatewayDefinition({ url: gw.urlFor('http', { username: 'brd-customer-C-zone-Z', password: 'pw' }), gateway: 'brightdata', ...extra });

describe('mock gateway', () => {
  it('binds each session to its own exit address, keeps it, and rotates sessionless connections', async () => {
    const { gw, echo } = await world();
    const def = brightdata(gw, { country: 'us' });
    const a = await egress(def.endpoint('alice1'), echo);
    const b = await egress(def.endpoint('bob1'), echo);
    expect(a).not.toBe(b);
    for (let i = 0; i < 5; i++) expect(await egress(def.endpoint('alice1'), echo)).toBe(a);
    const rotating = new Set<string>();
    for (let i = 0; i < 3; i++) rotating.add(await egress(def.endpoint(undefined), echo));
    expect(rotating.size).toBe(3);
    expect(gw.session('alice1')).toMatchObject({ egressIp: a, connections: 6, changes: 0 });
    // The raw credentials as received: the Basic header byte for byte.
    const entry = gw.log.find((e) => e.session === 'bob1')!;
    expect(entry.rawAuthorization).toBe(`Basic ${Buffer.from('brd-customer-C-zone-Z-country-us-session-bob1:pw').toString('base64')}`);
    expect(entry).toMatchObject({ protocol: 'connect', username: 'brd-customer-C-zone-Z-country-us-session-bob1', password: 'pw', params: { user: 'brd-customer-C-zone-Z', country: 'us', session: 'bob1' }, egressIp: b, status: 'ok' });
  });

  it('speaks SOCKS5 with the credentials in RFC 1929 and logs them raw', async () => {
    const { gw, echo } = await world({ vendor: 'iproyal' });
    const def = new GatewayDefinition({ url: gw.urlFor('socks5h', { username: 'username123', password: 'password321' }), gateway: 'iproyal', country: 'br', lifetime: '10m' });
    const ip = await egress(def.endpoint('sgn34f3e'), echo);
    expect(IPS).toContain(ip);
    expect(gw.log.at(-1)).toMatchObject({ protocol: 'socks5', username: 'username123', password: 'password321_country-br_session-sgn34f3e_lifetime-10m', session: 'sgn34f3e', targetHost: '127.0.0.1', egressIp: ip });
    expect(gw.session('sgn34f3e')!.requestedLifetimeMs).toBe(600_000);
  });

  it("answers a malformed credential with the gateway's error, wrong credentials with 407, a dead session with 502", async () => {
    const { gw, echo } = await world({ auth: { username: 'brd-customer-C-zone-Z', password: 'pw' } });
    // Hand-written credentials (no grammar on our side), as users build them today.
    const raw = (username: string, password = 'pw'): ProxyEndpoint => new ProxyEndpoint({ protocol: 'http', host: gw.host, port: gw.port, username, password });
    const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);
    const malformed = await failure(egress(raw('brd-customer-C-zone-Z-session-my-string'), echo));
    expect(malformed).toBeInstanceOf(ProxyConnectError);
    expect((malformed as ProxyConnectError).status).toBe(400);
    expect(gw.log.at(-1)).toMatchObject({ status: 'refused', error: 'Bright Data: malformed "-session-" parameter in the username' });
    const wrong = await failure(egress(raw('brd-customer-C-zone-Z-session-abc', 'nope'), echo));
    expect(wrong).toBeInstanceOf(ProxyAuthError);
    const def = brightdata(gw);
    await egress(def.endpoint('doomed'), echo);
    gw.failSession('doomed');
    const dead = await failure(egress(def.endpoint('doomed'), echo));
    expect((dead as ProxyConnectError).status).toBe(502);
    expect(await egress(def.endpoint('fresh'), echo)).toMatch(/^127\.0\.0\.2[0-2]$/);
  });

  it('a session changes address after lifetimeMs; flip and collide change it on demand', async () => {
    const { gw, echo } = await world({ lifetimeMs: 150 });
    const def = brightdata(gw);
    const first = await egress(def.endpoint('s1'), echo);
    const deadline = Date.now() + 5_000;
    let now = first;
    while (now === first && Date.now() < deadline) now = await egress(def.endpoint('s1'), echo);
    expect(now).not.toBe(first);
    expect(gw.session('s1')!.changes).toBeGreaterThanOrEqual(1);
    const before = await egress(def.endpoint('s2'), echo);
    const flipped = gw.flip('s2');
    expect(flipped).not.toBe(before);
    gw.collide('s1', 's2');
    expect(gw.session('s2')!.egressIp).toBe(gw.session('s1')!.egressIp);
  });
});

describe('mock gateway bindings', () => {
  it('new sessions take free addresses; lifetime and idle gaps move a session, never onto its old address', () => {
    const b = new Bindings(IPS, 1_000, 300);
    expect(new Set([b.connect('a', undefined, 0), b.connect('b', undefined, 0), b.connect('c', undefined, 0)]).size).toBe(3);
    const a = b.get('a')!.egressIp;
    expect(b.connect('a', undefined, 200)).toBe(a); // used again within the idle gap
    expect(b.connect('a', undefined, 600)).not.toBe(a); // idle 400 ms > 300
    const a2 = b.get('a')!.egressIp;
    expect(b.connect('a', undefined, 800)).toBe(a2);
    expect(b.connect('a', undefined, 1_700)).not.toBe(a2); // lifetime 1 s since 600
    // A lifetime the credential asks for wins over lifetimeMs.
    const c = b.get('c')!.egressIp;
    expect(b.connect('c', 5_000, 100)).toBe(c);
    expect(b.connect('c', 5_000, 450)).not.toBe(c); // idle still applies (350 ms > 300)
  });
});

