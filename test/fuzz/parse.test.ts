/**
 * Fuzzing the proxy URL / vendor-line parser (parseProxy, parseProxyList) and
 * ProxyEndpoint: random and mutated inputs give a ProxyEndpoint or a
 * ProxyUrlError (a ConfigError for bad parse options) and nothing else; a
 * password planted in the password position — raw, percent-encoded, in a
 * vendor line, in an object — never shows in any view of the error or of the
 * endpoint; every endpoint prints, serializes and round-trips through its
 * env URL.
 */
import fc from 'fast-check';
import { inspect } from 'node:util';
import { describe, it } from 'vitest';
import { ConfigError, ProxyUrlError } from '../../src/errors.js';
import { isProxyEndpoint, parseProxy, parseProxyList, ProxyEndpoint } from '../../src/proxy/parse.js';
import { budget, expectNoSecret, expectPrintable, expectTyped, fuzz, mutatedString, nastyText, reportAfterAll, secretForms } from './support.js';

reportAfterAll('parse');

/** Passwords with the characters that make URL parsing hard: raw @ / # ? :, a stray %, non-ASCII. */
const SECRETS = ['Zq9xK-S3CR3T-wv7', 'p@ss/w#rd?Zq9:xK', '50%off-Zq9xK-!;=', 'ünï€ødé-Zq9-密码'];
const FORMS = new Map(SECRETS.map((s) => [s, secretForms(s)]));

// Valid inputs from test/proxy/parse.test.ts, and some of its rejected ones.
const VALID = [
  'http://proxy.example.com:3128', 'http://proxy.example.com/', 'HTTP://Proxy.EXAMPLE.com:8080/', 'http://10.0.0.1:8080',
  'http://[::1]:3128', 'http://[2001:DB8:0:0:0:0:0:1]', 'http://alice:pw@proxy:1', '  http://proxy:1\n',
  'https://secure.example.com:8443', 'HTTPS://u:p@[FD00::5]:443/', 'socks4://user@10.1.1.1:9050', 'socks4a://ident@1.2.3.4/',
  'socks5://bob:hunter2@127.0.0.1', 'socks5://[::ffff:127.0.0.1]:1080', 'Socks5H://[0:0:0:0:0:0:0:1]:9999/', 'http://bücher.de:8080',
  'proxy.example.com:8080', '[::1]:8080:user:pass', 'gate.vendor.io:7000:cust:p:w:x', 'h:1:u%41:p%40', 'h:1::only-pass', 'h:1:user:',
  'http://user:p@ss@host:1', 'http://john@example.com:pw@host:1', 'http://us/er:p?ss@host:1', 'http://user:%ff%41@host:1',
  'http://user:my pass@host:1', 'host:1:user:pw \t\r\n', 'http://@host:1', 'socks5h://u:%F0%9F%94%91@h:1',
];
const REJECTED = [
  'ftp://u:pw@h:21', 'host', 'http://h:0', 'h:70000:u:pw', 'http://h:99999999999999999999', 'http://user:pw', 'user:pw@host:8080',
  'http://[::1', '[::1]8080', 'http://[fe80::1%25eth0]:80', '::1:8080', 'http://pro xy:8080', 'http://256.1.1.1:80', 'http://h:1/path',
  'http://us\r\ner:pw@h:1', 'proxy:8080:user:pw\0',
];
const corpus = fc.constantFrom(...VALID, ...REJECTED);

const options = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.record({ defaultProtocol: fc.constantFrom('http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'), connectTimeout: fc.integer({ min: 1, max: 60_000 }) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.anything() },
  { weight: 1, arbitrary: fc.record({ defaultProtocol: fc.anything(), connectTimeout: fc.anything() }, { requiredKeys: [] }) },
);

/** Everything an endpoint shows must work (no URIError from a lone surrogate, say) and hide its password. */
function checkEndpoint(e: unknown, what: string, roundTrip = true): asserts e is ProxyEndpoint {
  if (!isProxyEndpoint(e) || !(e instanceof ProxyEndpoint)) throw new Error(`${what}: returned ${inspect(e)}`);
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new Error(`${what}: port ${e.port}`);
  if (/[\x00-\x1f\x7f\s]/.test(e.host) || e.host === '') throw new Error(`${what}: host ${JSON.stringify(e.host)}`);
  let shown: string[];
  try {
    shown = [String(e), e.url, e.label, JSON.stringify(e), inspect(e, { showHidden: true, depth: 4 }), JSON.stringify(e.info()), e.identityKey, e.authority];
    e.toEnvUrl();
  } catch (err) {
    throw new Error(`${what}: viewing the endpoint threw ${inspect(err)}`);
  }
  const password = e.getPassword();
  if (password !== undefined && password.includes("Zq9")) {
    for (const text of shown) if (text.includes(password)) throw new Error(`${what}: the password shows in ${JSON.stringify(text)}`);
  }
  // The env URL (what a child process gets) reads back as the same proxy. Not
  // asked of direct construction, which takes its fields as already normalized.
  if (!roundTrip) return;
  let again: ProxyEndpoint;
  try {
    again = parseProxy(e.toEnvUrl());
  } catch (err) {
    throw new Error(`${what}: toEnvUrl() ${JSON.stringify(e.toEnvUrl())} does not parse back: ${(err as Error).message}`);
  }
  const same = (p: ProxyEndpoint) => [p.host, p.port, p.username, p.getPassword(), p.protocol === 'socks5' ? 'socks5h' : p.protocol];
  if (JSON.stringify(same(again)) !== JSON.stringify(same(e))) {
    throw new Error(`${what}: toEnvUrl() reads back as ${JSON.stringify(same(again))}, not ${JSON.stringify(same(e))}`);
  }
}

