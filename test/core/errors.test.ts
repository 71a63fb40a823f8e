/**
 * Each error says what the user did: a wrong argument names the method and
 * the argument, a call with no account outside any scope says so, a failed
 * egress verification carries its per-endpoint errors once each with the
 * proxy's own error in `cause`, and the preload is named when it is the one
 * that installed the manager.
 */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SessionProxyManager,
  SessionProxyError,
  EgressUnavailableError,
  ProxyAuthError,
  findSessionProxyError,
  type EgressEvent,
  InvalidArgumentError,
  NotInstalledError,
  UnknownAccountError,
  AlreadyInstalledError,
  getManager,
  withProxy as globalWithProxy,
} from '../../src/index.js';
import { startEchoServer, startMockProxy } from '../../src/testing/index.js';
import { runPreload } from '../../src/preload.js';
import { deadPort } from '../support/scenario.js';

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

// Nothing is dialled in this part: the proxies need not exist.
const ACCOUNTS = { alice: 'http://u:Pw-4rg5@127.0.0.1:9', bob: 'http://u:Pw-4rg5@127.0.0.1:10' };

function installed(options: ConstructorParameters<typeof SessionProxyManager>[0] = { accounts: ACCOUNTS }): SessionProxyManager {
  const m = new SessionProxyManager({ noProxy: [], ...options }).install();
  cleanup.push(() => m.uninstall());
  return m;
}

function thrown(fn: () => unknown): SessionProxyError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SessionProxyError);
    return e as SessionProxyError;
  }
  throw new Error('expected a throw');
}

describe('a wrong argument is an InvalidArgumentError naming the method and the argument', () => {
  it('withProxy(account, notAFunction): before, a plain TypeError from deep inside AsyncLocalStorage', () => {
    const m = installed();
    const e = thrown(() => m.withProxy('alice', 42 as never));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e).not.toBeInstanceOf(TypeError);
    expect(e.code).toBe('SP_ERR_INVALID_ARG');
    expect(e.message).toBe('withProxy(account, fn): fn must be a function, got number (account "alice")');
    expect(thrown(() => m.withProxy(42 as never, () => 1)).message).toBe('withProxy(account, fn): account must be a non-empty string, got number');
    expect(thrown(() => m.withProxy('', () => 1)).message).toBe('withProxy(account, fn): account must be a non-empty string, got an empty string');
    expect(thrown(() => globalWithProxy('alice', null as never)).message).toMatch(/^withProxy\(account, fn\): fn must be a function, got null/);
  });

  it('bind(account, notAFunction) throws when binding, not later when the bound function runs', () => {
    const m = installed();
    const e = thrown(() => m.bind('alice', 'later' as never));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toBe('bind(account, fn): fn must be a function, got string (account "alice")');
    expect(thrown(() => m.bind(undefined as never, () => 1)).message).toBe('bind(account, fn): account must be a non-empty string, got undefined');
  });

  it('rotate, verifyEgress and current check their arguments too', async () => {
    const m = installed();
    await expect(m.rotate(42 as never)).rejects.toThrow(new InvalidArgumentError('rotate(account, options): account must be a non-empty string (or omitted), got number'));
    await expect(m.rotate('alice', 'now' as never)).rejects.toThrow(new InvalidArgumentError('rotate(account, options): options must be an object, got string'));
    await expect(m.verifyEgress(null as never)).rejects.toThrow(new InvalidArgumentError('verifyEgress(account, options): account must be a non-empty string (or omitted), got null'));
    expect(() => m.current({} as never)).toThrow(new InvalidArgumentError('current(account): account must be a non-empty string (or omitted), got object'));
  });

  it('arguments are checked before installation, installation before the account', async () => {
    const m: SessionProxyManager = new SessionProxyManager({ accounts: ACCOUNTS }); // any name: the test passes unknown ones on purpose
    expect(() => m.withProxy('alice', 42 as never)).toThrow(InvalidArgumentError);
    expect(() => globalWithProxy('alice', 42 as never)).toThrow(InvalidArgumentError);
    await expect(m.rotate(42 as never)).rejects.toThrow(InvalidArgumentError);
    expect(() => m.withProxy('nobody', () => 1)).toThrow(NotInstalledError);
    await expect(m.verifyEgress('nobody')).rejects.toThrow(NotInstalledError);
    m.install();
    cleanup.push(() => m.uninstall());
    expect(() => m.withProxy('nobody', () => 1)).toThrow(UnknownAccountError);
  });
});

describe('no account given, outside any scope, no default proxy', () => {
  const said = (method: string): string =>
    `${method}() was called outside any withProxy scope and no default proxy is configured; pass an account name (configured: "alice", "bob")`;

  it('rotate(), verifyEgress() and current() say what the caller did, not `unknown account "default"`', async () => {
    const m = installed();
    const rotated = await m.rotate().catch((e: Error) => e);
    expect(rotated).toBeInstanceOf(UnknownAccountError);
    expect((rotated as Error).message).toBe(said('rotate'));
    expect((rotated as Error).message).not.toContain('"default"');
    await expect(m.verifyEgress()).rejects.toThrow(new UnknownAccountError(said('verifyEgress')));
    expect(() => m.current()).toThrow(new UnknownAccountError(said('current')));
  });

  it('inside a scope they act on the scope\'s account; with a default proxy, on the default pool', async () => {
    const m = installed();
    expect(m.withProxy('bob', () => m.current().port)).toBe(10);
    await m.uninstall();
    const withDefault = installed({ proxy: 'http://127.0.0.1:11', accounts: ACCOUNTS });
    expect(withDefault.current().port).toBe(11);
  });

  it('an account the caller named and that is not configured is still "unknown account"', () => {
    const m = installed();
    expect(() => m.current('default')).toThrow(new UnknownAccountError('unknown account "default" (configured: "alice", "bob")'));
  });
});

