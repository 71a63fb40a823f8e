/**
 * Session lifetimes as users write them (`'10m'`, `'90s'`, `'2h'`, `'1d'`, or
 * a number of milliseconds) and as vendors want them (whole minutes, whole
 * seconds, or one number with one unit).
 */
import { ConfigError } from '../errors.js';

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** @throws ConfigError */
export function parseDuration(value: unknown, path: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${path}: expected a positive duration ("10m", "90s", "2h") or milliseconds, got ${value}`);
    return value;
  }
  if (typeof value !== 'string') throw new ConfigError(`${path}: expected a duration such as "10m", "90s" or "2h", got ${value === null ? 'null' : typeof value}`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  if (!m) throw new ConfigError(`${path}: expected a duration such as "10m", "90s" or "2h" (units ms, s, m, h, d), got ${value.length <= 20 ? JSON.stringify(value) : 'a long string'}`);
  const ms = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!(ms > 0)) throw new ConfigError(`${path}: a lifetime must be longer than 0`);
  return ms;
}

/** `600000` → `10m`: the largest unit that divides it exactly. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % UNITS[unit]! === 0) return `${ms / UNITS[unit]!}${unit}`;
  return `${ms}ms`;
}

/** A whole number of `unit`s, or undefined when ms is not one. */
export function wholeUnits(ms: number, unit: 's' | 'm' | 'h' | 'd'): number | undefined {
  const n = ms / UNITS[unit]!;
  return Number.isInteger(n) ? n : undefined;
}

export function unitMs(unit: 's' | 'm' | 'h' | 'd'): number {
  return UNITS[unit]!;
}