/** The parse outcome contract; returns the endpoint or the error. */
function outcome(fn: () => unknown, what: string, configAllowed: boolean, roundTrip = true): ProxyEndpoint | ProxyUrlError | ConfigError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    expectTyped(err, configAllowed ? [ProxyUrlError, ConfigError] : [ProxyUrlError], what);
    expectPrintable(err, what);
    return err as ProxyUrlError;
  }
  checkEndpoint(result, what, roundTrip);
  return result;
}

// Fields around a planted password: anything but the one separator that would move the password.
const field = (without: RegExp) =>
  fc
    .oneof(
      { weight: 3, arbitrary: mutatedString(fc.constantFrom('proxy.example.com', '10.0.0.1', 'bob', 'h', 'bücher.de', '8080', '1080', '[::1]', '')) },
      { weight: 2, arbitrary: fc.constantFrom('proxy.example.com', 'user', '127.0.0.1', '[::1]', 'x', '', '3128', 'h:1', 'h:1/x') },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
    )
    .map((s) => s.replace(without, ''));
const blank = fc.constantFrom('', ' ', '\t', '\n', '  \r\n');

/** `scheme://user:<secret>@hostport` with the password raw, percent-encoded or fully percent-encoded. */
const plantedUrl = fc
  .record({
    lead: blank,
    scheme: fc.oneof(fc.constantFrom('http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h', 'HTTP', 'Socks5H'), fc.stringMatching(/^[A-Za-z][A-Za-z0-9+.-]{0,6}$/)),
    user: field(/:/g),
    secret: fc.constantFrom(...SECRETS),
    encoding: fc.constantFrom('raw', 'uri', 'full'),
    hostport: field(/@/g),
    trail: blank,
  })
  .map((r) => {
    const written =
      r.encoding === 'raw' ? r.secret : r.encoding === 'uri' ? encodeURIComponent(r.secret) : [...Buffer.from(r.secret)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    return { input: `${r.lead}${r.scheme}://${r.user}:${written}@${r.hostport}${r.trail}`, secret: r.secret };
  });

/** `host:port:user:<secret>` (vendor fields are literal), the host maybe bracketed. */
const plantedVendor = fc
  .record({
    lead: blank,
    host: fc.oneof(field(/:/g).map((h) => h.replace(/^\[/, '')), field(/\]/g).map((h) => `[${h}]`)),
    port: field(/:/g),
    user: field(/:/g),
    secret: fc.constantFrom(...SECRETS),
    tail: fc.constantFrom('', ' ', '\t', ':x', '\r\n', '\n'),
  })
  .map((r) => ({ input: `${r.lead}${r.host}:${r.port}:${r.user}:${r.secret}${r.tail}`, secret: r.secret }));

const planted = fc.oneof(plantedUrl, plantedVendor);

describe('fuzz: parseProxy', () => {
  it(
    'random input: a ProxyEndpoint or a ProxyUrlError (ConfigError for bad options), nothing else',
    async () => {
      const input = fc.oneof(
        { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
        { weight: 2, arbitrary: fc.anything() },
        {
          weight: 3,
          arbitrary: fc.record(
            { url: fc.oneof(corpus, fc.anything()), username: fc.oneof(fc.string({ unit: 'binary' }), fc.anything()), password: fc.oneof(fc.string({ unit: 'binary' }), fc.anything()), label: fc.oneof(fc.string({ unit: 'binary' }), fc.anything()), tls: fc.anything(), connectTimeout: fc.oneof(fc.double(), fc.anything()) },
            { requiredKeys: [] },
          ),
        },
      );
      await fuzz('parseProxy(random)', fc.property(input, options, (i, o) => void outcome(() => parseProxy(i, o as never), 'parseProxy', o !== undefined)), 600);
    },
    budget(3000),
  );

  it(
    'mutated valid input (URLs, vendor lines, URL instances): same contract, and endpoints round-trip',
    async () => {
      const input = fc.oneof(
        { weight: 5, arbitrary: mutatedString(corpus) },
        { weight: 1, arbitrary: mutatedString(corpus).map((s) => (URL.canParse(s) ? new URL(s) : s)) },
      );
      await fuzz('parseProxy(mutated)', fc.property(input, (i) => void outcome(() => parseProxy(i), 'parseProxy', false)), 1500);
    },
    budget(3000),
  );

  it(
    'a password planted in a URL or vendor line never shows; when parsing succeeds it is the password',
    async () => {
      await fuzz(
        'parseProxy(planted password)',
        fc.property(planted, ({ input, secret }) => {
          const r = outcome(() => parseProxy(input), 'parseProxy', false);
          if (r instanceof Error) return void expectNoSecret(r, FORMS.get(secret)!, `parseProxy(${JSON.stringify(input)})`);
          if (!r.getPassword()?.startsWith(secret)) throw new Error(`parseProxy(${JSON.stringify(input)}): password ${JSON.stringify(r.getPassword())}`);
        }),
        1200,
      );
    },
    budget(3000),
  );

  it(
    'a password in an object field never shows, whatever the other fields hold',
    async () => {
      const input = fc.record({
        url: fc.oneof(mutatedString(corpus), planted.map((p) => p.input), fc.anything()),
        username: fc.oneof(fc.constant(undefined), field(/(?:)/), fc.anything()),
        password: fc.constantFrom(...SECRETS),
        label: fc.oneof(fc.constant(undefined), fc.string({ unit: 'binary', maxLength: 8 }), fc.anything()),
        tls: fc.oneof(fc.constant(undefined), fc.record({ ca: fc.anything(), rejectUnauthorized: fc.anything(), servername: fc.anything() }, { requiredKeys: [] }), fc.anything()),
        connectTimeout: fc.oneof(fc.constant(undefined), fc.integer(), fc.double(), fc.anything()),
      });
      await fuzz(
        'parseProxy(object password)',
        fc.property(input, (o) => {
          const r = outcome(() => parseProxy(o), 'parseProxy', false);
          // The URL's own planted password may be overridden by the field's: check both.
          if (r instanceof Error) for (const s of SECRETS) expectNoSecret(r, FORMS.get(s)!, `parseProxy(${inspect(o)})`);
        }),
        600,
      );
    },
    budget(2000),
  );
});

describe('fuzz: parseProxyList', () => {
  it(
    'lists of mutated, planted and random lines: endpoints or a ProxyUrlError naming a line, never the password',
    async () => {
      const line = fc.oneof(mutatedString(corpus), planted.map((p) => p.input.replace(/[\r\n]/g, '')), fc.constantFrom('', '# comment', '  # x'), fc.string({ unit: 'binary', maxLength: 20 }));
      const text = fc.tuple(fc.array(line, { maxLength: 6 }), fc.constantFrom('\n', '\r\n', '\r')).map(([lines, nl]) => lines.join(nl));
      await fuzz(
        'parseProxyList',
        fc.property(text, options, (t, o) => {
          let list: unknown;
          try {
            list = parseProxyList(t, o as never);
          } catch (err) {
            expectTyped(err, o === undefined ? [ProxyUrlError] : [ProxyUrlError, ConfigError], 'parseProxyList');
            expectPrintable(err, 'parseProxyList');
            for (const s of SECRETS) expectNoSecret(err, FORMS.get(s)!, `parseProxyList(${JSON.stringify(t)})`);
            if (err instanceof ProxyUrlError && !/^line \d+: /.test(err.message)) throw new Error(`no line number: ${err.message}`);
            return;
          }
          if (!Array.isArray(list)) throw new Error('not an array');
          list.forEach((e, i) => checkEndpoint(e, `parseProxyList line ${i}`));
        }),
        500,
      );
    },
    budget(3000),
  );
});

describe('fuzz: new ProxyEndpoint', () => {
  it(
    'any init: an endpoint whose every view works, or a ProxyUrlError that never shows the password',
    async () => {
      const text = fc.oneof(mutatedString(fc.constantFrom('h', 'proxy.example.com', '::1', '[::1]', 'bob', '')), fc.string({ unit: 'binary', maxLength: 10 }), nastyText);
      const init = fc.record(
        {
          protocol: fc.oneof(fc.constantFrom('http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'), fc.anything()),
          host: fc.oneof(text, fc.anything()),
          port: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.double(), fc.anything()),
          username: fc.oneof(text, fc.anything()),
          password: fc.oneof(fc.constantFrom(...SECRETS), text.map((t) => `${SECRETS[0]}${t}`), fc.anything()),
          label: fc.oneof(text, fc.anything()),
          tls: fc.anything(),
          connectTimeout: fc.oneof(fc.double(), fc.anything()),
        },
        { requiredKeys: ['protocol', 'host'] },
      );
      await fuzz(
        'new ProxyEndpoint',
        fc.property(init, (i) => {
          const r = outcome(() => new ProxyEndpoint(i as never), 'new ProxyEndpoint', false, false);
          if (r instanceof Error) for (const s of SECRETS) expectNoSecret(r, FORMS.get(s)!, `new ProxyEndpoint(${inspect(i)})`);
        }),
        600,
      );
    },
    budget(2000),
  );
});
