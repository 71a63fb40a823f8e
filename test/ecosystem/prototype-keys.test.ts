/**
 * `__proto__`, `constructor` and `prototype` are refused as a key anywhere —
 * options in code, a config file, SESSION_PROXY_CONFIG_JSON, account names
 * (`accounts` keys, setAccount) — with a ConfigError naming the key path, in
 * the parent, in a child process and in a Worker. The attack this closes: a
 * config file's `{"__proto__": {"strict": false}}` became the prototype of
 * the interpolated document, passed the unknown-key check, and turned strict
 * off (an un-scoped request went direct under requireScope).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { serializeConfig } from '../../src/config/serialize.js';
import { registerEnvFor, registerPaths } from '../../src/children/child-env.js';
import { workerOptionsFor } from '../../src/children/worker.js';
import { ConfigError } from '../../src/errors.js';
import { SessionProxyManager } from '../../src/manager.js';
import { startEchoServer, startMockProxy, type EchoServer, type MockProxy } from '../../src/testing/index.js';
import { cleanEnv, lastJson, needsDist, root, run } from './support/run.js';
import { configErrorWithout } from './support/config-error.js';

const SECRET = 'Pr0to-S3cret';
const app = join(root, 'test/ecosystem/fixtures/unscoped-fetch.mjs');
const FORBIDDEN = /"(__proto__|constructor|prototype)" is not allowed as a key or account name/;

let dir: string;
let n = 0;
/** A config file with exactly this JSON text (an object literal cannot hold an own "__proto__" key). */
function file(text: string): string {
  const path = join(dir, `c${n++}.json`);
  writeFileSync(path, text);
  return path;
}

const configError = (fn: () => unknown): ConfigError => configErrorWithout([SECRET], fn);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sp-proto-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config file', () => {
  it('{"__proto__": {"strict": false}} is a ConfigError, not options', () => {
    const configFile = file(`{"accounts": {"alice": "http://u:${SECRET}@10.0.0.1:1"}, "requireScope": true, "__proto__": {"strict": false}}`);
    const err = configError(() => loadConfig({ configFile }, {}));
    expect(err.message).toMatch(/^__proto__: "__proto__" is not allowed as a key or account name .*\(in config file /);
  });

  it('{"__proto__": {"noProxy": "*"}} likewise', () => {
    const configFile = file(`{"proxy": "http://10.0.0.1:1", "__proto__": {"noProxy": "*"}}`);
    expect(configError(() => loadConfig({ configFile }, {})).message).toMatch(/^__proto__: /);
  });

  it.each([
    ['accounts.__proto__', `{"accounts": {"__proto__": "http://u:${SECRET}@10.0.0.1:1"}}`],
    ['accounts.constructor', `{"accounts": {"constructor": "http://10.0.0.1:1"}}`],
    ['accounts.prototype', `{"accounts": {"prototype": "http://10.0.0.1:1"}}`],
    ['health.constructor', `{"proxy": "http://10.0.0.1:1", "health": {"constructor": {"threshold": 1}}}`],
    ['proxy.tls.__proto__', `{"proxy": {"url": "https://10.0.0.1:1", "tls": {"__proto__": {"rejectUnauthorized": false}}}}`],
    ['accounts.alice[1].__proto__', `{"accounts": {"alice": ["http://10.0.0.1:1", {"url": "http://10.0.0.2:1", "__proto__": {"password": "${SECRET}"}}]}}`],
  ])('%s anywhere is named by its key path', (path, text) => {
    expect(configError(() => loadConfig({ configFile: file(text) }, {})).message).toMatch(new RegExp(`^${path.replace(/[.[\]]/g, '\\$&')}: ${FORBIDDEN.source}`));
  });
});

describe('SESSION_PROXY_CONFIG_JSON', () => {
  it.each([
    ['__proto__', '{"__proto__": {"strict": false}}'],
    ['accounts.__proto__', '{"accounts": {"__proto__": "http://10.0.0.1:1"}}'],
    ['healthCheck.prototype', '{"proxy": "http://10.0.0.1:1", "healthCheck": {"prototype": {}}}'],
  ])('%s is refused by its key path', (path, json) => {
    const err = configError(() => loadConfig({}, { SESSION_PROXY_CONFIG_JSON: json }));
    expect(err.message).toMatch(new RegExp(`^${path.replace(/\./g, '\\.')}: ${FORBIDDEN.source}.*\\(in SESSION_PROXY_CONFIG_JSON\\)$`));
  });
});

