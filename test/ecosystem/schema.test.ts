/**
 * schema/config.schema.json and the config validator agree: every example
 * config in examples/ passes both, and a set of bad documents fails both.
 * (The validator checks more than a schema can — proxy URLs are parsed,
 * NO_PROXY entries compiled — so agreement is tested on what both express.)
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { validateSchema } from './support/json-schema.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const schema = JSON.parse(readFileSync(join(root, 'schema/config.schema.json'), 'utf8'));

/** Placeholder values for the ${VAR}s a config uses, by the variable's suffix. */
function exampleEnv(text: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [, name] of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
    env[name!] = /_(URL|PROXY)$/.test(name!) ? 'http://127.0.0.1:9' : /_PORT$/.test(name!) ? '9' : 'placeholder-secret';
  }
  return env;
}

function exampleConfigs(dir = join(root, 'examples')): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(path).isDirectory()) out.push(...exampleConfigs(path));
    else if (name.endsWith('.json')) {
      const doc = JSON.parse(readFileSync(path, 'utf8'));
      if (typeof doc.$schema === 'string' && doc.$schema.endsWith('config.schema.json')) out.push(path);
    }
  }
  return out;
}

describe('example configs', () => {
  const files = exampleConfigs();
  it('there are some', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
  });
  it.each(files.map((f) => [relative(root, f), f]))('%s passes the schema and the validator', (_, file) => {
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(validateSchema(schema, doc)).toEqual([]);
    const options = loadConfig({ configFile: file }, exampleEnv(readFileSync(file, 'utf8')));
    expect(options.proxy !== undefined || Object.keys(options.accounts ?? {}).length > 0).toBe(true);
  });
});

