/**
 * The gateway model: every preset against the vendor's documented examples
 * (parse and render exactly), the template form, and the start-up checks
 * (an invalid combination is a ConfigError naming the key, never the password).
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { GatewayDefinition } from '../../src/gateways/definition.js';
import { Grammar } from '../../src/gateways/grammar.js';
import { GATEWAY_PRESETS, type GatewayPresetName } from '../../src/gateways/presets.js';
import { parsePoolEntry } from '../../src/gateways/entry.js';
import { ProxyEndpoint } from '../../src/proxy/endpoint.js';
import { FIXTURES, substituted } from './fixtures.js';

const grammarOf = (name: GatewayPresetName): Grammar => Grammar.parse(GATEWAY_PRESETS[name].format, GATEWAY_PRESETS[name].patterns);
const HOSTS: Record<GatewayPresetName, string> = {
  brightdata: 'http://{cred}:pw@brd.superproxy.io:33335',
  oxylabs: 'http://{cred}:pw@pr.oxylabs.io:7777',
  decodo: 'http://{cred}:pw@gate.decodo.com:7000',
  smartproxy: 'http://{cred}:pw@gate.smartproxy.com:7000',
  iproyal: 'http://username123:{cred}@geo.iproyal.com:12321',
  soax: 'http://{cred}:pw@proxy.soax.com:5000',
  webshare: 'http://{cred}:pw@p.webshare.io:80',
};
const urlWith = (name: GatewayPresetName, credential: string): string => HOSTS[name].replace('{cred}', encodeURIComponent(credential));

describe("the vendors' documented examples", () => {
  it.each(FIXTURES.map((f) => [`${f.preset}: ${f.text} (${f.from === 'issue' ? 'from the issue text' : f.source})`, f] as const))('%s parses and renders exactly', (_, f) => {
    const text = substituted(f);
    expect(f.line.replace(/\\_/g, '_')).toContain(f.text);
    const grammar = grammarOf(f.preset);
    const values = grammar.read(text);
    expect(values).toEqual(f.expect);
    expect(grammar.render(values!)).toBe(text);
    // Through the whole gateway definition: the URL's parameters are read out, and the credential the
    // gateway receives is rendered back the way the vendor wrote it.
    const def = new GatewayDefinition({ url: urlWith(f.preset, text), gateway: f.preset, ...(f.preset === 'webshare' ? {} : {}) });
    expect(def.credentialFor(def.pinnedSession)).toBe(text);
    const endpoint = def.endpoint(def.pinnedSession);
    const sent = def.carrier === 'username' ? endpoint.username : endpoint.getPassword();
    expect(sent).toBe(text);
  });

  it('every preset has at least one fixture, and each cites its page', () => {
    for (const name of Object.keys(GATEWAY_PRESETS) as GatewayPresetName[]) {
      if (name === 'smartproxy') continue; // Decodo's former name: Decodo's grammar
      expect(FIXTURES.filter((f) => f.preset === name).length, name).toBeGreaterThan(0);
      expect(GATEWAY_PRESETS[name].docs.length, name).toBeGreaterThan(0);
    }
    for (const f of FIXTURES) if (f.from === 'vendor') expect(f.source).toMatch(/^https:\/\//);
  });

  it("rejects what the vendors' pages call errors", () => {
    // Bright Data: "Using special characters like - or * will result in an error" (rotate_ips).
    expect(grammarOf('brightdata').check('brd-customer-c-zone-z-session-my-string')).toEqual({ error: 'malformed "-session-" parameter' });
    expect(grammarOf('brightdata').check('brd-customer-c-zone-z-session-mystring')).toEqual({ values: { user: 'brd-customer-c-zone-z', session: 'mystring' } });
    expect(() => new GatewayDefinition({ url: 'http://brd-customer-c-zone-z:pw@brd.superproxy.io:33335', gateway: 'brightdata', sessionId: 'my-string' })).toThrow(/letters and digits only/);
    // IPRoyal: "precisely 8 characters in length".
    expect(grammarOf('iproyal').check('pw_session-abc1234')).toEqual({ error: 'malformed "_session-" parameter' });
    expect(() => new GatewayDefinition({ url: 'http://u:pw@geo.iproyal.com:12321', gateway: 'iproyal', sessionId: 'abc1234' })).toThrow(/exactly 8 letters and digits/);
  });
});

describe('rendering per preset', () => {
  const cases: Array<[GatewayPresetName, Record<string, unknown>, string, string]> = [
    ['brightdata', { country: 'US', city: 'San Francisco' }, 'brd-customer-C-zone-Z', 'brd-customer-C-zone-Z-country-us-city-sanfrancisco-session-SESSION'],
    ['oxylabs', { country: 'de', lifetime: '30m' }, 'USERNAME', 'customer-USERNAME-cc-DE-sessid-SESSION-sesstime-30'],
    ['decodo', { country: 'us', lifetime: '1h' }, 'U', 'user-U-country-us-session-SESSION-sessionduration-60'],
    ['smartproxy', { country: 'us' }, 'user-U', 'user-U-country-us-session-SESSION'],
    ['iproyal', { country: 'br', lifetime: '10m' }, 'password321', 'password321_country-br_session-SESSION_lifetime-10m'],
    ['soax', { country: 'us', city: 'New York', lifetime: '10m' }, 'package-123', 'package-123-country-us-city-new+york-sessionid-SESSION-sessionlength-600'],
  ];
  it.each(cases)('%s', (name, opts, cred, expected) => {
    const def = new GatewayDefinition({ url: urlWith(name, cred), gateway: name, ...opts });
    const session = name === 'iproyal' ? 'ABCD1234' : 'SESSION';
    expect(def.credentialFor(session)).toBe(expected.replace('SESSION', session));
    const minted = def.mint();
    expect(def.acceptsSession(minted)).toBe(true);
    expect(minted).toHaveLength(GATEWAY_PRESETS[name].session!.length);
  });

  it('webshare is the rotating endpoint: U-rotate, U-CC-rotate, no session', () => {
    expect(new GatewayDefinition({ url: 'http://myuser:pw@p.webshare.io:80', gateway: 'webshare' }).credentialFor(undefined)).toBe('myuser-rotate');
    const def = new GatewayDefinition({ url: 'http://myuser:pw@p.webshare.io:80', gateway: 'webshare', country: 'US' });
    expect(def.mode).toBe('per-connection');
    expect(def.credentialFor(undefined)).toBe('myuser-us-rotate');
    expect(new GatewayDefinition({ url: 'http://myuser-rotate:pw@p.webshare.io:80', gateway: 'webshare' }).credentialFor(undefined)).toBe('myuser-rotate');
  });

  it('session endpoints: identity per session, health per gateway, the session shown, the password redacted', () => {
    const def = new GatewayDefinition({ url: 'http://u:secret-pw@geo.iproyal.com:12321', gateway: 'iproyal', country: 'br' });
    const a = def.endpoint('aaaa1111');
    const b = def.endpoint('bbbb2222');
    expect(a.identityKey).not.toBe(b.identityKey);
    expect(a.healthKey).toBe(b.healthKey);
    expect(a.info()).toMatchObject({ gateway: 'iproyal', session: 'aaaa1111', url: 'http://u:***@geo.iproyal.com:12321' });
    for (const shown of [inspect(def), JSON.stringify(def), String(def), inspect(a), JSON.stringify(a.info())]) expect(shown).not.toContain('secret-pw');
    expect(a.getPassword()).toBe('secret-pw_country-br_session-aaaa1111');
  });
});

describe('start-up checks (ConfigError)', () => {
  const bd = 'http://brd-customer-C-zone-Z:pw@brd.superproxy.io:33335';
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown preset', { url: bd, gateway: 'luminati' }, /unknown gateway "luminati" \(known: brightdata, oxylabs/],
    ['both gateway and template', { url: bd, gateway: 'brightdata', template: { in: 'username', format: '{user}-s-{session}' } }, /exactly one of "gateway"/],
    ['country form', { url: bd, gateway: 'brightdata', country: 'USA' }, /two-letter ISO 3166-1 country code .*also takes "eu".*"USA"/],
    ['country form (number)', { url: bd, gateway: 'brightdata', country: 1 }, /two-letter/],
    ['a lifetime for a vendor that has none', { url: bd, gateway: 'brightdata', lifetime: '10m' }, /Bright Data has no lifetime parameter/],
    ['webshare has no lifetime', { url: 'http://u:p@p.webshare.io:80', gateway: 'webshare', lifetime: '10m' }, /no lifetime parameter/],
    ['oxylabs lifetime out of range', { url: 'http://u:p@pr.oxylabs.io:7777', gateway: 'oxylabs', lifetime: '25h' }, /outside Oxylabs's range \(sesstime: whole minutes, 1 to 1440\)/],
    ['oxylabs lifetime not whole minutes', { url: 'http://u:p@pr.oxylabs.io:7777', gateway: 'oxylabs', lifetime: '90s' }, /not a whole number of minutes/],
    ['decodo lifetime out of range', { url: 'http://u:p@gate.decodo.com:7000', gateway: 'decodo', lifetime: 1441 * 60_000 }, /1 to 1440/],
    ['soax lifetime out of range', { url: 'http://u:p@proxy.soax.com:5000', gateway: 'soax', lifetime: '2d' }, /1 to 86400/],
    ['iproyal lifetime out of range', { url: 'http://u:p@geo.iproyal.com:12321', gateway: 'iproyal', lifetime: '8d' }, /1 second to 7 days/],
    ['iproyal lifetime below a second', { url: 'http://u:p@geo.iproyal.com:12321', gateway: 'iproyal', lifetime: '500ms' }, /outside IPRoyal's range/],
    ['lifetime syntax', { url: 'http://u:p@pr.oxylabs.io:7777', gateway: 'oxylabs', lifetime: 'ten minutes' }, /expected a duration such as "10m"/],
    ['per-connection with a lifetime', { url: 'http://u:p@pr.oxylabs.io:7777', gateway: 'oxylabs', session: 'per-connection', lifetime: '10m' }, /applies to sticky sessions/],
    ['webshare sticky', { url: 'http://u:p@p.webshare.io:80', gateway: 'webshare', session: 'sticky' }, /rotating endpoint only/],
    ['session mode', { url: bd, gateway: 'brightdata', session: 'forever' }, /expected "sticky" or "per-connection"/],
    ['bright data username', { url: 'http://someone:pw@brd.superproxy.io:33335', gateway: 'brightdata' }, /brd-customer-<customer id>-zone-<zone name>/],
    ['no credentials', { url: 'http://brd.superproxy.io:33335', gateway: 'brightdata' }, /carries its parameters in the username, and the URL has none/],
    ['iproyal without a password', { url: 'http://u@geo.iproyal.com:12321', gateway: 'iproyal' }, /in the password, and the URL has none/],
    ['city without country', { url: bd, gateway: 'brightdata', city: 'paris' }, /a city needs a country/],
    ['conflicting country in the URL', { url: 'http://brd-customer-C-zone-Z-country-us:pw@brd.superproxy.io:33335', gateway: 'brightdata', country: 'de' }, /sets country "us" and the option "country" another/],
    ['template without {user}', { url: bd, template: { in: 'username', format: 'x-session-{session}' } }, /exactly one \{user\}/],
    ['template unknown placeholder', { url: bd, template: { in: 'username', format: '{user}-zone-{zone}' } }, /unknown placeholder \{zone\}/],
    ['template nested segments', { url: bd, template: { in: 'username', format: '{user}[-a-{country}[-b-{city}]]' } }, /cannot nest/],
    ['template without {session}', { url: bd, template: { in: 'username', format: '{user}[-country-{country}]' } }, /format needs \{session\}/],
    ['template {lifetime} without a unit', { url: bd, template: { in: 'username', format: '{user}-s-{session}[-t-{lifetime}]' } }, /say how it is written/],
    ['template in', { url: bd, template: { in: 'header', format: '{user}-s-{session}' } }, /"username" or "password"/],
  ];
  it.each(bad)('%s', (_, input, message) => {
    let error: unknown;
    try {
      parsePoolEntry(input, { path: 'accounts.alice' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toMatch(/^accounts\.alice/);
    expect((error as Error).message).not.toMatch(/:pw@|:p@/);
  });

  it('a template covers any other vendor, with optional segments', () => {
    const def = new GatewayDefinition({
      url: 'socks5h://acme:pw@gw.example.net:1080',
      template: { in: 'username', format: '{user}[-country-{country}]-session-{session}[-ttl-{lifetime}]', session: { length: 6, alphabet: 'abc123' }, lifetime: { unit: 'm', max: 60 } },
      country: 'FR',
      lifetime: '15m',
    });
    const id = def.mint();
    expect(id).toMatch(/^[abc123]{6}$/);
    expect(def.credentialFor(id)).toBe(`acme-country-fr-session-${id}-ttl-15`);
    expect(new GatewayDefinition({ url: 'http://acme:pw@gw.example.net:8000', template: { in: 'password', format: '{password}_s_{session}' } }).credentialFor('abcdefghij')).toBe('pw_s_abcdefghij');
    expect(() => new GatewayDefinition({ url: 'http://acme:pw@gw.example.net:8000', template: { in: 'username', format: '{user}-ttl-{lifetime}-s-{session}', lifetime: { unit: 'm', max: 60 } }, lifetime: '2h' })).toThrow(/outside template gateway's range/);
  });

  it('a plain entry is still a plain proxy', () => {
    expect(parsePoolEntry('http://u:p@10.0.0.1:8080')).toBeInstanceOf(ProxyEndpoint);
  });
});
