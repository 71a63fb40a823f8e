/**
 * A proxy's client certificate (`tls: { cert, key, passphrase }`) as options,
 * config file and the JSON a child gets: checked when the endpoint is made
 * (both halves, readable, belonging together, https:// only), the key kept
 * out of every printable form, the certificate part of the identity.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ProxyUrlError, SessionProxyManager, parseProxy } from '../../src/index.js';
import { loadConfig } from '../../src/config/load.js';
import { serializeConfig } from '../../src/config/serialize.js';
import { testCert, testKey } from '../../src/testing/certs.js';
import { skipWithout } from '../support/real-proxies.js';
import { makeCa, type Pem } from '../support/tls-material.js';

const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
};
const keyBody = (pem: string): string => pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');

describe('a proxy’s client certificate: the endpoint', () => {
  const url = 'https://proxy.corp.test:8443';

  it('keeps the certificate in tls, the key and passphrase behind getTlsKey()', () => {
    const e = parseProxy({ url, tls: { cert: testCert, key: testKey, servername: 'proxy.corp.test' } });
    expect(e.tls).toEqual({ cert: testCert, servername: 'proxy.corp.test' });
    expect(e.getTlsKey()).toEqual({ key: testKey });
    for (const text of [String(e), JSON.stringify(e), inspect(e, { showHidden: true, depth: 10 }), inspect({ ...e }, { showHidden: true, depth: 10 }), JSON.stringify(Object.entries(e))]) {
      expect(text).not.toContain(keyBody(testKey).slice(0, 30));
      expect(text).not.toContain('PRIVATE KEY');
    }
  });

  it('refuses half a pair, a non-https proxy, unreadable or mismatched material — naming the field, never the value', () => {
    const cases: Array<[object, RegExp]> = [
      [{ url, tls: { key: testKey } }, /tls\.key needs tls\.cert/],
      [{ url, tls: { cert: testCert } }, /tls\.cert needs tls\.key/],
      [{ url, tls: { passphrase: 'x' } }, /passphrase is only used with tls\.key/],
      [{ url: 'http://proxy.corp.test:8080', tls: { cert: testCert, key: testKey } }, /only sent to https:\/\/ proxies, not http:\/\//],
      [{ url, tls: { cert: 'not a cert', key: testKey } }, /tls\.cert is not a readable X\.509 certificate/],
      [{ url, tls: { cert: testCert, key: `-----BEGIN PRIVATE KEY-----\nAAAA${keyBody(testKey).slice(4)}\n-----END PRIVATE KEY-----\n` } }, /tls\.key is not a readable private key|does not belong/],
      [{ url, tls: { cert: testCert, key: 5 } }, /tls\.key must be a PEM string or a Buffer, got number/],
    ];
    for (const [input, message] of cases) {
      const err = thrown(() => parseProxy(input));
      expect(err).toBeInstanceOf(ProxyUrlError);
      expect(err.message).toMatch(message);
      expect(err.message + String(err.stack)).not.toContain(keyBody(testKey).slice(8, 40));
    }
  });

  describe.skipIf(skipWithout('openssl'))('with generated certificates', () => {
    let other: Pem;
    let encrypted: Pem;
    beforeAll(() => {
      const ca = makeCa('unit CA');
      other = ca.issue({ cn: 'bob', use: 'client' });
      encrypted = ca.issue({ cn: 'carol', use: 'client', passphrase: 'pass-Phrase-3' });
    });

    it('a key that belongs to another certificate, an encrypted key without (or with a wrong) passphrase', () => {
      expect(thrown(() => parseProxy({ url, tls: { cert: testCert, key: other.key } })).message).toMatch(/tls\.key does not belong to tls\.cert/);
      expect(thrown(() => parseProxy({ url, tls: { cert: encrypted.cert, key: encrypted.key } })).message).toMatch(/encrypted and needs tls\.passphrase/);
      const wrong = thrown(() => parseProxy({ url, tls: { cert: encrypted.cert, key: encrypted.key, passphrase: 'nope-Nope' } }));
      expect(wrong.message).toMatch(/tls\.passphrase is wrong/);
      expect(wrong.message).not.toContain('nope-Nope');
      expect(parseProxy({ url, tls: { cert: encrypted.cert, key: Buffer.from(encrypted.key), passphrase: 'pass-Phrase-3' } }).getTlsKey()?.passphrase).toBe('pass-Phrase-3');
    });

    it('the certificate is part of the identity (another certificate = another proxy, for pools and exclusivity)', () => {
      const a = parseProxy({ url, tls: { cert: testCert, key: testKey } });
      const b = parseProxy({ url, tls: { cert: other.cert, key: other.key } });
      const none = parseProxy(url);
      expect(parseProxy({ url, tls: { cert: testCert, key: Buffer.from(testKey) } }).identityKey).toBe(a.identityKey);
      expect(new Set([a.identityKey, b.identityKey, none.identityKey]).size).toBe(3);
      // Two accounts on one proxy, each with its own certificate: two identities, so exclusive accepts it.
      const m = new SessionProxyManager({ accounts: { alice: { url, tls: { cert: testCert, key: testKey } }, bob: { url, tls: { cert: other.cert, key: other.key } } } });
      expect(m.current('alice')?.url).toBe(m.current('bob')?.url);
    });
  });
});

describe('a proxy’s client certificate: configuration', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-cc-'));
    fs.writeFileSync(path.join(dir, 'client.pem'), testCert);
    fs.writeFileSync(path.join(dir, 'client.key'), testKey, { mode: 0o600 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (doc: unknown): string => {
    const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
    fs.writeFileSync(f, JSON.stringify(doc));
    return f;
  };

  it('a config file reads certFile and keyFile (relative to the file); the JSON a child gets carries the pair', () => {
    const configFile = write({ accounts: { alice: { url: 'https://10.0.0.5:8443', tls: { certFile: 'client.pem', keyFile: 'client.key', servername: 'proxy.corp.test' } } } });
    const options = loadConfig({ configFile }, {});
    const endpoint = parseProxy((options.accounts!.alice as unknown[])[0] ?? options.accounts!.alice);
    expect(endpoint.tls?.cert).toBe(testCert);
    expect(endpoint.getTlsKey()?.key).toBe(testKey);
    const child = JSON.parse(serializeConfig(options));
    expect(child.accounts.alice.tls).toEqual({ servername: 'proxy.corp.test', cert: testCert, key: testKey });
    const again = loadConfig({}, { SESSION_PROXY_CONFIG_JSON: JSON.stringify(child) });
    expect(parseProxy((again.accounts!.alice as unknown[])[0] ?? again.accounts!.alice).identityKey).toBe(endpoint.identityKey);
  });

  it('cert with certFile, a missing keyFile, certFile in code: ConfigError with the key path, no value', () => {
    const both = thrown(() => loadConfig({ configFile: write({ proxy: { url: 'https://10.0.0.5:1', tls: { cert: testCert, certFile: 'client.pem', key: testKey } } }) }, {}));
    expect(both).toBeInstanceOf(ConfigError);
    expect(both.message).toMatch(/proxy\.tls\.certFile.*give cert or certFile, not both/);
    const missing = thrown(() => loadConfig({ configFile: write({ proxy: { url: 'https://10.0.0.5:1', tls: { certFile: 'client.pem', keyFile: 'nope.key' } } }) }, {}));
    expect(missing.message).toMatch(/proxy\.tls\.keyFile.*nope\.key: file not found/);
    const inCode = thrown(() => new SessionProxyManager({ proxy: { url: 'https://10.0.0.5:1', tls: { certFile: 'x' } as never } }));
    expect(inCode).toBeInstanceOf(ConfigError);
    expect(inCode.message).toMatch(/certFile is a config-file key; in code pass cert: readFileSync\(file\)/);
    for (const e of [both, missing, inCode]) expect(e.message).not.toContain(keyBody(testKey).slice(0, 30));
  });
});