describe('schema and validator agree', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-schema-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'list.txt'), '10.0.0.1:8080\n');
  let n = 0;
  const validatorAccepts = (doc: unknown): boolean => {
    const configFile = join(dir, `d${n++}.json`);
    writeFileSync(configFile, JSON.stringify(doc));
    try {
      loadConfig({ configFile }, { P: 'pw' });
      return true;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return false;
    }
  };

  const good: unknown[] = [
    {},
    { proxy: 'http://10.0.0.1:1' },
    { proxy: ['10.0.0.1:8080', { url: 'socks5h://10.0.0.2:1080', password: '${P}' }] },
    { proxyList: 'list.txt', accounts: { a: { proxyList: ['list.txt'] }, b: { proxies: 'HTTP://10.0.0.3:1' } } },
    { accounts: { 'my bot': 'socks4a://u@10.0.0.4:1080' }, noProxy: '' },
    { requestTls: { ca: ['x'], rejectUnauthorized: false, servername: 'h' }, idleTimeout: 0, drainTimeout: 0, verifyEvery: 1, egressEndpoints: ['http://127.0.0.1/ip'] },
    { systemCa: true, requestTls: { cert: 'x', keyFile: 'list.txt', passphrase: '' } },
    { strategy: 'random', balance: 'sticky', health: {}, healthCheck: { interval: 1 }, onMismatch: 'error', failover: false, exclusive: true, verifyOnStart: true, verifyOnRotate: false },
    { strategy: 'healthiest', balance: 'per-connection', onMismatch: 'quarantine', health: { threshold: 2, windowMs: 1, cooldownMs: 0, maxCooldownMs: 0 }, healthCheck: { interval: 1, timeout: 1, url: 'https://example.com/' } },
    { childConfig: 'route' },
    { childConfig: 'all' },
    { rules: [{ match: '*.openai.com', proxy: 'http://10.0.0.1:1' }, { match: ['a.test', 'https://b.test:443'], proxy: 'direct', scopes: true }, { match: '10.0.0.0/8', proxy: ['10.0.0.2:1', { url: 'socks5h://10.0.0.3:1080' }], scopes: false }, { match: 'c.test', proxy: 'block' }] },
    { rules: [], pac: 'http://wpad.corp/proxy.pac', pacFallback: 'direct' },
    { pac: 'file:///etc/proxy.pac', pacFallback: 'fail' },
    { pac: { script: 'function FindProxyForURL(u, h) { return "DIRECT"; }', evalTimeout: 100, cacheSize: 5, refreshInterval: 0, fetchTimeout: 1 } },
    { pac: { url: 'https://wpad.corp/proxy.pac' } },
  ];
  const bad: unknown[] = [
    [],
    'http://10.0.0.1:1',
    { proxy: 'ftp://10.0.0.1:21' },
    { proxy: 'SOCKS6://10.0.0.1:21' },
    { proxy: '   ' },
    { proxy: [] },
    { proxy: 5 },
    { proxy: { url: 'http://10.0.0.1:1', extra: 1 } },
    { proxy: { password: 'x' } },
    { proxy: { url: 'http://10.0.0.1:1', connectTimeout: 0 } },
    { proxyList: [] },
    { proxyList: '' },
    { accounts: [] },
    { accounts: { default: 'http://10.0.0.1:1' } },
    { accounts: { '': 'http://10.0.0.1:1' } },
    { accounts: { a: {} } },
    { accounts: { a: { proxies: [] } } },
    { accounts: { a: { proxies: 'http://10.0.0.1:1', url: 'http://10.0.0.1:1' } } },
    { accounts: { a: { proxyList: 'list.txt', label: 'x' } } },
    { strict: 'true' },
    { env: 1 },
    { defaultProtocol: 'ftp' },
    { noProxy: 5 },
    { noProxy: [5] },
    { unknown: true },
    { requestTls: { certs: 'x' } },
    { requestTls: { cert: 'x', certFile: 'list.txt' } },
    { proxy: { url: 'https://10.0.0.1:1', tls: { keyFile: '' } } },
    { proxy: { url: 'https://10.0.0.1:1', tls: { passphrase: 5 } } },
    { systemCa: 'yes' },
    { requestTls: { ca: 5 } },
    { idleTimeout: -1 },
    { drainTimeout: -1 },
    { drainTimeout: '30s' },
    { verifyEvery: 0 },
    { strategy: '' },
    { strategy: 5 },
    { healthCheck: true },
    { egressEndpoints: [] },
    { $schema: 5 },
    { strategy: 'rundom' },
    { balance: 'per-conection' },
    { onMismatch: 'warn' },
    { health: { treshold: 1 } },
    { health: { threshold: 0 } },
    { health: { threshold: 1.5 } },
    { health: { cooldownMs: -1 } },
    { healthCheck: { interval: 0 } },
    { healthCheck: { url: 'ftp://example.com/' } },
    { healthCheck: { url: 5 } },
    // An own "__proto__" key, as JSON.parse makes it (an object literal would set the prototype instead).
    JSON.parse('{"__proto__": {"strict": false}}'),
    JSON.parse('{"accounts": {"__proto__": "http://10.0.0.1:1"}}'),
    { accounts: { constructor: 'http://10.0.0.1:1' } },
    { accounts: { prototype: 'http://10.0.0.1:1' } },
    { health: { constructor: 1 } },
    JSON.parse('{"proxy": {"url": "http://10.0.0.1:1", "__proto__": {}}}'),
    { childConfig: 'both' },
    { childConfig: true },
    { rules: {} },
    { rules: [{ match: 'a.test' }] },
    { rules: [{ proxy: 'direct' }] },
    { rules: [{ match: 'a.test', proxy: '' }] },
    { rules: [{ match: 'a.test', proxy: 'http://10.0.0.1:1', scopes: true }] },
    { rules: [{ match: [], proxy: 'direct' }] },
    { rules: [{ match: '', proxy: 'direct' }] },
    { rules: [{ match: 'a.test', proxy: 'direct', extra: 1 }] },
    { rules: [{ match: 'a.test', proxy: 'direct', scopes: 'yes' }] },
    { rules: ['a.test'] },
    { pac: '' },
    { pac: 5 },
    { pac: 'ftp://x/proxy.pac' },
    { pac: {} },
    { pac: { url: 'http://x/p.pac', script: 'function FindProxyForURL(){}' } },
    { pac: { url: 'http://x/p.pac', cacheSize: 0 } },
    { pac: { url: 'http://x/p.pac', evalTimeout: 0 } },
    { pac: { script: 'no function here' } },
    { pac: { url: 'http://x/p.pac', refresh: 1 } },
    { pacFallback: 'proxy' },
  ];

  it.each(good.map((d) => [JSON.stringify(d), d]))('accept %s', (_, doc) => {
    expect(validateSchema(schema, doc)).toEqual([]);
    expect(validatorAccepts(doc)).toBe(true);
  });
  it.each(bad.map((d) => [JSON.stringify(d), d]))('reject %s', (_, doc) => {
    expect(validateSchema(schema, doc).length).toBeGreaterThan(0);
    expect(validatorAccepts(doc)).toBe(false);
  });
});
