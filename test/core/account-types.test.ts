/**
 * Account names are types: a manager built from a literal `accounts` option
 * accepts only those names (and `default`), so a typo such as
 * `withProxy('alcie', …)` does not compile; a `SessionProxyManager<string>`,
 * one built from loaded configuration, and `getManager()` accept any name;
 * `setAccount` widens an explicitly typed variable (an assertion signature).
 * Checked by tsc --strict in a consumer of the published types: every
 * `@ts-expect-error` below must be an error, and nothing else may be.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoRoot, typecheckConsumer } from '../support/consumer.js';

const consumer = `
import { SessionProxyManager, getManager, install, loadConfig, type SessionProxyOptions } from 'session-proxy';

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false;
const same = <X, Y>(ok: Equal<X, Y>): void => void ok;
type Names<M extends { withProxy(account: never, fn: () => unknown): unknown }> = Parameters<M['withProxy']>[0];
const fn = () => 1;

// Literal accounts: the names are inferred.
const m = new SessionProxyManager({ accounts: { alice: 'http://127.0.0.1:1', bob: ['http://127.0.0.1:2'] } });
same<Names<typeof m>, 'alice' | 'bob' | 'default'>(true);
m.withProxy('alice', fn);
m.withProxy('bob', fn);
m.withProxy('default', fn);
// @ts-expect-error a typo in an account name does not compile
m.withProxy('alcie', fn);
// @ts-expect-error
m.bind('alcie', fn);
// @ts-expect-error
m.current('alcie');
// @ts-expect-error
void m.rotate('alcie');
// @ts-expect-error
void m.verifyEgress('alcie');
// @ts-expect-error
void m.removeAccount('alcie');
// @ts-expect-error the default pool is not an account to remove
void m.removeAccount('default');
const bound: (x: number) => number = m.bind('bob', (x: number) => x);
void bound;
void m.rotate();
void m.rotate('default', { closeExisting: true });

// install() infers the same way.
const installed = install({ accounts: { carol: 'http://127.0.0.1:3' } });
// @ts-expect-error
installed.withProxy('alice', fn);

// Any name: explicit string, configuration, options typed SessionProxyOptions, no accounts, getManager().
const wide = new SessionProxyManager<string>({ accounts: { alice: 'http://127.0.0.1:1' } });
wide.withProxy('anyone', fn);
const fromConfig = new SessionProxyManager(loadConfig());
fromConfig.withProxy('anyone', fn);
const opts: SessionProxyOptions = { accounts: { alice: 'http://127.0.0.1:1' } };
new SessionProxyManager(opts).withProxy('anyone', fn);
new SessionProxyManager({ proxy: 'http://127.0.0.1:1' }).withProxy('anyone', fn);
getManager().withProxy('anyone', fn);
same<Names<ReturnType<typeof getManager>>, string>(true);
// Wide managers add accounts as before (no assertion, chaining kept).
getManager().setAccount('dave', 'http://127.0.0.1:4').setAccount('erin', 'http://127.0.0.1:5');
fromConfig.setAccount('dave', 'http://127.0.0.1:4');

// Typed managers and plain \`SessionProxyManager\` are interchangeable in annotations.
const plain: SessionProxyManager = m;
const narrowed: SessionProxyManager<'alice' | 'bob'> = getManager();
void plain;
// @ts-expect-error
narrowed.withProxy('alcie', fn);

// setAccount widens an explicitly typed variable.
const t: SessionProxyManager<'alice'> = new SessionProxyManager({ accounts: { alice: 'http://127.0.0.1:1' } });
// @ts-expect-error
t.withProxy('bob', fn);
t.setAccount('bob', 'http://127.0.0.1:2');
t.withProxy('bob', fn);
t.withProxy('alice', fn);
// @ts-expect-error
t.withProxy('carol', fn);
t.setAccount('carol', 'http://127.0.0.1:3');
t.withProxy('carol', fn);
t.withProxy('bob', fn);
// @ts-expect-error still not a name
t.withProxy('alcie', fn);
function addInside(p: SessionProxyManager<'alice'>): void {
  p.setAccount('zed', 'http://127.0.0.1:9');
  p.withProxy('zed', fn);
}
void addInside;
const dynamic: string = process.argv[2] ?? 'x';
t.setAccount(dynamic, 'http://127.0.0.1:6');
t.withProxy('anyone', fn);

// TypeScript's rule for assertions: on an inferred variable with literal names it is TS2775.
const inferred = new SessionProxyManager({ accounts: { alice: 'http://127.0.0.1:1' } });
// @ts-expect-error TS2775: annotate the variable to add accounts
inferred.setAccount('bob', 'http://127.0.0.1:2');
`;

describe('account names in the types', () => {
  it.skipIf(!existsSync(`${repoRoot}/dist/index.d.ts`) && !process.env.CI)('a literal accounts option restricts withProxy & co; string managers and setAccount widen', () => {
    // .mts (ESM) and .cts (CJS) resolve index.d.ts and index.d.cts: both must carry the generic.
    const cjs = consumer.replace(`import { SessionProxyManager, getManager, install, loadConfig, type SessionProxyOptions } from 'session-proxy';`, `import { SessionProxyManager, getManager, install, loadConfig, type SessionProxyOptions } from 'session-proxy';\nexport {};`);
    expect(typecheckConsumer({ 'names.mts': consumer, 'names.cts': cjs })).toBe('');
  }, 90_000);

  it.skipIf(!existsSync(`${repoRoot}/dist/index.d.ts`) && !process.env.CI)('the expected errors are the ones named (TS2345 for the typo, TS2775 for the inferred assertion)', () => {
    const out = typecheckConsumer({ 'names.mts': consumer.replaceAll('// @ts-expect-error', '//') });
    const codes = [...out.matchAll(/error (TS\d+)/g)].map((match) => match[1]);
    expect(codes.filter((c) => c !== 'TS2345'), out).toEqual(['TS2775']);
    expect(out).toMatch(/names\.mts\(\d+,\d+\): error TS2345: Argument of type '"alcie"' is not assignable to parameter of type '"alice" \| "bob" \| "default"'/);
  }, 90_000);
});
