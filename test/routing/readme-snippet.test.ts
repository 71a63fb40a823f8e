/**
 * The README's "Per-destination routing" example is TypeScript that
 * type-checks against the package's own types (strict, as an ESM module
 * with top-level await).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { root } from '../ecosystem/support/run.js';

function snippet(heading: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(`\n## ${heading}\n`);
  expect(at, `README has a "## ${heading}" section`).toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, `a \`\`\`ts block under "## ${heading}"`).toBeTruthy();
  return m![1]!;
}

describe('README: Per-destination routing', () => {
  it('the LLM-router example type-checks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sp-readme-'));
    try {
      const file = join(dir, 'example.mts');
      writeFileSync(file, snippet('Per-destination routing'));
      const program = ts.createProgram([file], {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')],
        baseUrl: root,
        paths: { 'session-proxy': ['src/index.ts'] },
      });
      const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(diagnostics).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
