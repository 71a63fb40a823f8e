/**
 * Fuzzing the NO_PROXY matcher: building it from random and mutated entries
 * gives a matcher or a ConfigError and nothing else; a matcher's normalized
 * entries build the same matcher again; matching never throws, whatever the
 * host and port (or URL); every IP or name entry matches its own host; the
 * lenient reader of an operator's variable never throws.
 */
import fc from 'fast-check';
import { isIPv4, isIPv6 } from 'node:net';
import { describe, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { NoProxyMatcher, readableNoProxyEntries } from '../../src/proxy/no-proxy.js';
import { budget, expectPrintable, expectTyped, fuzz, mutatedString, reportAfterAll } from './support.js';

reportAfterAll('no-proxy');

// Entries from test/proxy/no-proxy.test.ts, good and bad.
const ENTRIES = [
  '*', '*:443', 'example.com', '.example.com', '*.example.com', '*example.com', '..example.com', 'EXAMPLE.com', 'example.com.', 'localhost',
  'example.com:8080', '.example.com:443', '10.1.2.3', '10.1.2.3:8080', '127.0.0.0/8', '192.168.1.77/24', '10.0.0.0/8:443', '0.0.0.0/0', '203.0.113.7/32',
  '::1', '[::1]', '0:0:0:0:0:0:0:1', '[::1]:8080', '::1:8080', '2001:DB8::1', 'fd00::/8', '[fd00::/8]:443', 'fe80::/10', 'fe80::1', '::ffff:127.0.0.1',
  '::ffff:10.0.0.0/104', 'bücher.de', 'xn--bcher-kva.de', 'localhost, 127.0.0.0/8 ::1,,.corp.example\t*.internal', '.', '*.',
  '10.0.0.0/33', '::/129', '10.0.0.0/x', 'example.com/8', 'host:0', 'host:99999', '[::1', '[::1]x', '[example.com]', 'ex*ample.com', '192.168.*', 'http://example.com',
];
const HOSTS = ['example.com', 'sub.example.com', 'notexample.com', 'localhost', 'LOCALHOST.', '127.0.0.1', '::1', '[::1]', '::ffff:127.0.0.9', 'fe80::1%eth0', 'bücher.de', '10.9.9.9', ''];

const group = fc.oneof(fc.stringMatching(/^[0-9a-fA-F]{0,5}$/), fc.constantFrom('', 'ffff', '0', '1.2.3.4', '255.255.255.255'));
const ipv6ish = fc
  .tuple(fc.array(group, { minLength: 1, maxLength: 10 }), fc.constantFrom('', '%eth0', '%25', '/64', '/0', '/128', '/129'), fc.boolean())
  .map(([groups, suffix, bracket]) => {
    const body = groups.join(':').replace(/^:?/, (m) => (groups.length < 8 ? '::' : m));
    return bracket ? `[${body}${suffix}]` : `${body}${suffix}`;
  });
const ipv4ish = fc
  .tuple(fc.array(fc.oneof(fc.nat(300).map(String), fc.constantFrom('', '00', '01', '0x1', '1e1')), { minLength: 1, maxLength: 5 }), fc.constantFrom('', '/8', '/32', '/33', '/-1', ':80', ':0'))
  .map(([octets, suffix]) => `${octets.join('.')}${suffix}`);
const entry = fc.oneof(
  { weight: 4, arbitrary: mutatedString(fc.constantFrom(...ENTRIES)) },
  { weight: 2, arbitrary: ipv6ish },
  { weight: 2, arbitrary: ipv4ish },
  { weight: 1, arbitrary: fc.constantFrom(...ENTRIES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
const entries = fc.oneof(entry, fc.array(entry, { maxLength: 6 }), fc.array(entry, { maxLength: 4 }).map((l) => l.join(', ')));

const host = fc.oneof(
  { weight: 3, arbitrary: mutatedString(fc.constantFrom(...HOSTS)) },
  { weight: 2, arbitrary: ipv6ish },
  { weight: 2, arbitrary: ipv4ish },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
const port = fc.oneof(fc.integer({ min: 0, max: 65536 }), fc.constantFrom(80, 443, 8080), fc.double(), fc.integer());

/** The matcher, or undefined after checking the error is a printable ConfigError. */
function build(e: string | string[], what: string): NoProxyMatcher | undefined {
  try {
    return new NoProxyMatcher(e);
  } catch (err) {
    expectTyped(err, [ConfigError], what);
    expectPrintable(err, what);
    return undefined;
  }
}

function match(m: NoProxyMatcher, h: unknown, p: unknown, what: string): boolean {
  let answer: unknown;
  try {
    answer = m.matches(h as string, p as number);
  } catch (err) {
    throw new Error(`${what}: matches(${String(typeof h === 'symbol' ? 'Symbol()' : JSON.stringify(h))}, ${String(p)}) threw ${(err as Error)?.stack ?? String(err)}`);
  }
  if (typeof answer !== 'boolean') throw new Error(`${what}: matches returned ${String(answer)}`);
  return answer;
}

describe('fuzz: NoProxyMatcher', () => {
  it(
    'entries: a matcher or a ConfigError; the normalized entries build the same matcher again',
    async () => {
      await fuzz(
        'new NoProxyMatcher',
        fc.property(entries, fc.array(fc.tuple(host, port), { maxLength: 4 }), (e, probes) => {
          const what = `new NoProxyMatcher(${JSON.stringify(e)})`;
          const m = build(e, what);
          if (!m) return;
          const again = build([...m.entries], `${what}: its entries ${JSON.stringify(m.entries)}`);
          if (!again) throw new Error(`${what}: normalized entries ${JSON.stringify(m.entries)} are refused`);
          if (JSON.stringify(again.entries) !== JSON.stringify(m.entries)) throw new Error(`${what}: entries ${JSON.stringify(m.entries)} normalize again to ${JSON.stringify(again.entries)}`);
          for (const [h, p] of [...HOSTS.map((x) => [x, 80] as const), ...probes]) {
            if (match(m, h, p, what) !== match(again, h, p, what)) throw new Error(`${what}: the normalized matcher answers differently for ${JSON.stringify(h)}:${p}`);
          }
        }),
        800,
      );
    },
    budget(3000),
  );

  it(
    'matches(host, port) never throws and always answers the same, for any host, port or value',
    async () => {
      const matcher = fc.constantFrom(...['*', '*:443', 'localhost, 127.0.0.0/8, ::1', '.example.com, fd00::/8, [::1]:8080, 10.0.0.0/8:443', 'bücher.de, ::ffff:10.0.0.0/104'].map((t) => new NoProxyMatcher(t)));
      const anyHost = fc.oneof({ weight: 6, arbitrary: host }, { weight: 1, arbitrary: fc.anything() }, { weight: 1, arbitrary: fc.constant(Symbol('host')) });
      const anyPort = fc.oneof({ weight: 6, arbitrary: port }, { weight: 1, arbitrary: fc.anything() });
      await fuzz(
        'matches',
        fc.property(matcher, anyHost, anyPort, (m, h, p) => {
          const first = match(m, h, p, m.toString());
          if (match(m, h, p, m.toString()) !== first) throw new Error('a second call answered differently');
        }),
        1500,
      );
    },
    budget(3000),
  );

  it(
    'matchesUrl(URL) never throws',
    async () => {
      const m = new NoProxyMatcher('localhost, .example.com, 10.0.0.0/8, [::1]:8080, host:443');
      const url = fc.oneof(
        fc.webUrl({ withQueryParameters: true, withFragments: true }),
        mutatedString(fc.constantFrom('https://host/', 'http://[::1]:8080/', 'ws://a.example.com', 'socks5://host', 'HTTP://HOST/', 'http://127.1/', 'http://localhost./')),
      );
      await fuzz(
        'matchesUrl',
        fc.property(url, (u) => {
          if (!URL.canParse(u)) return; // An unparsable string is a TypeError by contract, like new URL.
          for (const input of [u, new URL(u)]) {
            const answer = m.matchesUrl(input);
            if (typeof answer !== 'boolean') throw new Error(`matchesUrl(${u}) returned ${String(answer)}`);
          }
        }),
        600,
      );
    },
    budget(2000),
  );

  it(
    'an IP, CIDR or host-name entry matches its own host, on any port (a bare entry) or its own port',
    async () => {
      const own = fc.oneof(
        fc.ipV4(),
        fc.ipV6(),
        fc.domain(),
        fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, n]) => ({ entry: `${a}/${n}`, host: a })),
        fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, n]) => ({ entry: `${a}/${n}`, host: a })),
      );
      await fuzz(
        'own host matches',
        fc.property(own, fc.integer({ min: 1, max: 65535 }), fc.boolean(), (o, p, withPort) => {
          const { entry: e, host: h } = typeof o === 'string' ? { entry: o, host: o } : o;
          const written = withPort ? (isIPv6(e.split('/')[0]!) ? `[${e}]:${p}` : `${e}:${p}`) : e;
          const m = build(written, `new NoProxyMatcher(${JSON.stringify(written)})`);
          if (!m) throw new Error(`${JSON.stringify(written)} refused`);
          const targets = isIPv6(h) ? [h, `[${h}]`] : isIPv4(h) ? [h, `::ffff:${h}`] : [h, h.toUpperCase(), `${h}.`, `sub.${h}`];
          for (const t of targets) if (!match(m, t, p, written)) throw new Error(`${JSON.stringify(written)} does not match ${JSON.stringify(t)}:${p}`);
        }),
        800,
      );
    },
    budget(3000),
  );

  it(
    "an operator's variable (NO_PROXY, GLOBAL_AGENT_NO_PROXY) is read leniently: never a throw, only readable entries kept",
    async () => {
      const text = fc.array(entry, { maxLength: 6 }).chain((l) => fc.constantFrom(',', ' ', ', ', '\n').map((sep) => l.join(sep)));
      const emitWarning = process.emitWarning;
      process.emitWarning = () => {};
      try {
        await fuzz(
          'readableNoProxyEntries',
          fc.property(text, (t) => {
            const usable = readableNoProxyEntries(t, 'NO_PROXY');
            build(usable, 'readable entries') ?? (() => { throw new Error(`readable entries ${JSON.stringify(usable)} are refused`); })();
            NoProxyMatcher.fromEnv({ NO_PROXY: t });
            NoProxyMatcher.fromEnv({ no_proxy: t });
          }),
          500,
        );
      } finally {
        process.emitWarning = emitWarning;
      }
    },
    budget(2000),
  );
});
