/**
 * A scratch TypeScript consumer of this package: a temp dir whose
 * node_modules links `session-proxy` to the repository (its exports map and
 * dist/ types, as an installed copy resolves them) and, on request, dev
 * packages of the repository (vitest for a test snippet). `tsc --strict`
 * runs over the files written there; the result is tsc's output ('' = clean).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface ConsumerOptions {
  /** Packages of the repository's node_modules to link as well (e.g. `['vitest']`). */
  link?: string[];
}

/** Writes `files` (name → source) into a scratch project and type-checks them; returns tsc's output. */
export function typecheckConsumer(files: Record<string, string>, options: ConsumerOptions = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sp-consumer-'));
  try {
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(repoRoot, path.join(dir, 'node_modules', 'session-proxy'));
    for (const name of options.link ?? []) {
      const target = path.join(dir, 'node_modules', name);
      mkdirSync(path.dirname(target), { recursive: true });
      symlinkSync(path.join(repoRoot, 'node_modules', name), target);
    }
    for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, name), source);
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(repoRoot, 'node_modules/@types')],
        },
        files: Object.keys(files),
      }),
    );
    const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', timeout: 60_000 });
      return '';
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      return `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
