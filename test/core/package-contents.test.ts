/**
 * What `npm pack` puts in the package (npm's own file list, `--dry-run`):
 * the LICENSE that package.json's `license` names, and every file a shipped
 * Markdown document links to — a link into the repository that the package
 * does not contain is dead for everyone who reads the installed copy.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/consumer.js';

function packedFiles(): string[] {
  // --ignore-scripts: `prepare` would rebuild dist/ under the other test files.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  return (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path);
}

/** Relative link targets of a Markdown text, fenced code left out. */
export function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/^(\s*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1\2\s*$/gm, '');
  const targets = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#')).map((t) => t.split('#')[0]);
}

describe('package contents', () => {
  const files = packedFiles();
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { license: string };

  it('ship the LICENSE that package.json names', () => {
    expect(pkg.license).toBe('MIT');
    expect(files).toContain('LICENSE');
    const license = readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8');
    expect(license.split('\n')[0]).toBe('MIT License');
    expect(license).toContain('Copyright (c) 2026 session-proxy contributors');
  });

  it('ship every file that a shipped Markdown document links to', () => {
    const docs = files.filter((f) => f.endsWith('.md'));
    expect(docs).toContain('README.md');
    const dead: string[] = [];
    for (const doc of docs) {
      for (const link of relativeLinks(readFileSync(path.join(repoRoot, doc), 'utf8'))) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(doc), decodeURI(link))).replace(/\/$/, '');
        const shipped = files.includes(target) || files.some((f) => f.startsWith(`${target}/`));
        if (!shipped) dead.push(`${doc} → ${link}`);
      }
    }
    expect(dead).toEqual([]);
  });
});
