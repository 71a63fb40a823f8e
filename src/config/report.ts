/**
 * How the configuration validator reports: `path: what (expected …) (in
 * source)`, a "did you mean" for a near-miss key, and the one rule for
 * showing a value — never, except a short string that came from no
 * `${VAR}` (any string may hold a password; an enumeration's typo is worth
 * showing).
 */
import { ConfigError } from '../errors.js';
import { keyPath, kindOf } from './path.js';

/** What every check of one layer shares. */
export interface Checker {
  readonly source: string;
  /** `file`: the config-file format (a file, SESSION_PROXY_CONFIG_JSON); `code`: options given in code. */
  readonly kind: 'file' | 'code';
  /** Key paths whose string value used a `${VAR}`: never shown. */
  readonly secret: ReadonlySet<string>;
}

/** The error every check throws: `path: what (expected …) (in source)`. */
export function fail(path: string, message: string, source?: string): ConfigError {
  const where = path === '' ? '' : `${path}: `;
  return new ConfigError(`${where}${message}${source ? ` (in ${source})` : ''}`);
}

/** `"round-robn"` for a short string that came from no `${VAR}`, else its kind. */
export function shown(c: Checker, v: unknown, path: string): string {
  return typeof v === 'string' && !c.secret.has(path) && v.length <= 20 ? JSON.stringify(v) : kindOf(v);
}

/** `unknown key (did you mean "x"?) (expected one of …)`; `hint` replaces the list. */
export function unknownKey(c: Checker, base: string, key: string, known: readonly string[], hint?: string): ConfigError {
  return fail(keyPath(base, key), `unknown key${suggest(key, known)} (${hint ?? `expected one of ${known.join(', ')}`})`, c.source);
}

/** ` (did you mean "strict"?)` for a near miss, else ''. */
export function suggest(key: string, known: readonly string[]): string {
  // A suggestion is at most max(1, ⌊length/3⌋) edits from a known key, and
  // every edit changes the length by at most one: a key too long for that is
  // no near miss, and its distances (quadratic: a 200 KB key took 14 s) are
  // not worth computing.
  const longest = Math.max(0, ...known.map((k) => k.length));
  if (key.toLowerCase().length > longest + Math.max(1, Math.floor(longest / 3))) return '';
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
