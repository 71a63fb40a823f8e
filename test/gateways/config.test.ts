/** Gateway entries in config files, SESSION_PROXY_CONFIG_JSON and the schema. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, GatewayDefinition, isGatewayDefinition, loadConfig } from '../../src/index.js';
import { serializeConfig } from '../../src/config/serialize.js';

function file(doc: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'sp-gw-'));
  const path = join(dir, 'proxies.json');
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

describe('gateways in configuration', () => {
  it('a config file entry { url, gateway, country, lifetime } is validated at load and kept as a gateway', () => {
    const path = file({ accounts: { alice: { url: 'http://customer-acme:${OXY_PW}@pr.oxylabs.io:7777', gateway: 'oxylabs', country: 'de', lifetime: '30m' }, bob: [{ url: 'http://u:p@geo.iproyal.com:12321', gateway: 'iproyal', session: 'sticky' }, 'http://10.0.0.9:3128'] } });
    const o = loadConfig({ configFile: path }, { OXY_PW: 's3cret' });
    const [alice] = o.accounts!.alice as unknown[];
    expect(isGatewayDefinition(alice)).toBe(true);
    const def = alice as GatewayDefinition;
    expect(def.credentialFor('abc')).toBe('customer-acme-cc-DE-sessid-abc-sesstime-30');
    expect(def.base.getPassword()).toBe('s3cret');
    expect(String(def)).not.toContain('s3cret');
    expect((o.accounts!.bob as unknown[]).length).toBe(2);
  });

  it('invalid gateway values are ConfigErrors naming the key path and the file', () => {
    const path = file({ accounts: { alice: { url: 'http://brd-customer-c-zone-z:pw@brd.superproxy.io:33335', gateway: 'brightdata', lifetime: '10m' } } });
    expect(() => loadConfig({ configFile: path }, {})).toThrow(ConfigError);
    expect(() => loadConfig({ configFile: path }, {})).toThrow(/^accounts\.alice\.lifetime: Bright Data has no lifetime parameter.*\(in config file /);
    const typo = file({ accounts: { alice: { url: 'http://u:p@x:1', gateway: 'oxylabs', lifetme: '10m' } } });
    expect(() => loadConfig({ configFile: typo }, {})).toThrow(/accounts\.alice\.lifetme: unknown key \(did you mean "lifetime"\?\)/);
  });

  it('serialized for a child process as its configuration, password included, and read back identically', () => {
    const o = loadConfig({ accounts: { alice: { url: 'http://acme:pw@geo.iproyal.com:12321', gateway: 'iproyal', country: 'br', lifetime: 600_000 } } }, {});
    const json = serializeConfig(o);
    expect(JSON.parse(json)).toEqual({ accounts: { alice: { url: 'http://geo.iproyal.com:12321', username: 'acme', password: 'pw', gateway: 'iproyal', country: 'br', lifetime: '10m' } } });
    const back = loadConfig({}, { SESSION_PROXY_CONFIG_JSON: json });
    expect((back.accounts!.alice as GatewayDefinition[])[0]!.credentialFor('abcd1234')).toBe('pw_country-br_session-abcd1234_lifetime-10m');
  });
});
