/**
 * The options whose value the config layer only checks and hands on: the
 * booleans it also merges, and the manager's own options (rotation, health,
 * egress verification, pool timers). The same rules apply to a file, to
 * SESSION_PROXY_CONFIG_JSON and to options given in code.
 */
import { ROTATION_STRATEGIES } from '../routing/strategies.js';
import { isPlainObject, own } from './keys.js';
import { keyPath, kindOf } from './path.js';
import { fail, shown, unknownKey, type Checker } from './report.js';
import { checkPac, checkPacFallback } from './rules.js';
import { StoreSpecError, URL_FORMS, parseStoreTarget, type StoreLocation } from '../store/target.js';

/** Checks one value; returns it (or throws a ConfigError naming `path`). */
export type Rule = (v: unknown, path: string, c: Checker) => unknown;

export const BOOLEAN_KEYS = ['strict', 'requireScope', 'tunnelSockets', 'env'] as const;

const bool: Rule = (v, path, c) => {
  if (typeof v !== 'boolean') throw fail(path, `expected true or false, got ${kindOf(v)}`, c.source);
  return v;
};

function ms(what: string, ok: (n: number) => boolean, integer = false): Rule {
  return (v, path, c) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v) || (integer && !Number.isInteger(v))) throw fail(path, `expected ${what}, got ${kindOf(v)}`, c.source);
    return v;
  };
}
const positive = ms('a positive number of milliseconds', (n) => n > 0);
const nonNegative = ms('a number of milliseconds >= 0', (n) => n >= 0);

function oneOf(values: readonly string[]): Rule {
  return (v, path, c) => {
    if (typeof v !== 'string' || !values.includes(v)) throw fail(path, `expected one of ${values.join(', ')}, got ${shown(c, v, path)}`, c.source);
    return v;
  };
}

/** An object of known keys, each with its rule. */
function shape(rules: Readonly<Record<string, Rule>>, example: string): Rule {
  const keys = Object.keys(rules);
  return (v, path, c) => {
    if (!isPlainObject(v)) throw fail(path, `expected an object (e.g. ${example}), got ${kindOf(v)}`, c.source);
    for (const key of Object.keys(v)) {
      if (!keys.includes(key)) throw unknownKey(c, path, key, keys);
      const value = own(v, key);
      if (value !== undefined) rules[key]!(value, keyPath(path, key), c);
    }
    return v;
  };
}

