/**
 * Options given in code go through the config-file validator: unknown keys
 * with "did you mean", wrong types and invalid values are a ConfigError
 * naming the key path (never a password, a client key or a passphrase) —
 * from `new SessionProxyManager()`, `install()`, `setAccount()` and
 * `loadConfig()` alike. What only code can pass is accepted: URL objects and
 * ProxyEndpoints as proxies; Buffers, KeyObjects, a SecureContext and
 * functions in `requestTls` and a proxy's `tls`.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { SessionProxyManager } from '../../src/manager.js';
import { parseProxy } from '../../src/proxy/parse.js';
import type { SessionProxyOptions } from '../../src/options.js';
import { configErrorWithout } from './support/config-error.js';

const SECRET = 'C0de-S3cret-Pw';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KEY_PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const KEY_BODY = KEY_PEM.split('\n')[1]!;

const configError = (fn: () => unknown): ConfigError => configErrorWithout([SECRET, KEY_BODY], fn);

const proxy = `http://u:${SECRET}@10.0.0.1:1`;
const construct = (o: unknown) => () => new SessionProxyManager(o as SessionProxyOptions);

describe('new SessionProxyManager(options) validates like a config file', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['a typo of a top-level key', { acounts: { alice: proxy } }, /^acounts: unknown key \(did you mean "accounts"\?\) \(expected one of proxy, accounts, noProxy, .*\) \(in options\)$/],
    ['a typo of a boolean', { proxy, stirct: false }, /^stirct: unknown key \(did you mean "strict"\?\)/],
    ['a wrong type', { proxy, strict: 'no' }, /^strict: expected true or false, got a string \(in options\)$/],
    ['a wrong number', { proxy, idleTimeout: '5s' }, /^idleTimeout: expected a number of milliseconds >= 0, got a string/],
    ['an invalid enum value, shown', { proxy, balance: 'per-conection' }, /^balance: expected one of sticky, per-connection, got "per-conection"/],
    ['an invalid strategy', { proxy, strategy: 'fastest' }, /^strategy: expected one of round-robin, random, least-used, healthiest, got "fastest"/],
    ['a nested typo', { proxy, health: { treshold: 2 } }, /^health\.treshold: unknown key \(did you mean "threshold"\?\) \(expected one of threshold, windowMs, cooldownMs, maxCooldownMs\)/],
    ['a nested value', { proxy, health: { threshold: 0.5 } }, /^health\.threshold: expected a whole number of failures >= 1, got a number/],
    ['a health check URL', { proxy, healthCheck: { interval: 1000, url: 'ftp://x' } }, /^healthCheck\.url: expected an http\(s\) URL string, got a string/],
    ['a proxy object typo', { proxy: { url: 'http://10.0.0.1:1', pasword: SECRET } }, /^proxy\.pasword: unknown key \(did you mean "password"\?\)/],
    ['a proxy password of the wrong type', { accounts: { alice: { url: 'http://10.0.0.1:1', password: 5 } } }, /^accounts\.alice\.password: expected a string, got a number/],
    ['an account that is not a proxy', { accounts: { alice: 5 } }, /^accounts\.alice: expected a proxy URL string .*, a URL, a \{ url \} object or a ProxyEndpoint, got a number/],
    ['the file-only account object', { accounts: { alice: { proxies: [proxy] } } }, /^accounts\.alice\.proxies: unknown key \(a proxy object has url, .*; in code an account is a proxy or an array of proxies\)/],
    ['a bad proxy URL, by its path', { accounts: { alice: ['http://10.0.0.1:1', `ftp://u:${SECRET}@10.0.0.2:21`] } }, /^accounts\.alice\[1\]: unsupported proxy scheme "ftp"/],
    ['a file-only key', { proxyList: 'list.txt' }, /^proxyList: unknown key \(proxyList is a config-file key; in code pass proxy: parseProxyList/],
    ['configFile (the manager reads none)', { configFile: 'proxies.json' }, /^configFile: unknown key \(the manager reads no config file; use install\(loadConfig\(\{ configFile \}\)\)\)/],
    ['a class instance as options', new (class Options {})(), /^options must be a plain object, got an object \(Options\)/],
    ['a requestTls typo', { proxy, requestTls: { rejectUnauthorised: false } }, /^requestTls\.rejectUnauthorised: unknown key \(did you mean "rejectUnauthorized"\?\)/],
    ['a destination in requestTls', { proxy, requestTls: { host: 'example.com' } }, /^requestTls\.host: unknown key \(not a TLS option here: the library decides where a connection goes\)/],
    ['a passphrase of the wrong type, beside a key', { proxy, requestTls: { key: KEY_PEM, passphrase: 5 } }, /^requestTls\.passphrase: expected a string, got a number/],
    ['a key of the wrong type', { proxy, requestTls: { key: 5, passphrase: SECRET } }, /^requestTls\.key: expected a PEM string, a Buffer, a KeyObject, \{ pem, passphrase \} or an array of them, got a number/],
    ['a TLS version', { proxy, requestTls: { minVersion: 'TLS1.2' } }, /^requestTls\.minVersion: expected one of TLSv1, TLSv1\.1, TLSv1\.2, TLSv1\.3, got a string/],
    ['a client key file in a proxy’s tls (code passes the key itself)', { proxy: { url: 'https://10.0.0.1:1', tls: { keyFile: 'client.key' } } }, /^proxy\.tls\.keyFile: unknown key \(keyFile is a config-file key; in code pass key: readFileSync\(file\)\)/],
    ['a proxy’s CA of the wrong type', { proxy: { url: 'https://10.0.0.1:1', tls: { ca: 5 } } }, /^proxy\.tls\.ca: expected a PEM string, a Buffer or an array of them, got a number/],
    ['the reserved account', { accounts: { default: proxy } }, /^accounts\.default: the account name "default" is reserved for the default pool \(option `proxy`\)/],
  ];
  it.each(bad)('%s', (_, options, message) => {
    const err = configError(construct(options));
    expect(err.message).toMatch(message);
    expect(err.code).toBe('SP_ERR_CONFIG');
    // loadConfig() says the same about the same options.
    if (!(options as Record<string, unknown>).configFile) expect(configError(() => loadConfig(options as never, {})).message).toMatch(message);
  });

  it('accepts what only code can pass: URL objects, ProxyEndpoints, Buffers, KeyObjects, a SecureContext, functions', () => {
    const ca = Buffer.from('-----BEGIN CERTIFICATE-----\n');
    const m = new SessionProxyManager({
      proxy: new URL('http://10.0.0.1:1'),
      accounts: {
        alice: parseProxy(`http://u:${SECRET}@10.0.0.2:1`),
        bob: [{ url: new URL('https://10.0.0.3:443'), password: SECRET, tls: { ca: [ca, 'PEM'], rejectUnauthorized: true, servername: 'proxy.test' } }],
      },
      requestTls: {
        ca,
        cert: [ca],
        key: [createPrivateKey(KEY_PEM), { pem: KEY_PEM, passphrase: SECRET }],
        secureContext: createSecureContext(),
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
        servername: undefined,
      },
      health: { threshold: 2, cooldownMs: 0 },
      healthCheck: { interval: 1000, url: 'https://example.com/' },
      strategy: 'least-used',
      balance: 'per-connection',
      onMismatch: 'quarantine',
    } as SessionProxyOptions);
    expect(m.accountNames()).toEqual(['default', 'alice', 'bob']);
  });

  it('setAccount(name, spec) validates the spec with its key path', () => {
    const m: SessionProxyManager = new SessionProxyManager({ accounts: { alice: 'http://10.0.0.1:1' } });
    expect(configError(() => m.setAccount('bob', { url: 'http://10.0.0.2:1', pasword: SECRET } as never)).message).toMatch(/^accounts\.bob\.pasword: unknown key \(did you mean "password"\?\) .*\(in setAccount\(\)\)$/);
    expect(configError(() => m.setAccount('bob', [])).message).toMatch(/^accounts\.bob: expected at least one proxy, got an empty array/);
    expect(m.setAccount('bob', new URL('http://10.0.0.2:1')).accountNames()).toEqual(['alice', 'bob']);
  });

  it('loadConfig() still takes configFile', () => {
    expect(configError(() => loadConfig({ configFile: 5 } as never, {})).message).toMatch(/^configFile: expected a file path/);
    expect(configError(() => loadConfig({ confgFile: 'x.json' } as never, {})).message).toMatch(/^confgFile: unknown key \(did you mean "configFile"\?\)/);
  });
});
