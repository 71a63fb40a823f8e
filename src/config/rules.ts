/**
 * The configuration of `rules` and `pac`: checked like every other key (code
 * and files alike, key paths in every message, values never echoed), a
 * rule's proxies collected as a pool (parsed later with the merged
 * `defaultProtocol`), every `match` compiled, and `scopes: true` with a
 * proxy refused.
 */
import type { ProxySpec, RoutingRule } from '../options.js';
import { checkMatch } from '../routing/rules.js';
import { pacSource } from '../routing/pac/spec.js';
import { isPlainObject, ownView } from './keys.js';
import { keyPath, kindOf } from './path.js';
import { fail, shown, unknownKey, type Checker } from './report.js';
import type { Rule } from './values.js';

/** The keys of RoutingRule, and of a rule in a file. */
export const RULE_KEYS: readonly string[] = ['match', 'proxy', 'scopes'];
/** The keys of PacOptions. */
export const PAC_OPTION_KEYS: readonly string[] = ['url', 'script', 'refreshInterval', 'fetchTimeout', 'evalTimeout', 'cacheSize'];

/** A rule as written: its proxy a pool still to be parsed. */
export interface RuleRef<Pool> {
  readonly path: string;
  readonly match: string | readonly string[];
  readonly proxy: 'direct' | 'block' | Pool;
  readonly scopes?: boolean;
}

/** Checks `rules`; `pool` collects a rule's proxies as the validator does an account's. */
export function checkRules<Pool>(v: unknown, c: Checker, pool: (spec: unknown, path: string) => Pool): Array<RuleRef<Pool>> {
  if (!Array.isArray(v)) throw fail('rules', `expected an array of { match, proxy } rules, got ${kindOf(v)}`, c.source);
  return v.map((raw, i) => {
    const path = keyPath('rules', i);
    if (!isPlainObject(raw)) throw fail(path, `expected a rule { match, proxy, scopes? }, got ${kindOf(raw)}`, c.source);
    const r = ownView(raw);
    for (const key of Object.keys(r)) if (!RULE_KEYS.includes(key)) throw unknownKey(c, path, key, RULE_KEYS);
    const match = r.match;
    const matchPath = keyPath(path, 'match');
    if (typeof match === 'string') {
      if (match.trim() === '') throw fail(matchPath, 'expected a host, domain, IP or CIDR entry, got an empty string', c.source);
    } else if (Array.isArray(match) && match.length > 0) {
      match.forEach((e, j) => {
        if (typeof e !== 'string' || e.trim() === '') throw fail(keyPath(matchPath, j), `expected a host, domain, IP or CIDR entry, got ${e === '' ? 'an empty string' : kindOf(e)}`, c.source);
      });
    } else {
      throw fail(matchPath, `expected a host, domain, IP or CIDR entry (or a non-empty array of them), got ${Array.isArray(match) ? 'an empty array' : kindOf(match)}`, c.source);
    }
    try {
      checkMatch(match as string | string[], matchPath);
    } catch (err) {
      throw fail('', (err as Error).message, c.source);
    }
    if (r.scopes !== undefined && typeof r.scopes !== 'boolean') throw fail(keyPath(path, 'scopes'), `expected true or false, got ${kindOf(r.scopes)}`, c.source);
    const proxyPath = keyPath(path, 'proxy');
    if (r.proxy === undefined) throw fail(proxyPath, "expected a proxy or pool, 'direct' or 'block', got nothing", c.source);
    const proxy = r.proxy === 'direct' || r.proxy === 'block' ? r.proxy : pool(r.proxy, proxyPath);
    if (r.scopes === true && proxy !== 'direct' && proxy !== 'block') {
      throw fail(
        path,
        "a rule with scopes: true may only be 'direct' or 'block': inside an account's scope the account's proxy stays, and a rule may narrow it but never send the account's requests through another proxy",
        c.source,
      );
    }
    return { path, match: match as string | string[], proxy, ...(r.scopes !== undefined ? { scopes: r.scopes as boolean } : {}) };
  });
}

/** The rules as options, their pools parsed. */
export function resolveRules<Pool>(refs: ReadonlyArray<RuleRef<Pool>>, parse: (pool: Pool) => ProxySpec): RoutingRule[] {
  return refs.map((r) => ({
    match: typeof r.match === 'string' ? r.match : [...r.match],
    proxy: r.proxy === 'direct' ? 'direct' : r.proxy === 'block' ? 'block' : parse(r.proxy as Pool),
    ...(r.scopes !== undefined ? { scopes: r.scopes } : {}),
  }));
}

function positive(what: string, integer = false): Rule {
  return (v, path, c) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) throw fail(path, `expected ${what}, got ${kindOf(v)}`, c.source);
    return v;
  };
}

const PAC_RULES: Readonly<Record<string, Rule>> = {
  url: (v, path, c) => {
    if (typeof v !== 'string' || v.trim() === '') throw fail(path, `expected a PAC URL (http://, https:// or file://), got ${kindOf(v)}`, c.source);
    const s = pacSourceOrFail(v, path, c);
    if (s !== 'url') throw fail(path, 'expected a PAC URL (http://, https:// or file://); give the script text as "script"', c.source);
    return v;
  },
  script: (v, path, c) => {
    if (typeof v !== 'string' || !/\bFindProxyForURL\b/.test(v)) throw fail(path, `expected the text of a PAC script (defining FindProxyForURL), got ${typeof v === 'string' ? 'a string without FindProxyForURL' : kindOf(v)}`, c.source);
    return v;
  },
  refreshInterval: (v, path, c) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw fail(path, `expected a number of milliseconds >= 0, got ${kindOf(v)}`, c.source);
    return v;
  },
  fetchTimeout: positive('a positive number of milliseconds'),
  evalTimeout: positive('a positive number of milliseconds'),
  cacheSize: positive('a whole number of answers >= 1', true),
};

function pacSourceOrFail(v: string, path: string, c: Checker): 'url' | 'script' {
  try {
    return pacSource(v, path).kind;
  } catch (err) {
    throw fail('', (err as Error).message, c.source);
  }
}

/** Option `pac`: a URL or script text, or PacOptions with exactly one of `url` / `script`. */
export const checkPac: Rule = (v, path, c) => {
  if (typeof v === 'string') {
    if (v.trim() === '') throw fail(path, 'expected a PAC URL or the text of a PAC script, got an empty string', c.source);
    pacSourceOrFail(v, path, c);
    return v;
  }
  if (!isPlainObject(v)) throw fail(path, `expected a PAC URL, the text of a PAC script, or { url | script, refreshInterval, fetchTimeout, evalTimeout, cacheSize }, got ${kindOf(v)}`, c.source);
  const o = ownView(v);
  for (const key of Object.keys(o)) {
    if (!PAC_OPTION_KEYS.includes(key)) throw unknownKey(c, path, key, PAC_OPTION_KEYS);
    if (o[key] !== undefined) PAC_RULES[key]!(o[key], keyPath(path, key), c);
  }
  if ((o.url === undefined) === (o.script === undefined)) throw fail(path, 'expected exactly one of "url" and "script"', c.source);
  return v;
};

export const checkPacFallback: Rule = (v, path, c) => {
  if (v !== 'fail' && v !== 'direct') throw fail(path, `expected one of fail, direct, got ${shown(c, v, path)}`, c.source);
  return v;
};
