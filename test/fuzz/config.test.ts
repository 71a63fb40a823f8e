/**
 * Fuzzing the config loader: config files (written to a temp file and read
 * by loadConfig, with ${VAR} interpolation and proxyList files), the
 * serialized SESSION_PROXY_CONFIG_JSON, and options given in code. Random
 * documents, mutated valid ones (JSON text edits, `__proto__` /
 * `constructor` keys, deep nesting) and structured ones with a password
 * planted where passwords go — in proxy URLs, vendor lines, `password`
 * fields, and as `${SP_PASS}` in any value — give options or a ConfigError,
 * nothing else, and the password shows in no message.
 */
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, it } from 'vitest';
import { checkOptions, loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseProxy } from '../../src/proxy/parse.js';
import { budget, expectNoSecret, expectTyped, fuzz, mutatedString, nastyText, reportAfterAll, secretForms } from './support.js';

reportAfterAll('config');

// `*` and `/` make it an invalid NO_PROXY entry, `:` and `@` an odd proxy: each would be echoed if anything echoed it.
const SECRET = 'Cfg*Zq9/S3cr3t:@x';
const FORMS = secretForms(SECRET);
const ENV = { SP_PASS: SECRET, SP_USER: 'bot', SP_EMPTY: '', SP_HOST: '10.0.0.1', SP_PORT: '3128' };

const dir = mkdtempSync(join(tmpdir(), 'sp-fuzz-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LISTS: Record<string, string> = {
  'list.txt': `# vendor export\nhttp://u1:pw1@10.1.0.1:8000\n10.1.0.2:8001\n10.1.0.3:8002:user3:${SECRET}\n`,
  'bad-list.txt': `10.1.0.1:8000\n10.1.0.2:notaport:user:${SECRET}\nftp://u:${SECRET}@h:1\n`,
  'empty.txt': '# nothing\n\n',
  'ca.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};
for (const [name, text] of Object.entries(LISTS)) writeFileSync(join(dir, name), text);
mkdirSync(join(dir, 'subdir'));
const FILE_NAMES = [...Object.keys(LISTS), 'subdir', 'missing.txt', './list.txt', ''];
let n = 0;

// ---------------------------------------------------------------------------
// A JSON AST, so that documents can hold own "__proto__" keys and duplicates.
// ---------------------------------------------------------------------------
type J = null | boolean | number | string | J[] | { obj: Array<[string, J]> } | { raw: string };
const obj = (...entries: Array<[string, J]>): J => ({ obj: entries });

function text(j: J): string {
  if (j !== null && typeof j === 'object' && 'raw' in j) return j.raw;
  if (j !== null && typeof j === 'object' && !Array.isArray(j)) return `{${j.obj.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`;
  if (Array.isArray(j)) return `[${j.map(text).join(',')}]`;
  return JSON.stringify(j) ?? 'null';
}

/** Keeps `proxyList` / `caFile` inside the temp dir: a fuzzed path must never name /dev/stdin and the like. */
function sanitize(v: unknown, key = ''): unknown {
  const safe = (s: unknown): unknown => (typeof s === 'string' && (isAbsolute(s) || s.includes('..') || s.startsWith('~')) ? `x${s.replace(/[/\\.~]/g, '_')}` : s);
  if (key === 'proxyList' || key === 'caFile') return Array.isArray(v) ? v.map(safe) : safe(v);
  if (Array.isArray(v)) return v.map((e) => sanitize(e));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: sanitize((v as Record<string, unknown>)[k], k), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
}

/** Document text as it goes into a file: paths sanitized when it is JSON at all, byte for byte otherwise. */
function fileText(raw: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return raw;
  }
  let clean: string;
  try {
    clean = JSON.stringify(sanitize(doc));
  } catch {
    // Too deep for the (recursive) sanitizer: no file key may be read from it at all.
    return raw.replace(/proxyList|caFile/g, 'fileKey');
  }
  return clean === JSON.stringify(doc) ? raw : clean;
}

type Channel = 'file' | 'json-env';

/** Loads a document the way a process would; returns the options or the (checked) ConfigError. */
function load(raw: string, channel: Channel, what: string): ConfigError | undefined {
  const body = fileText(raw);
  try {
    if (channel === 'file') {
      const configFile = join(dir, `c${n++ % 64}.json`);
      writeFileSync(configFile, body);
      loadConfig({ configFile }, { ...ENV });
    } else {
      // The child's channel: not interpolated, relative paths against the working directory.
      loadConfig({}, { ...ENV, SESSION_PROXY_CONFIG_JSON: body });
    }
  } catch (err) {
    expectTyped(err, [ConfigError], `${what} via ${channel}`);
    return err as ConfigError;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------
const scalar: fc.Arbitrary<J> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0, -1, 1e21, 3128, 65536)),
  fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('', ' ', '${SP_PASS}', '${SP_EMPTY}', '${NOPE}', '$${x}', '${', 'http://10.0.0.1:1', 'round-robin', 'socks5', 'true')),
);
/** Nesting far deeper than any configuration (arrays, objects, proxy objects). */
const deep: fc.Arbitrary<J> = fc
  .tuple(fc.constantFrom(70, 5000), fc.constantFrom('[', '{"a":', '{"proxies":', '{"url":"h:1","tls":'))
  .map(([d, open]) => ({ raw: `${open.repeat(d)}${open === '[' ? '' : '1'}${(open === '[' ? ']' : '}').repeat(d)}` }));
