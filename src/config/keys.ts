/**
 * The prototype-key rule. `__proto__`, `constructor` and `prototype` are not
 * data in JavaScript: `out[k] = v` with k = `__proto__` replaces out's
 * prototype (so `{"__proto__": {"strict": false}}` would make `strict` read
 * false without being a key), and `obj.constructor` is always there. They are
 * refused as a key anywhere in a configuration — options in code, a config
 * file, SESSION_PROXY_CONFIG_JSON, account names — with a ConfigError naming
 * the key path; and what builds or reads configuration objects goes through
 * own keys only (`own`, `setOwn`, `ownView`).
 */
import { ConfigError } from '../errors.js';
import { keyPath } from './path.js';

export const FORBIDDEN_KEYS: readonly string[] = Object.freeze(['__proto__', 'constructor', 'prototype']);

export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.includes(key);
}

/** The error for a forbidden key at `path` (the path ends with the key). */
export function forbiddenKey(path: string, key: string, source?: string): ConfigError {
  return new ConfigError(
    `${path}: "${key}" is not allowed as a key or account name (${FORBIDDEN_KEYS.join(', ')} name JavaScript object internals)${source ? ` (in ${source})` : ''}`,
  );
}

/** A plain object: Object.prototype or null as its prototype (what JSON.parse and an object literal make). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as object | null;
  return proto === Object.prototype || proto === null;
}

/** `o[key]` if it is o's own property, else undefined (an inherited value is never configuration). */
export function own(o: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

/** Defines an own, enumerable property: unlike `o[key] = v`, never touches the prototype. */
export function setOwn(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A null-prototype copy of o's own enumerable properties: reads on it see nothing inherited. */
export function ownView(o: object): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(o)) setOwn(out, key, (o as Record<string, unknown>)[key]);
  return out;
}

/**
 * Whether v's prototype is an object literal rather than Object.prototype, null
 * or a class's prototype: what `{ __proto__: { … } }` written in code makes
 * (the key itself is gone, only its effect is left).
 */
export function hasLiteralPrototype(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as object | null;
  if (proto === null || proto === Object.prototype) return false;
  const above = Object.getPrototypeOf(proto) as object | null;
  return (above === Object.prototype || above === null) && !Object.prototype.hasOwnProperty.call(proto, 'constructor');
}

/** Deeper than any configuration is (accounts.a.proxies[0].tls.ca[0] is 6): beyond it, the walkers would overflow the stack. */
export const MAX_DEPTH = 64;

/**
 * Walks plain objects (and arrays) of a configuration and throws on the first
 * forbidden key, or on an object whose prototype was set by a `__proto__`
 * key, or on nesting deeper than MAX_DEPTH (every later walk is recursive:
 * 5 000 levels were a RangeError). Other objects (Buffer, URL, KeyObject,
 * ProxyEndpoint…) are values, not configuration: they are not entered.
 */
export function checkKeys(v: unknown, path: string, source: string | undefined, seen = new Set<object>(), depth = 0): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (depth >= MAX_DEPTH && (Array.isArray(v) || isPlainObject(v))) {
    throw new ConfigError(`${path}: nested more than ${MAX_DEPTH} levels deep${source ? ` (in ${source})` : ''}`);
  }
  if (Array.isArray(v)) {
    v.forEach((e, i) => checkKeys(e, keyPath(path, i), source, seen, depth + 1));
    return;
  }
  if (hasLiteralPrototype(v)) throw forbiddenKey(keyPath(path, '__proto__'), '__proto__', source);
  if (!isPlainObject(v)) return;
  for (const key of Object.getOwnPropertyNames(v)) {
    const at = keyPath(path, key);
    if (isForbiddenKey(key)) throw forbiddenKey(at, key, source);
    checkKeys(v[key], at, source, seen, depth + 1);
  }
}
