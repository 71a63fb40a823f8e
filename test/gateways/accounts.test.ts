/**
 * Through the mock gateway, for every preset: two accounts on one gateway URL
 * get two sessions — two egress addresses — each stable over 50 requests on
 * every road (fetch, http, ws, ccxt's own Agent); rotate('alice') mints a new
 * session whose address differs from bob's, and nothing alice starts after
 * rotate() returns leaves from the old one. The credentials the gateway
 * received are checked byte for byte against each vendor's grammar, written
 * out here by hand (not produced by our own grammar code).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, type ProxyInfo } from '../../src/index.js';
import type { GatewayPresetName } from '../../src/gateways/presets.js';
import type { MockGateway } from '../../src/testing/index.js';
import { Cleanup, EGRESS, ROADS, gatewayWorld, installed, roads } from './support.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

interface Case {
  preset: GatewayPresetName;
  protocol: 'http' | 'socks5h';
  /** The account's credentials at the vendor, without parameters. */
  credentials: { username: string; password: string };
  options: Record<string, unknown>;
  /** What the gateway must have received, for session id `s`. */
  username: (s: string) => string;
  password: (s: string) => string;
  session: RegExp;
}

const CASES: Case[] = [
  { preset: 'brightdata', protocol: 'http', credentials: { username: 'brd-customer-hl_5e1b2c-zone-residential1', password: 'zonepw' }, options: { country: 'us' }, username: (s) => `brd-customer-hl_5e1b2c-zone-residential1-country-us-session-${s}`, password: () => 'zonepw', session: /^[a-z0-9]{12}$/ },
  { preset: 'oxylabs', protocol: 'http', credentials: { username: 'customer-acme', password: 'pw' }, options: { country: 'de', lifetime: '30m' }, username: (s) => `customer-acme-cc-DE-sessid-${s}-sesstime-30`, password: () => 'pw', session: /^[a-z0-9]{10}$/ },
  { preset: 'decodo', protocol: 'http', credentials: { username: 'user-acme', password: 'pw' }, options: { country: 'gb', lifetime: '10m' }, username: (s) => `user-acme-country-gb-session-${s}-sessionduration-10`, password: () => 'pw', session: /^[a-z0-9]{10}$/ },
  { preset: 'smartproxy', protocol: 'http', credentials: { username: 'user-acme', password: 'pw' }, options: { country: 'fr' }, username: (s) => `user-acme-country-fr-session-${s}`, password: () => 'pw', session: /^[a-z0-9]{10}$/ },
  { preset: 'iproyal', protocol: 'socks5h', credentials: { username: 'acme', password: 'secretpw' }, options: { country: 'br', lifetime: '10m' }, username: () => 'acme', password: (s) => `secretpw_country-br_session-${s}_lifetime-10m`, session: /^[a-z0-9]{8}$/ },
  { preset: 'soax', protocol: 'http', credentials: { username: 'package-123456', password: 'pkgkey' }, options: { country: 'us', lifetime: '5m' }, username: (s) => `package-123456-country-us-sessionid-${s}-sessionlength-300`, password: () => 'pkgkey', session: /^[a-z0-9]{10}$/ },
];

const N = 50;

function checkCredentials(gw: MockGateway, c: Case, sessions: Set<string>): void {
  const entries = gw.log.filter((e) => e.username !== undefined);
  expect(entries.length).toBeGreaterThan(0);
  for (const e of entries) {
    const s = e.session!;
    expect(s, 'session id form').toMatch(c.session);
    expect(sessions.has(s), `session ${s} is one of the accounts'`).toBe(true);
    expect(e.username).toBe(c.username(s));
    expect(e.password).toBe(c.password(s));
    if (e.protocol === 'connect') expect(e.rawAuthorization).toBe(`Basic ${Buffer.from(`${c.username(s)}:${c.password(s)}`, 'utf8').toString('base64')}`);
    expect(e.status).not.toMatch(/refused|auth-failed/);
  }
}