/** Mostly a scalar, now and then far too deep. */
const scalarOrDeep: fc.Arbitrary<J> = fc.oneof({ weight: 12, arbitrary: scalar }, { weight: 1, arbitrary: deep });
const anyJson: fc.Arbitrary<J> = fc.letrec<{ v: J }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarOrDeep,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'url', 'proxies', 'password')), tie('v')), { maxLength: 3 }).map((e) => ({ obj: e })),
  ),
})).v;

/** A proxy with the password where passwords go: a URL's password, a vendor line's fourth field, `password`. */
const plantedProxy: fc.Arbitrary<J> = fc.oneof(
  fc.constantFrom(
    `http://bot:${SECRET}@10.0.0.1:3128`,
    'http://bot:${SP_PASS}@10.0.0.1:3128',
    'socks5h://${SP_USER}:${SP_PASS}@${SP_HOST}:1080',
    `10.0.0.2:8080:bot:${SECRET}`,
    '10.0.0.2:8080:bot:${SP_PASS}',
    `ftp://bot:${SECRET}@10.0.0.1:21`,
    'http://bot:${SP_PASS}@10.0.0.1:99999',
    'http://bot:${SP_PASS}@10.0.0.1:1/path',
    `h:notaport:bot:${SECRET}`,
    'http://bot:${SP_PASS}@[::1',
  ),
  fc
    .record({
      url: fc.constantFrom('http://bot@10.0.0.1:1', 'https://10.0.0.1:443', 'socks5://u:${SP_PASS}@h:1', 'ftp://h', 'h:1', '', 'http://h:0'),
      password: fc.constantFrom(SECRET, '${SP_PASS}', `${SECRET}\n`),
      username: fc.oneof(fc.constant('bot'), scalar),
      label: scalar,
      connectTimeout: scalar,
      tls: fc.oneof(scalar, fc.record({ ca: fc.oneof(scalar, fc.constant('${SP_PASS}')), caFile: fc.constantFrom(...FILE_NAMES), rejectUnauthorized: scalar, servername: fc.oneof(scalar, fc.constant('${SP_PASS}')) }, { requiredKeys: [] }).map((r) => obj(...(Object.entries(r) as Array<[string, J]>)))),
    }, { requiredKeys: ['url', 'password'] })
    .map((r) => obj(...(Object.entries(r) as Array<[string, J]>))),
);
const pool: fc.Arbitrary<J> = fc.oneof(plantedProxy, fc.array(plantedProxy, { maxLength: 3 }), scalarOrDeep);
/** Where `${SP_PASS}` must never be echoed: values the validator checks and names the problem of. */
const secretValue: fc.Arbitrary<J> = fc.constantFrom('${SP_PASS}', 'x${SP_PASS}', '${SP_PASS}.example', '${SP_PASS}, localhost');

