/**
 * Which configuration a child receives, as the JSON text of a config file.
 *
 * - `route` (option `childConfig`, the default for child processes): the
 *   pools of the route the child was spawned for. Inside
 *   `withProxy(account)` that account's pool alone, with `requireScope`, so
 *   anything in the child that escapes the account's scope is refused rather
 *   than sent direct; outside scopes the default pool alone (no pool: the
 *   parent's own unscoped policy — direct, or refused with requireScope).
 * - `all`: every pool. Workers and `cluster.fork()` workers always get it
 *   (they are the app itself); child processes with `childConfig: 'all'`.
 *
 * Each pool starts at its active proxy in the parent, so a child spawned
 * after a rotation starts on the new one. The text is built when the child
 * is spawned, from the pools as they are then (setAccount/removeAccount).
 *
 * With a fleet store, the child joins the parent's fleet (the store travels
 * with the rest of the options, its URL's password in the file like the
 * proxies') and registers the parent's configuration fingerprint
 * (`store.fingerprint`): what it runs is a part of the parent's
 * configuration — one account's pool, pools starting where the parent's
 * are — not another one, so the fleet reports no mismatch for it.
 */
import { isRuleRoute } from '../routing/rules.js';
import type { ProxyEndpoint } from '../proxy/endpoint.js';
import type { ProxySpec, SessionProxyOptions } from '../options.js';
import { DEFAULT_ACCOUNT, type AccountPool } from '../routing/account-pools.js';
import { serializeConfig } from '../config/serialize.js';

export type ChildConfigMode = 'route' | 'all';

/** `config` narrowed to what a child of `account`'s route (undefined: outside scopes) receives. */
export function childOptions(config: SessionProxyOptions, account: string | undefined, mode: ChildConfigMode): SessionProxyOptions {
  if (mode === 'all') return config;
  const { proxy, accounts, ...rest } = config;
  if (account === undefined || account === DEFAULT_ACCOUNT) return { ...rest, proxy };
  const spec = accounts?.[account];
  return { ...rest, accounts: spec === undefined ? {} : { [account]: spec }, requireScope: true };
}

/** The pools a manager holds now, for building a child's configuration without copying all of them for one. */
export interface LivePools {
  get(account: string): AccountPool | undefined;
  all(): Iterable<AccountPool>;
}

/** `store` with the parent's fleet fingerprint, for a child (unchanged without one). */
export function storeForChild(store: SessionProxyOptions['store'], fingerprint: string | undefined): SessionProxyOptions['store'] {
  if (store === undefined || fingerprint === undefined) return store;
  return { ...(typeof store === 'string' ? { url: store } : store), fingerprint };
}

/**
 * The JSON text for a child of `account`'s route (or every pool), from the
 * manager's pools as they are now; `fingerprint`: the parent's in the fleet.
 */
export function liveChildConfig(options: Readonly<SessionProxyOptions>, pools: LivePools, account: string | undefined, mode: ChildConfigMode, fingerprint?: string): string {
  const { proxy: _p, accounts: _a, ...rest } = options;
  const live: SessionProxyOptions = { ...rest };
  if (rest.store !== undefined) live.store = storeForChild(rest.store, fingerprint);
  const fallback = pools.get(DEFAULT_ACCOUNT);
  if (mode === 'all') {
    const accounts: Record<string, ProxySpec> = {};
    // A rule's pool is rebuilt by the child from `rules`, which travel with the rest of the options.
    for (const pool of pools.all()) if (pool.name !== DEFAULT_ACCOUNT && !isRuleRoute(pool.name)) accounts[pool.name] = pool.proxies;
    if (fallback) live.proxy = fallback.proxies;
    live.accounts = accounts;
  } else if (account === undefined || account === DEFAULT_ACCOUNT) {
    if (fallback) live.proxy = fallback.proxies;
  } else {
    const pool = pools.get(account);
    live.accounts = pool ? { [account]: pool.proxies } : {};
    live.requireScope = true;
  }
  const active = (name: string): ProxyEndpoint | undefined => {
    const pool = pools.get(name);
    return pool?.proxies[pool.active];
  };
  return serializeConfig(live, { active });
}