describe.each(CASES)('$preset gateway ($protocol)', (c) => {
  it(`two accounts on one URL: two egress addresses, each stable over ${N} requests on every road; rotate() mints a new one`, async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: c.preset, auth: c.preset === 'iproyal' ? { username: c.credentials.username, password: c.credentials.password } : c.credentials });
    const gateway = { url: gw.urlFor(c.protocol, c.credentials), gateway: c.preset, ...c.options };
    const { m, rotations } = installed(cleanup, { accounts: { alice: gateway, bob: gateway } });
    const send = roads(echo);

    const alice0 = m.current('alice');
    const bob0 = m.current('bob');
    expect(alice0.session).toMatch(c.session);
    expect(bob0.session).toMatch(c.session);
    expect(alice0.session).not.toBe(bob0.session);
    expect(alice0.url).not.toContain(c.credentials.password);

    const seen: Record<string, Record<string, Set<string>>> = { alice: {}, bob: {} };
    for (const road of ROADS) {
      for (const account of ['alice', 'bob'] as const) {
        const ips = (seen[account]![road] = new Set());
        for (let i = 0; i < N; i++) ips.add(await m.withProxy(account, () => send(road, `${account}-${road}-${i}`)));
      }
    }
    const aliceIps = new Set(ROADS.flatMap((r) => [...seen.alice![r]!]));
    const bobIps = new Set(ROADS.flatMap((r) => [...seen.bob![r]!]));
    expect([...aliceIps]).toHaveLength(1);
    expect([...bobIps]).toHaveLength(1);
    const [aliceIp] = aliceIps;
    const [bobIp] = bobIps;
    expect(aliceIp).not.toBe(bobIp);
    expect(EGRESS).toContain(aliceIp);
    expect(gw.session(alice0.session!)!.egressIp).toBe(aliceIp);

    // rotate(): a new session (shown in the ProxyInfo, the password redacted), a new address, not bob's.
    const before = gw.log.length;
    const to: ProxyInfo = await m.rotate('alice');
    expect(to.session).toMatch(c.session);
    expect(to.session).not.toBe(alice0.session);
    expect(to.url).not.toContain(c.credentials.password);
    expect(m.current('alice').session).toBe(to.session);
    expect(rotations).toMatchObject([{ account: 'alice', reason: 'manual', from: { session: alice0.session }, to: { session: to.session } }]);
    const after = new Set<string>();
    for (const road of ROADS) for (let i = 0; i < 10; i++) after.add(await m.withProxy('alice', () => send(road, `alice-${road}-after-${i}`)));
    expect([...after]).toHaveLength(1);
    const [newIp] = after;
    expect(newIp).not.toBe(aliceIp);
    expect(newIp).not.toBe(bobIp);
    // Nothing alice started after rotate() returned used the old session (its old address).
    const later = gw.log.slice(before);
    expect(later.filter((e) => e.session === alice0.session)).toEqual([]);
    expect(later.filter((e) => e.session === to.session).length).toBeGreaterThanOrEqual(ROADS.length);
    expect(echo.requests.filter((r) => r.path.includes('alice-') && r.path.includes('-after-') && r.ip !== newIp)).toEqual([]);
    // bob kept his.
    expect(await m.withProxy('bob', () => send('fetch', 'bob-fetch-final'))).toBe(bobIp);

    checkCredentials(gw, c, new Set([alice0.session!, bob0.session!, to.session!]));
    console.info(`[gateway ${c.preset}] ${process.version}: alice ${aliceIp} (session ${alice0.session}), bob ${bobIp} (session ${bob0.session}), ${N} requests per road each; after rotate() alice ${newIp} (session ${to.session})`);
  });
});

describe('webshare (rotating endpoint)', () => {
  it('every connection says -rotate and may leave from another address; sessions do not exist', async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'webshare', auth: { username: 'myuser', password: 'pw' } });
    const gateway = { url: gw.urlFor('http', { username: 'myuser', password: 'pw' }), gateway: 'webshare' as const, country: 'us' };
    const { m } = installed(cleanup, { accounts: { scraper: gateway } });
    const send = roads(echo);
    const ips = new Set<string>();
    for (let i = 0; i < 5; i++) ips.add(await m.withProxy('scraper', () => send('ws', `scraper-ws-${i}`)));
    expect(ips.size).toBeGreaterThan(1);
    expect(m.current('scraper')).toMatchObject({ gateway: 'webshare' });
    expect(m.current('scraper').session).toBeUndefined();
    for (const e of gw.log) expect([e.username, e.password, e.session]).toEqual(['myuser-us-rotate', 'pw', undefined]);
    await expect(m.rotate('scraper')).rejects.toThrow(/cannot rotate: the pool has one proxy/);
  });
});

describe('configuration', () => {
  it('a gateway URL shared by accounts is no ConfigError; the same plain URL still is, and so is one pinned session', async () => {
    const { gw } = await gatewayWorld(cleanup, { vendor: 'brightdata' });
    const url = gw.urlFor('http', { username: 'brd-customer-C-zone-Z', password: 'pw' });
    const { SessionProxyManager } = await import('../../src/index.js');
    expect(() => new SessionProxyManager({ accounts: { a: { url, gateway: 'brightdata' }, b: { url, gateway: 'brightdata' } } })).not.toThrow();
    expect(() => new SessionProxyManager({ accounts: { a: url, b: url } })).toThrow(ConfigError);
    expect(() => new SessionProxyManager({ accounts: { a: { url, gateway: 'brightdata', sessionId: 'same1' }, b: { url, gateway: 'brightdata', sessionId: 'same1' } } })).toThrow(/would have to share a proxy/);
    expect(() => new SessionProxyManager({ accounts: { a: { url, gateway: 'brightdata', lifetime: '10m' } } })).toThrow(/^accounts\.a\.lifetime: Bright Data has no lifetime parameter/);
  });

  it('per-connection: every new connection a new session; the pool entry itself carries none', async () => {
    const { echo, gw } = await gatewayWorld(cleanup, { vendor: 'oxylabs' });
    const { m } = installed(cleanup, { accounts: { scraper: { url: gw.urlFor('http', { username: 'acme', password: 'pw' }), gateway: 'oxylabs', session: 'per-connection' } } });
    const send = roads(echo);
    for (let i = 0; i < 4; i++) await m.withProxy('scraper', () => send('ws', `scraper-ws-${i}`));
    const sessions = gw.log.map((e) => e.session);
    expect(new Set(sessions).size).toBe(4);
    for (const e of gw.log) expect(e.username).toMatch(/^customer-acme-sessid-[a-z0-9]{10}$/);
    expect(m.current('scraper').session).toBeUndefined();
  });
});