describe('a failed egress verification', () => {
  const PASSWORD = 'Pw-3gr3ss';
  const count = (text: string, part: string): number => text.split(part).length - 1;

  async function setup() {
    const echo = await startEchoServer();
    const proxy = await startMockProxy({ egressIp: '127.0.0.2', auth: { username: 'alice', password: PASSWORD } });
    cleanup.push(() => echo.close(), () => proxy.close());
    return { echo, proxy, endpoints: [`${echo.httpUrl}/ip`, `http://127.0.0.1:${await deadPort()}/ip`] };
  }

  it('wrong proxy password: EgressUnavailableError after the first endpoint (the others not tried), the ProxyAuthError in cause, account and proxy said once', async () => {
    const { proxy, endpoints } = await setup();
    const m = installed({ accounts: { alice: `http://alice:wrong-${PASSWORD}@127.0.0.1:${proxy.port}` }, egressEndpoints: endpoints });
    const err = (await m.verifyEgress('alice').catch((e: unknown) => e)) as EgressUnavailableError;
    expect(err).toBeInstanceOf(EgressUnavailableError);
    expect(err.code).toBe('SP_ERR_EGRESS_UNAVAILABLE');
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toBeInstanceOf(ProxyAuthError);
    expect(proxy.log.filter((e) => e.status === 'auth-failed')).toHaveLength(1); // one attempt, not one per endpoint
    expect(err.cause).toBe(err.errors[0]);
    const auth = findSessionProxyError(err, ProxyAuthError);
    expect(auth).toBeInstanceOf(ProxyAuthError);
    expect(auth!.status).toBe(407);
    expect(findSessionProxyError(err)).toBe(err);
    expect(findSessionProxyError(new TypeError('wrapped', { cause: err }), ProxyAuthError)).toBe(auth);
    expect(count(err.message, 'account "alice"')).toBe(1);
    expect(count(err.message, `proxy http://alice:***@127.0.0.1:${proxy.port}`)).toBe(1);
    expect(err.message).toMatch(new RegExp(`^no egress endpoint answered: ${endpoints[0]}: proxy answered CONNECT with 407.* \\(the proxy refused the credentials: 1 other endpoint was not tried\\)`));
    expect(err.message.endsWith(`(account "alice", proxy http://alice:***@127.0.0.1:${proxy.port})`)).toBe(true);
    expect(inspect(err, { depth: 10 }) + err.stack).not.toContain(PASSWORD);
  });

  it('endpoints down: each endpoint\'s error once, verifyAll rows and egress events say the account and proxy once', async () => {
    const { proxy } = await setup();
    const endpoints = [`http://127.0.0.1:${await deadPort()}/ip`, `http://127.0.0.1:${await deadPort()}/ip`];
    const m = installed({ accounts: { alice: `http://alice:${PASSWORD}@127.0.0.1:${proxy.port}` }, egressEndpoints: endpoints });
    const events: EgressEvent[] = [];
    m.on('egress', (e) => events.push(e));
    const err = (await m.verifyEgress('alice').catch((e: unknown) => e)) as EgressUnavailableError;
    expect(err).toBeInstanceOf(EgressUnavailableError);
    expect(err.errors).toHaveLength(2);
    expect(err.cause).toBeInstanceOf(SessionProxyError);
    expect(count(err.message, 'account "alice"')).toBe(1);
    const [row] = await m.verifyAll();
    expect(row).toMatchObject({ account: 'alice', ok: false });
    expect(count(row!.error!, 'account "alice"')).toBe(1);
    expect(count(row!.error!, `proxy http://alice:***@127.0.0.1:${proxy.port}`)).toBe(1);
    expect(events.map((e) => e.status)).toEqual(['failed', 'failed']);
    expect(count((events[0] as { error: string }).error, 'account "alice"')).toBe(1);
  });
});

describe('AlreadyInstalledError says who installed the manager', () => {
  it('under the preload: the preload, how it was configured, and getManager()', async () => {
    const result = runPreload({ format: 'cjs', env: { SESSION_PROXY_URL: 'http://127.0.0.1:9' }, warn: () => undefined });
    cleanup.push(() => Reflect.deleteProperty(globalThis, Symbol.for('session-proxy.register.v1')), () => getManager().uninstall());
    expect(result.status).toBe('installed');
    const e = thrown(() => new SessionProxyManager({ accounts: ACCOUNTS }).install());
    expect(e).toBeInstanceOf(AlreadyInstalledError);
    expect(e.message).toBe(
      "the session-proxy/register preload (configured from SESSION_PROXY_URL) already installed this process's SessionProxyManager; use getManager() to reach it instead of calling install(), or drop the preload and configure the manager in code",
    );
  });

  it('installed by the app itself: "another SessionProxyManager"', () => {
    installed();
    expect(thrown(() => new SessionProxyManager({ accounts: ACCOUNTS }).install()).message).toMatch(/^another SessionProxyManager is already installed in this process; use getManager\(\)/);
  });
});