const httpUrl: Rule = (v, path, c) => {
  if (typeof v !== 'string' || !/^https?:\/\//i.test(v) || !URL.canParse(v)) throw fail(path, `expected an http(s) URL string, got ${kindOf(v)}`, c.source);
  return v;
};

/** The keys of HealthOptions and HealthCheckOptions (a test keeps them equal to the TypeScript interfaces and the schema). */
export const HEALTH_RULES: Readonly<Record<string, Rule>> = {
  threshold: ms('a whole number of failures >= 1', (n) => n >= 1, true),
  windowMs: positive,
  cooldownMs: nonNegative,
  maxCooldownMs: nonNegative,
};
export const HEALTH_CHECK_RULES: Readonly<Record<string, Rule>> = {
  interval: positive,
  timeout: positive,
  url: httpUrl,
};

/**
 * `store`: where the fleet's Redis is (store/target.ts parses it: one Redis, a
 * Cluster, a Sentinel set, or memory:). Values are never echoed (a Redis URL
 * may hold a password); a message names the key and says what was expected.
 */
function storeLocation(v: unknown, path: string, c: Checker): void {
  try {
    parseStoreTarget(v as string | StoreLocation);
  } catch (err) {
    if (err instanceof StoreSpecError) throw fail(`${path}${err.at}`, err.reason, c.source);
    throw err;
  }
}

const storeUrl: Rule = (v, path, c) => {
  if (typeof v !== 'string') throw fail(path, `expected ${URL_FORMS}, got ${kindOf(v)}`, c.source);
  storeLocation(v, path, c);
  return v;
};

const nodeList: Rule = (v, path, c) => {
  if (!Array.isArray(v) || v.length === 0) throw fail(path, `expected a non-empty array of node URL strings, got ${Array.isArray(v) ? 'an empty array' : kindOf(v)}`, c.source);
  return v;
};

/** The keys of StoreSentinelOptions (a test keeps them equal to the TypeScript interface and the schema); store/target.ts checks the values. */
export const STORE_SENTINEL_RULES: Readonly<Record<string, Rule>> = {
  name: (v, path, c) => {
    if (typeof v !== 'string' || v === '') throw fail(path, `expected the primary’s name (a non-empty string), got ${kindOf(v)}`, c.source);
    return v;
  },
  nodes: nodeList,
  database: ms('a whole number >= 0', (n) => n >= 0, true),
};

/** The keys of StoreOptions (a test keeps them equal to the TypeScript interface and the schema). */
export const STORE_RULES: Readonly<Record<string, Rule>> = {
  url: (v, path, c) => {
    if (typeof v !== 'string') throw fail(path, `expected ${URL_FORMS}, got ${kindOf(v)}`, c.source);
    return v;
  },
  cluster: nodeList,
  sentinel: shape(STORE_SENTINEL_RULES, '{ "name": "mymaster", "nodes": ["redis://10.0.0.5:26379"] }'),
  prefix: (v, path, c) => {
    // Braces would break the `{prefix}` hash tag that keeps a fleet's keys in one Cluster slot.
    if (typeof v !== 'string' || v === '' || /[{}\s]/.test(v)) throw fail(path, `expected a non-empty string without braces or spaces, got ${typeof v === 'string' ? 'a string with braces or spaces' : kindOf(v)}`, c.source);
    return v;
  },
  leaseTtl: ms('a number of milliseconds >= 500', (n) => n >= 500),
  fingerprint: (v, path, c) => {
    if (typeof v !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(v)) throw fail(path, `expected 1 to 64 printable ASCII characters without spaces, got ${typeof v === 'string' ? 'another string' : kindOf(v)}`, c.source);
    return v;
  },
};

const storeObject = shape(STORE_RULES, '{ "url": "redis://127.0.0.1:6379", "leaseTtl": 15000 }');

/** Options owned by the manager that the config layer checks and passes through. */
export const PASS_THROUGH: Readonly<Record<string, Rule>> = {
  strategy: oneOf(ROTATION_STRATEGIES),
  balance: oneOf(['sticky', 'per-connection']),
  exclusive: bool,
  failover: bool,
  health: shape(HEALTH_RULES, '{ "threshold": 3, "cooldownMs": 5000 }'),
  healthCheck: shape(HEALTH_CHECK_RULES, '{ "interval": 30000 }'),
  egressEndpoints: (v, path, c) => {
    if (!Array.isArray(v) || v.length === 0) throw fail(path, `expected a non-empty array of URL strings, got ${Array.isArray(v) ? 'an empty array' : kindOf(v)}`, c.source);
    v.forEach((e, i) => {
      if (typeof e !== 'string' || e === '') throw fail(keyPath(path, i), `expected a URL string, got ${e === '' ? 'an empty string' : kindOf(e)}`, c.source);
    });
    return v;
  },
  verifyOnStart: bool,
  verifyOnRotate: bool,
  verifyEvery: positive,
  onMismatch: oneOf(['error', 'quarantine']),
  idleTimeout: nonNegative,
  drainTimeout: nonNegative,
  childConfig: oneOf(['route', 'all']),
  // Checked in depth by egress/watch.ts (checkWatchOptions) when the manager is built.
  watchEgress: (v, path, c) => {
    if (!isPlainObject(v)) throw fail(path, `expected an object (e.g. { "interval": 60000, "onChange": "quarantine" }), got ${kindOf(v)}`, c.source);
    return v;
  },
  systemCa: bool,
  pac: (v, path, c) => checkPac(v, path, c),
  pacFallback: (v, path, c) => checkPacFallback(v, path, c),
  store: (v, path, c) => {
    if (typeof v === 'string') return storeUrl(v, path, c);
    storeObject(v, path, c);
    storeLocation(v, path, c);
    return v;
  },
};

export const checkBoolean = bool;

/** Whether `rule` accepts v (for the serializer, which drops what a child would refuse). */
export function accepts(rule: Rule, v: unknown): boolean {
  try {
    rule(v, '', { source: '', kind: 'code', secret: new Set() });
    return true;
  } catch {
    return false;
  }
}