const FIELD: Record<string, fc.Arbitrary<J>> = {
  $schema: fc.oneof(scalar, secretValue),
  proxy: pool,
  proxyList: fc.oneof(fc.constantFrom(...FILE_NAMES), fc.array(fc.constantFrom(...FILE_NAMES), { maxLength: 2 })),
  accounts: fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom('alice', 'bob', 'default', '', '__proto__', 'constructor', 'prototype', 'my bot'), fc.string({ maxLength: 6 })),
        fc.oneof(pool, fc.record({ proxies: pool, proxyList: fc.constantFrom(...FILE_NAMES) }, { requiredKeys: [] }).map((r) => obj(...(Object.entries(r) as Array<[string, J]>)))),
      ),
      { maxLength: 3 },
    )
    .map((e) => ({ obj: e })),
  noProxy: fc.oneof(scalar, secretValue, fc.array(fc.oneof(fc.constantFrom('localhost', '10.0.0.0/8', '*.internal', 'bad*entry'), secretValue), { maxLength: 3 })),
  strict: fc.oneof(scalar, secretValue),
  requireScope: scalar,
  tunnelSockets: scalar,
  env: scalar,
  defaultProtocol: fc.oneof(scalar, secretValue, fc.constantFrom('http', 'socks5h', 'socks9')),
  requestTls: fc.oneof(scalarOrDeep, fc.record({ ca: fc.oneof(scalar, secretValue), caFile: fc.constantFrom(...FILE_NAMES), rejectUnauthorized: fc.oneof(scalar, secretValue), servername: fc.oneof(scalar, secretValue), key: scalar }, { requiredKeys: [] }).map((r) => obj(...(Object.entries(r) as Array<[string, J]>)))),
  strategy: fc.oneof(scalar, secretValue),
  balance: fc.oneof(scalar, secretValue),
  exclusive: scalar,
  failover: scalar,
  health: fc.oneof(scalarOrDeep, fc.record({ threshold: fc.oneof(scalar, secretValue), windowMs: scalar, cooldownMs: scalar, maxCooldownMs: scalar }, { requiredKeys: [] }).map((r) => obj(...(Object.entries(r) as Array<[string, J]>)))),
  healthCheck: fc.oneof(scalar, fc.record({ interval: scalar, timeout: fc.oneof(scalar, secretValue), url: fc.oneof(scalar, secretValue) }, { requiredKeys: [] }).map((r) => obj(...(Object.entries(r) as Array<[string, J]>)))),
  egressEndpoints: fc.oneof(scalar, fc.array(fc.oneof(scalar, secretValue), { maxLength: 3 })),
  verifyOnStart: scalar,
  verifyOnRotate: scalar,
  verifyEvery: fc.oneof(scalar, secretValue),
  onMismatch: fc.oneof(scalar, secretValue),
  idleTimeout: scalar,
  drainTimeout: scalar,
  // Not keys: typos, prototype keys, nonsense.
  strcit: scalar,
  ['__proto__']: fc.oneof(scalar, fc.constant(obj(['strict', false]))),
  constructor: scalar,
  [`k${SECRET.length}`]: scalar,
};
const KEYS = Object.keys(FIELD);

/** A config document: a few top-level keys (any order, repeats allowed), each with a value of its kind. */
const document: fc.Arbitrary<J> = fc
  .array(fc.constantFrom(...KEYS).chain((k) => FIELD[k]!.map((v) => [k, v] as [string, J])), { minLength: 1, maxLength: 6 })
  .map((entries) => ({ obj: entries }));

// Valid documents (from test/ecosystem/config.test.ts), as text for the mutators.
const CORPUS = [
  { proxy: 'http://10.0.0.1:3128', accounts: { alice: 'socks5h://a:pw@10.0.0.2:1080', bob: ['10.0.0.3:8080', 'http://10.0.0.4:8080'] }, noProxy: ['internal.test'], strict: false, requireScope: true, strategy: 'random', idleTimeout: 1000 },
  { defaultProtocol: 'socks5', accounts: { alice: '10.0.0.2:1080:u:p' } },
  { accounts: { alice: 'http://bot:${SP_PASS}@10.0.0.2:${SP_PORT}' }, noProxy: 'a$${b}.test' },
  { proxy: 'http://10.0.0.1:1', proxyList: 'list.txt', accounts: { alice: { proxyList: ['list.txt'] }, bob: { proxies: 'http://10.0.0.3:1', proxyList: './list.txt' } } },
  { proxy: { url: 'https://10.0.0.1:443', username: 'bot', password: SECRET, label: 'eu-1', connectTimeout: 5000, tls: { caFile: 'ca.pem', rejectUnauthorized: true, servername: 'proxy.test' } } },
  { $schema: './schema/config.schema.json', proxy: 'socks5://10.0.0.1:1080', health: { threshold: 3, cooldownMs: 5000 }, healthCheck: { interval: 30000, url: 'http://10.0.0.9/ip' }, egressEndpoints: ['http://10.0.0.9/ip'], requestTls: { ca: 'PEM', rejectUnauthorized: false } },
].map((d) => JSON.stringify(d, null, 2));
const jsonPieces = fc.oneof(
  { weight: 3, arbitrary: nastyText },
  { weight: 3, arbitrary: fc.constantFrom('{', '}', '[', ']', ',', ':', '"', '\\', '\\u0000', '\\ud800', '"__proto__":', '"__proto__":{"strict":false},', '"constructor":1,', '1e999', '-0', 'null', 'true', '"${SP_PASS}"', `"${SECRET}"`, '\u2028') },
  { weight: 1, arbitrary: fc.constantFrom(100, 3000, 20_000).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`) },
  { weight: 1, arbitrary: fc.constantFrom(100, 3000, 20_000).map((d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`) },
);

