/**
 * The `store` option as code, config file and environment give it: checked
 * like every option (no URL echoed: it may hold a Redis password), carried
 * to children so they join the fleet, and a ConfigError naming the package
 * when node-redis is missing. Without `store` nothing of the fleet runs.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, SessionProxyManager, StoreUnavailableError, ProxyUnavailableError, loadConfig } from '../../src/index.js';
import { checkStoreClient, leaseMargin, resolveStore } from '../../src/store/index.js';
import { toDocument } from '../../src/config/serialize.js';
import { liveChildConfig, type LivePools } from '../../src/children/child-config.js';
import type { AccountPool } from '../../src/routing/account-pools.js';

const accounts = { alice: 'http://127.0.0.1:9', bob: 'http://127.0.0.2:9' };

describe('store option', () => {
  it('accepts a redis/rediss/memory URL or { url, prefix, leaseTtl }', () => {
    for (const store of ['redis://127.0.0.1:6379/0', 'rediss://user:pw@redis.internal:6380', 'memory:', { url: 'redis://r:6379', prefix: 'bots', leaseTtl: 5000 }, { url: 'memory:', fingerprint: 'release-2026.12.1' }]) {
      expect(() => new SessionProxyManager({ accounts, store })).not.toThrow();
    }
    expect(resolveStore('redis://r')).toEqual({ target: { kind: 'single', url: 'redis://r' }, where: 'redis://r', prefix: 'session-proxy', ttl: 15_000, margin: 3000 });
    expect(leaseMargin(2000)).toBe(400);
  });

  it('refuses bad values by key path, never echoing the URL', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['http://user:hunter22@r:6379', /^store: expected a redis:\/\/, rediss:\/\/, redis\+cluster:\/\/, redis\+sentinel:\/\/ or memory: URL string, got a string/],
      [{ url: 'redis://r', prefix: 'a{b}' }, /^store\.prefix: expected a non-empty string without braces/],
      [{ url: 'redis://r', leaseTtl: 100 }, /^store\.leaseTtl: expected a number of milliseconds >= 500/],
      [{ url: 'redis://r', ttl: 100 }, /^store\.ttl: unknown key/],
      [{ url: 'redis://r', fingerprint: 'a b' }, /^store\.fingerprint: expected 1 to 64 printable ASCII characters/],
      [{ url: 'redis://r', fingerprint: '' }, /^store\.fingerprint: expected/],
      [{ prefix: 'x' }, /^store\.url: expected/],
      [42, /^store: expected an object/],
    ];
    for (const [store, message] of bad) {
      let err: unknown;
      try {
        new SessionProxyManager({ accounts, store: store as never });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(store)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('hunter22');
    }
    expect(() => new SessionProxyManager({ accounts, store: 'memory:', balance: 'per-connection' })).toThrow(/per-connection/);
    // A per-connection gateway has no one egress per account either; a sticky one is leased by its session.
    const gateway = { url: 'http://customer-acme:gwpass99@gw.example:7777', gateway: 'oxylabs' as const };
    let err: unknown;
    try {
      new SessionProxyManager({ accounts: { alice: [{ ...gateway, session: 'per-connection' }] }, store: 'memory:' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^accounts\.alice\[0\]\.session: a "per-connection" gateway has no single egress/);
    expect((err as Error).message).not.toContain('gwpass99');
    expect(() => new SessionProxyManager({ accounts: { alice: [gateway] }, store: 'memory:' })).not.toThrow();
    expect(() => new SessionProxyManager({ accounts: { alice: [{ ...gateway, session: 'per-connection' }] } })).not.toThrow();
  });

  it('node-redis missing: a ConfigError that says what to install (the URL redacted)', () => {
    let err: unknown;
    try {
      checkStoreClient(resolveStore('redis://:s3cretpw@r:6379'), () => false);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/npm install redis/);
    expect((err as Error).message).not.toContain('s3cretpw');
    expect(() => checkStoreClient(resolveStore('memory:'), () => false)).not.toThrow();
  });

  it('env SESSION_PROXY_STORE and the config key; children get it in their configuration', () => {
    expect(loadConfig({ accounts }, { SESSION_PROXY_STORE: 'redis://127.0.0.1:6380' }).store).toBe('redis://127.0.0.1:6380');
    expect(loadConfig({ accounts, store: 'memory:' }, { SESSION_PROXY_STORE: 'redis://x' }).store).toBe('memory:');
    expect(() => loadConfig({ accounts }, { SESSION_PROXY_STORE: 'mysql://x' })).toThrow(/SESSION_PROXY_STORE: expected a redis/);
    const store = { url: 'redis://r:6379', prefix: 'bots', leaseTtl: 4000 };
    expect(toDocument({ accounts, store }).store).toEqual(store);
    expect(toDocument({ accounts, store: { ...store, fingerprint: 'v42' } }).store).toEqual({ ...store, fingerprint: 'v42' });
  });

  it('store.fingerprint is what the process registers; a child’s configuration carries its parent’s', async () => {
    // The coordinator says hello in the background once the store is connected.
    const registered = async (m: SessionProxyManager): Promise<string[]> => {
      for (let i = 0; i < 100; i++) {
        const fps = (await m.stats({ fleet: true })).instances.map((x) => x.fingerprint);
        if (fps.length) return fps;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('no instance registered within 1 s');
    };
    const m = new SessionProxyManager({ accounts, store: { url: 'memory:', fingerprint: 'parent-fp-1' }, noProxy: [] }).install();
    try {
      expect(await registered(m)).toEqual(['parent-fp-1']);
    } finally {
      await m.uninstall();
    }
    const m2 = new SessionProxyManager({ accounts, store: 'memory:', noProxy: [] }).install();
    try {
      expect(await registered(m2)).toEqual([expect.stringMatching(/^[0-9a-f]{16}$/)]);
    } finally {
      await m2.uninstall();
    }
    const pools: LivePools = { get: () => undefined, all: (): AccountPool[] => [] };
    for (const store of ['redis://:pw@r:6379', { url: 'redis://:pw@r:6379', prefix: 'bots' }]) {
      const doc = JSON.parse(liveChildConfig({ accounts, store }, pools, 'alice', 'route', 'abcd1234abcd1234')) as { store: unknown };
      expect(doc.store).toEqual({ ...(typeof store === 'string' ? { url: store } : store), fingerprint: 'abcd1234abcd1234' });
      // Without a fleet running (no fingerprint), the store travels as given.
      expect((JSON.parse(liveChildConfig({ accounts, store }, pools, undefined, 'all')) as { store: unknown }).store).toEqual(store);
    }
  });

  it('StoreUnavailableError is a ProxyUnavailableError with its own code', () => {
    const e = new StoreUnavailableError('x', { account: 'alice' });
    expect(e).toBeInstanceOf(ProxyUnavailableError);
    expect(e.code).toBe('SP_ERR_STORE_UNAVAILABLE');
    expect(new ProxyUnavailableError('y').code).toBe('SP_ERR_PROXY_UNAVAILABLE');
  });
});
