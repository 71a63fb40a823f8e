/** Key paths for messages: `accounts.alice[1]`, `accounts["my bot"].proxyList`. */

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

export function keyPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const part = IDENT.test(key) ? key : JSON.stringify(key);
  if (base === '') return IDENT.test(key) ? key : `[${part}]`;
  return IDENT.test(key) ? `${base}.${key}` : `${base}[${part}]`;
}

/** The kind of a value, for messages that must not echo the value itself. */
export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as { constructor?: unknown } | null;
    const name = proto === null || proto === Object.prototype || typeof proto.constructor !== 'function' ? '' : (proto.constructor as { name?: string }).name;
    return name && name !== 'Object' ? `an object (${name})` : 'an object';
  }
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isFinite(v) ? 'a number' : String(v);
  if (typeof v === 'boolean') return `${v}`;
  if (typeof v === 'function') return 'a function';
  return typeof v;
}
