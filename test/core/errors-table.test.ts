/**
 * The README's Errors table is the reference for error classes and codes
 * (undici's test/errors.js habit): every SessionProxyError class exported
 * from the package has exactly one row with its code, and every row names an
 * exported class. A new error without a row, a row without a class, or a
 * changed code fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';
import { root } from '../ecosystem/support/run.js';

const { SessionProxyError } = api;

/** (class, code) for each row of the table under `### Errors`. */
function readmeRows(): Array<[string, string]> {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('\n### Errors\n'));
  expect(section.length, 'README has a "### Errors" section').toBeLessThan(readme.length);
  const lines = section.split('\n');
  const header = lines.findIndex((l) => /^\| error \| code \|/.test(l));
  expect(header, 'the Errors section has an "| error | code |" table').toBeGreaterThan(0);
  const rows: Array<[string, string]> = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const [cls, code] = line.split('|').slice(1, 3).map((c) => c.trim());
    const c = /^`(\w+)`$/.exec(cls!);
    const k = /^`(SP_ERR\w*)`$/.exec(code!);
    expect(c && k, `one class and one code per row: ${line}`).toBeTruthy();
    rows.push([c![1]!, k![1]!]);
  }
  return rows;
}

/** (export name, code) for every exported SessionProxyError class, the base included. */
function exportedErrors(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(api)) {
    // Class inheritance, not instanceof: the brand check of Symbol.hasInstance is for instances.
    if (typeof value !== 'function' || !(value === SessionProxyError || Object.prototype.isPrototypeOf.call(SessionProxyError, value))) continue;
    const instance = new (value as new (message: string) => InstanceType<typeof SessionProxyError>)('x');
    expect(instance.name, `${name}'s name`).toBe(name);
    expect(instance, `${name} is branded`).toBeInstanceOf(SessionProxyError);
    out.push([name, instance.code]);
  }
  return out;
}

describe('README Errors table', () => {
  it('lists every exported error class with its code, and nothing else', () => {
    const rows = readmeRows();
    const exported = exportedErrors();
    expect(exported.length).toBeGreaterThan(10);
    const byName = (pairs: Array<[string, string]>) => Object.fromEntries([...pairs].sort(([a], [b]) => a.localeCompare(b)));
    expect(new Set(rows.map(([n]) => n)).size, 'one row per class').toBe(rows.length);
    expect(byName(rows)).toEqual(byName(exported));
  });

  it('codes are unique and stable-looking', () => {
    const codes = exportedErrors().map(([, code]) => code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^SP_ERR(_[A-Z0-9]+)*$/);
  });
});