describe('options in code', () => {
  it('a __proto__ key in an object literal (it sets the prototype) is refused, as is an own one', () => {
    const attack = { accounts: { alice: 'http://10.0.0.1:1' }, requireScope: true, __proto__: { strict: false } };
    expect(configError(() => loadConfig(attack as never, {})).message).toMatch(/^__proto__: "__proto__" is not allowed .*\(in options\)$/);
    expect(configError(() => new SessionProxyManager(attack as never)).message).toMatch(/^__proto__: /);
    const own = JSON.parse('{"proxy": "http://10.0.0.1:1", "__proto__": {"noProxy": "*"}}');
    expect(configError(() => new SessionProxyManager(own)).message).toMatch(/^__proto__: /);
    expect(configError(() => new SessionProxyManager({ proxy: 'http://10.0.0.1:1', health: { __proto__: { threshold: 1 } } as never })).message).toMatch(/^health\.__proto__: /);
  });

  it('an account named __proto__, constructor or prototype is refused by the manager (it used to work in the parent)', () => {
    for (const name of ['__proto__', 'constructor', 'prototype']) {
      const accounts = { [name]: `http://u:${SECRET}@10.0.0.1:1` };
      expect(Object.keys(accounts)).toEqual([name]);
      expect(configError(() => new SessionProxyManager({ accounts })).message).toMatch(new RegExp(`^accounts\\.${name}: "${name}" is not allowed .*\\(in options\\)$`));
    }
  });

  it('setAccount(name) refuses them too', () => {
    const m = new SessionProxyManager({ accounts: { alice: 'http://10.0.0.1:1' } });
    for (const name of ['__proto__', 'constructor', 'prototype']) {
      expect(configError(() => m.setAccount(name, `http://u:${SECRET}@10.0.0.2:1`)).message).toMatch(new RegExp(`^accounts\\.${name}: .*\\(in setAccount\\(\\)\\)$`));
    }
    expect(m.accountNames()).toEqual(['alice']);
  });

  it('registerEnvFor / workerOptionsFor / serializeConfig refuse them before a child or Worker would die at start-up', () => {
    const config = { accounts: { ['__proto__']: 'http://10.0.0.1:1', alice: 'http://10.0.0.2:1' } };
    expect(configError(() => serializeConfig(config)).message).toMatch(/^accounts\.__proto__: /);
    if (needsDist) return;
    expect(configError(() => registerEnvFor('__proto__', config, cleanEnv())).message).toMatch(/^accounts\.__proto__: /);
    expect(configError(() => workerOptionsFor('alice', {}, config)).message).toMatch(/^accounts\.__proto__: /);
  });
});

describe.skipIf(needsDist)('in a child process and a Worker', () => {
  let echo: EchoServer;
  let alice: MockProxy;
  beforeAll(async () => {
    echo = await startEchoServer();
    alice = await startMockProxy({ egressIp: '127.0.0.2' });
  });
  afterAll(async () => {
    await Promise.all([echo?.close(), alice?.close()]);
  });

  it('an un-scoped request under requireScope stays refused: the attack stops the preload, nothing goes direct', async () => {
    const base = JSON.stringify({ accounts: { alice: alice.url }, requireScope: true, noProxy: [] });
    // Without the attack, the preload installs and the un-scoped request is refused (strict).
    const plain = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env: cleanEnv({ SESSION_PROXY_CONFIG: file(base) }) });
    expect(plain.code, plain.stderr).toBe(0);
    expect(lastJson(plain)).toEqual({ refused: 'SP_ERR_LEAK_BLOCKED' });
    // With it, the configuration is refused: the app never runs, the echo server sees nothing.
    const attack = file(`${base.slice(0, -1)}, "__proto__": {"strict": false}}`);
    const before = echo.requests.length;
    const r = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env: cleanEnv({ SESSION_PROXY_CONFIG: attack }) });
    expect(r.stdout, 'the app ran').toBe('');
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^session-proxy\/register: ConfigError: __proto__: "__proto__" is not allowed as a key/);
    expect(echo.requests.length).toBe(before);
  });

  it('a child whose SESSION_PROXY_CONFIG_JSON names an account __proto__ stops with the key path', async () => {
    const env = cleanEnv({ SESSION_PROXY_CONFIG_JSON: JSON.stringify({ accounts: JSON.parse(`{"__proto__": ${JSON.stringify(alice.url)}}`) }), SESSION_PROXY_ACCOUNT: '__proto__' });
    expect(env.SESSION_PROXY_CONFIG_JSON).toContain('"__proto__"');
    const r = await run(['-r', 'session-proxy/register', app, echo.httpUrl], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^session-proxy\/register: ConfigError: accounts\.__proto__: "__proto__" is not allowed .*\(in SESSION_PROXY_CONFIG_JSON\)$/);
  });

  it('a Worker likewise gets the ConfigError naming the key path', async () => {
    const error = await new Promise<Error>((resolve, reject) => {
      const worker = new Worker(new URL(`file://${app}`), {
        execArgv: ['--require', registerPaths().cjs],
        env: { SESSION_PROXY_CONFIG_JSON: `{"accounts": {"__proto__": ${JSON.stringify(alice.url)}}}`, SESSION_PROXY_ACCOUNT: '__proto__' },
        workerData: { base: echo.httpUrl },
      });
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error('worker timed out'));
      }, 15_000);
      worker.once('error', (e) => {
        clearTimeout(timer);
        resolve(e);
      });
      worker.once('message', (m) => {
        clearTimeout(timer);
        reject(new Error(`the worker ran: ${JSON.stringify(m)}`));
      });
    });
    expect(error.message).toMatch(/^accounts\.__proto__: "__proto__" is not allowed .*\(in SESSION_PROXY_CONFIG_JSON\)$/);
  });
});