// ---------------------------------------------------------------------------
describe('fuzz: config files and SESSION_PROXY_CONFIG_JSON', () => {
  it(
    'random documents: options or a ConfigError, nothing else',
    async () => {
      await fuzz(
        'config(random)',
        fc.property(anyJson, fc.constantFrom<Channel>('file', 'json-env'), (j, channel) => void load(text(j), channel, `random document ${text(j).slice(0, 200)}`)),
        300,
      );
    },
    budget(3000),
  );

  it(
    'mutated valid documents (JSON text edits, prototype keys, deep nesting): options or a ConfigError',
    async () => {
      await fuzz(
        'config(mutated)',
        fc.property(mutatedString(fc.constantFrom(...CORPUS), jsonPieces), fc.constantFrom<Channel>('file', 'json-env'), (t, channel) => void load(t, channel, `mutated ${JSON.stringify(t.slice(0, 200))}`)),
        600,
      );
    },
    budget(4000),
  );

  it(
    'structured documents with the password planted (literally and as ${SP_PASS}): a ConfigError never shows it',
    async () => {
      await fuzz(
        'config(planted password)',
        fc.property(document, (j) => {
          const t = text(j);
          const err = load(t, 'file', t.slice(0, 300));
          if (err) expectNoSecret(err, FORMS, `config ${t.slice(0, 300)}`);
        }),
        600,
      );
    },
    budget(4000),
  );
});

describe('fuzz: options in code', () => {
  const endpoint = parseProxy(`socks5://u:${SECRET}@10.0.0.1:1080`);
  const codeValue: fc.Arbitrary<unknown> = fc.oneof(
    fc.anything({ maxDepth: 2, withNullPrototype: true, withMap: true, withSet: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withBoxedValues: true }),
    fc.constantFrom(new URL('http://u:pw@10.0.0.1:1'), endpoint, Buffer.from('PEM'), () => 1, Symbol('s'), Object.create({ strict: false }) as object, new Error(SECRET), [endpoint, 'http://10.0.0.1:1']),
  );
  const options = fc.oneof(
    fc.dictionary(fc.constantFrom(...KEYS, 'configFile', 'proxy', 'accounts', 'noProxy', 'requestTls'), codeValue, { maxKeys: 4 }),
    fc.record({ accounts: fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('default', '', '__proto__', 'constructor')), fc.oneof(codeValue, fc.constant(`http://u:${SECRET}@10.0.0.1:99999`)), { maxKeys: 3 }) }),
    fc.record({ proxy: fc.record({ url: codeValue, password: fc.constant(SECRET), tls: codeValue }, { requiredKeys: ['password'] }) }),
    codeValue,
  );

  it(
    'checkOptions / loadConfig(options): a ConfigError and never the password, for any value',
    async () => {
      await fuzz(
        'options in code',
        fc.property(options, (o) => {
          for (const run of [() => checkOptions(o), () => loadConfig(o as never, {})]) {
            try {
              run();
            } catch (err) {
              // A configFile in the fuzzed options may name anything: a missing file is still a ConfigError.
              expectTyped(err, [ConfigError], `options ${inspect(o, { depth: 3 })}`);
              expectNoSecret(err, FORMS, `options ${inspect(o, { depth: 3 })}`);
            }
          }
        }),
        500,
      );
    },
    budget(3000),
  );
});
