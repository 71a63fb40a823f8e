/**
 * Every TypeScript snippet of the README (```ts / ```typescript fences)
 * compiles under tsc --strict against the published types, as a user pastes
 * it into a project that installed session-proxy (and vitest, for the test
 * example). A snippet that is deliberately partial is preceded by
 * `<!-- typecheck: skip (why) -->`; keep those few.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, typecheckConsumer } from '../support/consumer.js';

interface Snippet {
  line: number;
  code: string;
  skip?: string;
}

export function tsSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})\s*(ts|typescript)\s*$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) body.push(lines[i]);
    let prev = start - 1;
    while (prev >= 0 && lines[prev].trim() === '') prev--;
    const skip = prev >= 0 ? /^<!--\s*typecheck:\s*skip\s*\((.+)\)\s*-->$/.exec(lines[prev].trim())?.[1] : undefined;
    snippets.push({ line: start + 1, code: body.join('\n'), skip });
  }
  return snippets;
}

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const snippets = tsSnippets(readme);

describe('README TypeScript snippets', () => {
  it('are found, and few are marked partial', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3);
    expect(snippets.filter((s) => s.skip).length).toBeLessThanOrEqual(2);
  });

  it.skipIf(!existsSync(`${repoRoot}/dist/index.d.ts`) && !process.env.CI)('compile with tsc --strict against the published types', () => {
    const files: Record<string, string> = {};
    for (const s of snippets) {
      // One module per snippet (`export {}`: a snippet without imports would otherwise share a global scope).
      if (!s.skip) files[`readme-line-${s.line}.ts`] = `${s.code}\nexport {};\n`;
    }
    expect(typecheckConsumer(files, { link: ['vitest'] })).toBe('');
  }, 90_000);
});
