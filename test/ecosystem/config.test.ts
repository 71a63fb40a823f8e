/**
 * loadConfig: layering (code > config file > environment), ${VAR}
 * interpolation, vendor proxy lists, validation errors that name the key
 * path and never print a password, and the serialized configuration a child
 * process receives.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, resolveConfig } from '../../src/config/load.js';
import { serializeConfig } from '../../src/config/serialize.js';
import { nodeOptionsWithRegister, registerEnvFor, registerPaths, splitNodeOptions } from '../../src/children/child-env.js';
import { ConfigError } from '../../src/errors.js';
import { isProxyEndpoint, type ProxyEndpoint } from '../../src/proxy/endpoint.js';
import { parseProxy } from '../../src/proxy/parse.js';
import { configErrorWithout } from './support/config-error.js';

const dir = mkdtempSync(join(tmpdir(), 'sp-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(content: unknown, name = `c${n++}.json`): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const SECRET = 'Sup3r-Secret-Pw';

const configError = (fn: () => unknown): ConfigError => configErrorWithout([SECRET], fn);

const urls = (spec: unknown): string[] => (spec as ProxyEndpoint[]).map((p) => p.url);

describe('layers', () => {
  it('reads accounts, the default proxy and options from a config file', () => {
    const configFile = file({
      proxy: 'http://10.0.0.1:3128',
      accounts: { alice: 'socks5h://a:pw@10.0.0.2:1080', bob: ['10.0.0.3:8080', 'http://10.0.0.4:8080'] },
      noProxy: ['internal.test'],
      strict: false,
      requireScope: true,
      tunnelSockets: false,
      env: false,
      strategy: 'random',
      idleTimeout: 1000,
    });
    const o = loadConfig({ configFile }, {});
    expect(urls(o.proxy)).toEqual(['http://10.0.0.1:3128']);
    expect(urls(o.accounts!.alice)).toEqual(['socks5h://a:***@10.0.0.2:1080']);
    expect(urls(o.accounts!.bob)).toEqual(['http://10.0.0.3:8080', 'http://10.0.0.4:8080']);
    expect((o.accounts!.alice as ProxyEndpoint[])[0]!.getPassword()).toBe('pw');
    expect(o).toMatchObject({ noProxy: ['internal.test'], strict: false, requireScope: true, tunnelSockets: false, env: false, strategy: 'random', idleTimeout: 1000 });
  });

  it('SESSION_PROXY_CONFIG names the file; options.configFile overrides it', () => {
    const a = file({ accounts: { alice: 'http://10.0.0.2:1' } });
    const b = file({ accounts: { bob: 'http://10.0.0.3:1' } });
    expect(Object.keys(loadConfig({}, { SESSION_PROXY_CONFIG: a }).accounts!)).toEqual(['alice']);
    expect(Object.keys(loadConfig({ configFile: b }, { SESSION_PROXY_CONFIG: a }).accounts!)).toEqual(['bob']);
  });

  it('code overrides the file per key, and per account name', () => {
    const configFile = file({ proxy: 'http://10.0.0.1:1', accounts: { alice: 'http://10.0.0.2:1', bob: 'http://10.0.0.3:1' }, strict: false });
    const o = loadConfig({ configFile, accounts: { bob: 'http://10.0.0.9:9', carol: 'http://10.0.0.4:1' }, strict: true }, {});
    expect(urls(o.proxy)).toEqual(['http://10.0.0.1:1']);
    expect(Object.keys(o.accounts!)).toEqual(['alice', 'bob', 'carol']);
    expect(urls(o.accounts!.bob)).toEqual(['http://10.0.0.9:9']);
    expect(o.strict).toBe(true);
  });

  it('the file overrides the environment; the environment fills the default proxy', () => {
    const env = { HTTPS_PROXY: 'http://10.9.9.9:1' };
    expect(urls(loadConfig({}, env).proxy)).toEqual(['http://10.9.9.9:1']);
    const configFile = file({ proxy: 'http://10.0.0.1:1' });
    expect(urls(loadConfig({ configFile }, env).proxy)).toEqual(['http://10.0.0.1:1']);
    expect(urls(loadConfig({ proxy: 'http://10.0.0.7:7', configFile }, env).proxy)).toEqual(['http://10.0.0.7:7']);
  });

  it('environment precedence: SESSION_PROXY_URL, GLOBAL_AGENT_*, https, http, all (lower case first)', () => {
    const all = {
      SESSION_PROXY_URL: 'http://10.0.0.1:1',
      GLOBAL_AGENT_HTTPS_PROXY: 'http://10.0.0.2:1',
      GLOBAL_AGENT_HTTP_PROXY: 'http://10.0.0.3:1',
      https_proxy: 'http://10.0.0.4:1',
      HTTPS_PROXY: 'http://10.0.0.5:1',
      http_proxy: 'http://10.0.0.6:1',
      HTTP_PROXY: 'http://10.0.0.7:1',
      all_proxy: 'socks5h://10.0.0.8:1',
      ALL_PROXY: 'socks5h://10.0.0.9:1',
    } as Record<string, string>;
    const order = Object.keys(all);
    for (let i = 0; i < order.length; i++) {
      const env = Object.fromEntries(order.slice(i).map((k) => [k, all[k]!]));
      const r = resolveConfig({}, env);
      expect(r.proxySource).toBe(order[i]);
      expect(urls(r.options.proxy)[0]).toBe(all[order[i]!]);
    }
    // Empty values count as unset.
    expect(urls(loadConfig({}, { SESSION_PROXY_URL: '', HTTP_PROXY: 'http://10.0.0.7:1' }).proxy)).toEqual(['http://10.0.0.7:1']);
    expect(loadConfig({}, {}).proxy).toBeUndefined();
  });

  it('GLOBAL_AGENT_NO_PROXY becomes noProxy (loopback kept) unless code or the file set one; NO_PROXY is left to the manager', async () => {
    const o = loadConfig({}, { GLOBAL_AGENT_HTTP_PROXY: 'http://10.0.0.3:1', GLOBAL_AGENT_NO_PROXY: '*.internal,10.0.0.0/8' });
    expect(o.noProxy).toEqual(['localhost', '127.0.0.0/8', '::1', '*.internal', '10.0.0.0/8']);
    expect(loadConfig({ noProxy: [] }, { GLOBAL_AGENT_NO_PROXY: 'x.test' }).noProxy).toEqual([]);
    expect(loadConfig({}, { HTTPS_PROXY: 'http://10.0.0.3:1', NO_PROXY: 'corp.test' }).noProxy).toBeUndefined();
    // Unreadable operator entries are not fatal (the manager skips them with a warning).
    expect(loadConfig({}, { NO_PROXY: 'http://x.test' }).noProxy).toBeUndefined();
    const warned: string[] = [];
    const onWarning = (w: Error): void => void warned.push(w.message);
    process.on('warning', onWarning);
    try {
      expect(loadConfig({}, { GLOBAL_AGENT_NO_PROXY: 'ok.test,http://bad.test' }).noProxy).toEqual(['localhost', '127.0.0.0/8', '::1', 'ok.test']);
      await new Promise((r) => setImmediate(r));
      expect(warned).toEqual(['ignoring GLOBAL_AGENT_NO_PROXY entries it cannot read: http://bad.test']);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('defaultProtocol applies to vendor lines of every layer', () => {
    const configFile = file({ defaultProtocol: 'socks5', accounts: { alice: '10.0.0.2:1080:u:p' } });
    const o = loadConfig({ configFile }, { SESSION_PROXY_URL: '10.0.0.1:1080' });
    expect(urls(o.accounts!.alice)).toEqual(['socks5://u:***@10.0.0.2:1080']);
    expect(urls(o.proxy)).toEqual(['socks5://10.0.0.1:1080']);
  });
});

describe('${VAR} interpolation', () => {
  it('substitutes variables in string values; $${ is a literal ${', () => {
    const configFile = file({ accounts: { alice: 'http://bot:${ALICE_PASS}@10.0.0.2:${PORT}' }, noProxy: 'a$${b}.test' });
    const o = loadConfig({ configFile }, { ALICE_PASS: SECRET, PORT: '3128' });
    const alice = (o.accounts!.alice as ProxyEndpoint[])[0]!;
    expect(alice.getPassword()).toBe(SECRET);
    expect(alice.port).toBe(3128);
    expect(o.noProxy).toBe('a${b}.test');
  });

  it('a missing variable is a ConfigError naming it and the key path', () => {
    const configFile = file({ accounts: { alice: ['http://10.0.0.1:1', 'http://bot:${ALICE_PASS}@10.0.0.2:1'] } });
    expect(configError(() => loadConfig({ configFile }, {})).message).toMatch(/^accounts\.alice\[1\]: environment variable ALICE_PASS is not set \(referenced as \$\{ALICE_PASS\}\)/);
  });

  it('an unterminated or invalid reference is an error', () => {
    expect(configError(() => loadConfig({ configFile: file({ proxy: 'http://${X@h:1' }) }, {})).message).toMatch(/^proxy: unterminated "\$\{"/);
    expect(configError(() => loadConfig({ configFile: file({ proxy: 'http://${1X}@h:1' }) }, {})).message).toMatch(/^proxy: invalid environment variable reference/);
  });

  it('an interpolated secret never appears in a later validation error', () => {
    const configFile = file({ accounts: { alice: 'ftp://bot:${P}@10.0.0.2:21' } });
    const err = configError(() => loadConfig({ configFile }, { P: SECRET }));
    expect(err.message).toContain('accounts.alice: unsupported proxy scheme "ftp"');
  });

  // Found by test/fuzz/config.test.ts: {"noProxy": "${SP_PASS}"} echoed the variable's value.
  it.each([
    [{ noProxy: '${P}' }, 'noProxy: invalid NO_PROXY entry (not shown: the value came from an environment variable): "*" is only supported'],
    [{ noProxy: ['localhost', 'x${P}'] }, 'noProxy: invalid NO_PROXY entry (not shown: the value came from an environment variable): "*" is only supported'],
    [{ noProxy: 'ok.test, ${P}:0' }, 'noProxy: invalid NO_PROXY entry (not shown: the value came from an environment variable): port must be'],
  ])('an interpolated NO_PROXY entry is not shown when it is invalid (%j)', (doc, message) => {
    const err = configError(() => loadConfig({ configFile: file(doc) }, { P: `a*${SECRET}` }));
    expect(err.message).toContain(message);
  });

  it('a NO_PROXY entry written out is still shown', () => {
    expect(configError(() => loadConfig({ configFile: file({ noProxy: 'ok.test, bad*entry' }) }, {})).message).toContain('invalid NO_PROXY entry "bad*entry"');
  });
});

describe('vendor proxy lists', () => {
  const list = file(['# vendor export', '', 'http://u1:pw1@10.1.0.1:8000', '10.1.0.2:8001', '10.1.0.3:8002:user3:p:a:ss', '  # indented comment', 'socks5h://10.1.0.4:1080', ''].join('\n'), 'vendor.txt');

  it('proxyList files (relative to the config file) fill the default pool and accounts', () => {
    const configFile = file({ proxy: 'http://10.0.0.1:1', proxyList: 'vendor.txt', accounts: { alice: { proxyList: ['vendor.txt'] }, bob: { proxies: 'http://10.0.0.3:1', proxyList: './vendor.txt' } } });
    const o = loadConfig({ configFile }, {});
    const expected = ['http://u1:***@10.1.0.1:8000', 'http://10.1.0.2:8001', 'http://user3:***@10.1.0.3:8002', 'socks5h://10.1.0.4:1080'];
    expect(urls(o.proxy)).toEqual(['http://10.0.0.1:1', ...expected]);
    expect(urls(o.accounts!.alice)).toEqual(expected);
    expect(urls(o.accounts!.bob)).toEqual(['http://10.0.0.3:1', ...expected]);
    expect((o.accounts!.alice as ProxyEndpoint[])[2]!.getPassword()).toBe('p:a:ss');
  });

  it('vendor lines use defaultProtocol', () => {
    const o = loadConfig({ configFile: file({ defaultProtocol: 'socks5h', accounts: { alice: { proxyList: list } } }) }, {});
    expect(urls(o.accounts!.alice)[1]).toBe('socks5h://10.1.0.2:8001');
  });

  it('a bad line is named by file and line, without its password', () => {
    const bad = file(`10.1.0.1:8000\n10.1.0.2:notaport:user:${SECRET}\n`, 'bad.txt');
    const err = configError(() => loadConfig({ configFile: file({ accounts: { alice: { proxyList: 'bad.txt' } } }) }, {}));
    expect(err.message).toMatch(/^accounts\.alice\.proxyList: bad\.txt line 2: /);
    expect(bad).toBeTruthy();
  });

  it('a missing or empty list file is an error', () => {
    expect(configError(() => loadConfig({ configFile: file({ proxyList: 'nope.txt' }) }, {})).message).toMatch(/^proxyList: nope\.txt: file not found/);
    file('# nothing\n\n', 'empty.txt');
    expect(configError(() => loadConfig({ configFile: file({ accounts: { a: { proxyList: 'empty.txt' } } }) }, {})).message).toMatch(/^accounts\.a\.proxyList: empty\.txt: no proxies in the file/);
  });
});

describe('validation', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['scheme', { accounts: { alice: ['http://10.0.0.1:1', `ftp://u:${SECRET}@10.0.0.2:21`] } }, /^accounts\.alice\[1\]: unsupported proxy scheme "ftp" .*expected scheme:\/\/\[user:pass@\]host:port with scheme http, https, socks4, socks4a, socks5, socks5h/],
    ['missing port', { proxy: `10.0.0.1` }, /^proxy: missing port/],
    ['boolean', { strict: 'yes' }, /^strict: expected true or false, got a string/],
    ['unknown key', { stirct: true }, /^stirct: unknown key \(did you mean "strict"\?\)/],
    ['empty pool', { accounts: { alice: [] } }, /^accounts\.alice: expected at least one proxy, got an empty array/],
    ['reserved', { accounts: { default: 'http://10.0.0.1:1' } }, /^accounts\.default: the account name "default" is reserved/],
    ['protocol', { defaultProtocol: 'gopher' }, /^defaultProtocol: expected one of http, https, socks4, socks4a, socks5, socks5h, got "gopher"/],
    ['noProxy', { noProxy: 5 }, /^noProxy: expected a comma-separated string or an array of strings, got a number/],
    ['noProxy entry', { noProxy: ['ok.test', '10.0.0.0/99'] }, /^noProxy: invalid NO_PROXY entry "10\.0\.0\.0\/99"/],
    ['account object', { accounts: { alice: { proxys: 'http://10.0.0.1:1' } } }, /^accounts\.alice\.proxys: unknown key \(did you mean "proxies"\?\)/],
    ['proxy object key', { proxy: { url: 'http://10.0.0.1:1', pasword: SECRET } }, /^proxy\.pasword: unknown key \(did you mean "password"\?\)/],
    ['proxy object url', { proxy: { password: SECRET } }, /^proxy\.url: expected a proxy URL string, got nothing \(a proxy object needs "url"\)/],
    ['pass-through type', { idleTimeout: -1 }, /^idleTimeout: expected a number of milliseconds >= 0, got a number/],
    ['not an object', ['http://10.0.0.1:1'], /^the configuration must be a JSON object, got an array/],
    ['tls', { proxy: { url: 'https://10.0.0.1:1', tls: { ca: 5 } } }, /^proxy\.tls\.ca: expected a PEM certificate string or an array of them, got a number/],
    ['accounts type', { accounts: 'alice' }, /^accounts: expected an object mapping account names to proxies, got a string/],
    ['odd account name', { accounts: { 'my bot': 'ftp://10.0.0.1:1' } }, /^accounts\["my bot"\]: unsupported proxy scheme "ftp"/],
  ];
  it.each(bad)('%s', (_, doc, message) => {
    const configFile = file(doc);
    const err = configError(() => loadConfig({ configFile }, {}));
    expect(err.message).toMatch(message);
    expect(err.message).toContain(`(in config file ${configFile})`);
    expect(err.code).toBe('SP_ERR_CONFIG');
  });

  it('invalid JSON is reported with its position, never its text', () => {
    const configFile = file(`{\n  "proxy": "http://u:${SECRET}@10.0.0.1:1",\n  oops\n}`);
    const err = configError(() => loadConfig({ configFile }, {}));
    expect(err.message).toMatch(/invalid JSON/);
  });

  it('a missing config file names the variable it came from', () => {
    expect(configError(() => loadConfig({}, { SESSION_PROXY_CONFIG: join(dir, 'missing.json') })).message).toMatch(/: file not found \(in config file .*missing\.json \(from SESSION_PROXY_CONFIG\)\)$/);
  });

  it('options in code are validated with the same key paths', () => {
    expect(configError(() => loadConfig({ accounts: { alice: ['http://10.0.0.1:1', `ftp://u:${SECRET}@h:1`] } }, {})).message).toMatch(/^accounts\.alice\[1\]: unsupported proxy scheme "ftp" .*\(in options\)$/);
    expect(configError(() => loadConfig({ strict: 1 as unknown as boolean }, {})).message).toMatch(/^strict: expected true or false, got a number \(in options\)$/);
    expect(configError(() => loadConfig({ strategy: 5 as never }, {})).message).toMatch(/^strategy: expected one of round-robin, random, least-used, healthiest, got a number/);
    expect(configError(() => loadConfig({ accounts: { default: 'http://10.0.0.1:1' } }, {})).message).toMatch(/^accounts\.default: the account name "default" is reserved/);
  });

  it('options in code may be URL objects and ProxyEndpoints; unknown keys are errors', () => {
    const ep = parseProxy(`http://u:${SECRET}@10.0.0.5:1`);
    const o = loadConfig({ accounts: { alice: new URL('http://10.0.0.4:1'), bob: ep }, requestTls: { rejectUnauthorized: false } }, {});
    expect(urls(o.accounts!.alice)).toEqual(['http://10.0.0.4:1']);
    expect((o.accounts!.bob as ProxyEndpoint[])[0]).toBe(ep);
    expect(o.requestTls).toEqual({ rejectUnauthorized: false });
    expect(configError(() => loadConfig({ future: 1 } as never, {})).message).toMatch(/^future: unknown key \(expected one of proxy, accounts, .*\) \(in options\)$/);
  });

  // Found by test/fuzz/config.test.ts: "did you mean" compared a long unknown key with
  // every known key, quadratically (a 200 KB key took 14 s).
  it('a very long unknown key is refused at once, without a suggestion', () => {
    const t0 = performance.now();
    const err = configError(() => loadConfig({ ['x'.repeat(200_000)]: 1 } as never, {}));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.message).toMatch(/^x{200000}: unknown key \(expected one of proxy, /);
    // Near misses still get one.
    expect(configError(() => loadConfig({ requireScopee: true } as never, {})).message).toMatch(/^requireScopee: unknown key \(did you mean "requireScope"\?\)/);
  });

  // Found by test/fuzz/config.test.ts: 5 000 levels of nesting were a RangeError (stack overflow).
  it('nesting deeper than any configuration is a ConfigError, in a file, in the JSON variable and in code', () => {
    const deep = (d: number) => `${'['.repeat(d)}${']'.repeat(d)}`;
    expect(configError(() => loadConfig({ configFile: file(`{"health": ${deep(20_000)}}`) }, {})).message).toMatch(/^health(\[0\]){63}: nested more than 64 levels deep \(in config file /);
    expect(configError(() => loadConfig({}, { SESSION_PROXY_CONFIG_JSON: `{"accounts": {"a": ${'{"proxies":'.repeat(5000)}1${'}'.repeat(5000)}}}` })).message).toMatch(/: nested more than 64 levels deep \(in SESSION_PROXY_CONFIG_JSON\)$/);
    let o: unknown = 1;
    for (let i = 0; i < 10_000; i++) o = { a: o };
    expect(configError(() => loadConfig({ requestTls: o } as never, {})).message).toMatch(/^requestTls(\.a){63}: nested more than 64 levels deep \(in options\)$/);
    // A realistic depth is fine.
    expect(loadConfig({ configFile: file({ accounts: { a: { proxies: [{ url: 'https://10.0.0.1:1', tls: { ca: ['PEM'] } }] } } }) }, {}).accounts).toBeDefined();
  });

  it('an invalid environment proxy names the variable', () => {
    expect(configError(() => loadConfig({}, { HTTPS_PROXY: `ftp://u:${SECRET}@10.0.0.1:1` })).message).toMatch(/^HTTPS_PROXY: unsupported proxy scheme "ftp" .*\(in environment\)$/);
  });
});

describe('SESSION_PROXY_CONFIG_JSON (a parent process’s configuration)', () => {
  const options = {
    proxy: ['http://10.0.0.1:1'],
    accounts: {
      alice: [`socks5h://bot:${SECRET}@10.0.0.2:1080`, { url: 'https://10.0.0.3:443', username: 'x', password: 'p${w}', label: 'backup', connectTimeout: 500, tls: { ca: 'PEM', rejectUnauthorized: false } }],
      bob: 'http://10.0.0.4:1',
    },
    noProxy: ['localhost'],
    strict: false,
    strategy: 'random',
    healthCheck: { interval: 1000 },
    requestTls: { ca: Buffer.from('CA') },
  };

  it('round-trips through loadConfig with passwords, labels and TLS, and replaces the file and environment layers', () => {
    const json = serializeConfig(options as never);
    const o = loadConfig({}, { SESSION_PROXY_CONFIG_JSON: json, HTTPS_PROXY: 'http://10.9.9.9:9', SESSION_PROXY_CONFIG: join(dir, 'missing.json') });
    expect(urls(o.proxy)).toEqual(['http://10.0.0.1:1']);
    const alice = o.accounts!.alice as ProxyEndpoint[];
    expect(alice.map((p) => p.identityKey)).toEqual(options.accounts.alice.map((p) => parseProxy(p).identityKey));
    expect(alice[1]!.getPassword()).toBe('p${w}');
    expect(alice[1]).toMatchObject({ label: 'backup', connectTimeout: 500, tls: { ca: 'PEM', rejectUnauthorized: false } });
    expect(o).toMatchObject({ noProxy: ['localhost'], strict: false, strategy: 'random', healthCheck: { interval: 1000 }, requestTls: { ca: 'CA' } });
    expect(isProxyEndpoint(alice[0])).toBe(true);
  });

  it('puts each pool’s active proxy first, and has no size cap (it goes to a file, not the environment)', () => {
    const active = parseProxy(options.accounts.alice[1]!);
    const doc = JSON.parse(serializeConfig(options as never, { active: (pool) => (pool === 'alice' ? active : undefined) }));
    expect(doc.accounts.alice[0].url).toBe('https://10.0.0.3:443');
    const many = { accounts: { alice: 'http://10.0.0.2:1', big: Array.from({ length: 5000 }, (_, i) => `http://u:${SECRET}@10.${i >> 8}.${i & 255}.1:8080`) } };
    expect(JSON.parse(serializeConfig(many)).accounts.big).toHaveLength(5000);
  });

  it('registerEnvFor sets NODE_OPTIONS (once), the account and a pointer to the route’s configuration', () => {
    const { cjs } = registerPaths();
    const env = registerEnvFor('alice', options as never, { NODE_OPTIONS: '--enable-source-maps', KEEP: '1', SESSION_PROXY_CONFIG_JSON: '{}' });
    expect(env.KEEP).toBe('1');
    expect(env.SESSION_PROXY_ACCOUNT).toBe('alice');
    expect(env.SESSION_PROXY_CONFIG_JSON).toBeUndefined();
    expect(splitNodeOptions(env.NODE_OPTIONS!)).toEqual(['--enable-source-maps', '--require', cjs]);
    const again = registerEnvFor('bob', options as never, env);
    expect(splitNodeOptions(again.NODE_OPTIONS!)).toEqual(['--enable-source-maps', '--require', cjs]);
    expect(again.SESSION_PROXY_ACCOUNT).toBe('bob');
    expect(registerEnvFor(undefined, options as never, again).SESSION_PROXY_ACCOUNT).toBeUndefined();
    expect(Object.values(env).join('\n')).not.toContain(SECRET);
    const doc = JSON.parse(readFileSync(env.SESSION_PROXY_CONFIG_REF!, 'utf8'));
    expect(Object.keys(doc.accounts)).toEqual(['alice']);
    expect(doc.proxy).toBeUndefined();
    expect(doc.requireScope).toBe(true);
    expect(doc.accounts.alice[0]).toMatchObject({ password: SECRET });
    const all = JSON.parse(readFileSync(registerEnvFor('alice', options as never, {}, { childConfig: 'all' }).SESSION_PROXY_CONFIG_REF!, 'utf8'));
    expect(Object.keys(all.accounts)).toEqual(['alice', 'bob']);
    expect(all.proxy).toBe('http://10.0.0.1:1');
  });

  it('NODE_OPTIONS: other references to the preload are replaced; paths with spaces are quoted', () => {
    const { cjs } = registerPaths();
    expect(splitNodeOptions(nodeOptionsWithRegister('--import session-proxy/register --trace-warnings -r session-proxy/register'))).toEqual(['--trace-warnings', '--require', cjs]);
    expect(splitNodeOptions(nodeOptionsWithRegister(`--require=${cjs} --import "/a b/x.mjs"`))).toEqual(['--import', '/a b/x.mjs', '--require', cjs]);
    expect(nodeOptionsWithRegister(undefined)).toBe(`--require ${/\s/.test(cjs) ? JSON.stringify(cjs) : cjs}`);
  });
});
