/**
 * The published type declarations resolve for an ESM and a CJS consumer
 * (exports map: `types` first under `import` and `require`), checked by tsc
 * in a scratch project that links this package by name.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('published types', () => {
  it.skipIf(!existsSync(`${root}/dist/index.d.ts`) && !process.env.CI)('resolve for ESM (.mts) and CJS (.cts) consumers of both entries', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sp-types-'));
    try {
      mkdirSync(path.join(dir, 'node_modules'));
      symlinkSync(root, path.join(dir, 'node_modules', 'session-proxy'));
      writeFileSync(
        path.join(dir, 'esm.mts'),
        `import { SessionProxyManager, LeakBlockedError, type ProxyInfo } from 'session-proxy';
import { startMockProxy, type MockProxy } from 'session-proxy/testing';
const m: SessionProxyManager = new SessionProxyManager({ accounts: { a: 'http://127.0.0.1:1' }, strategy: 'least-used' });
const info: ProxyInfo = m.current('a');
const p: Promise<MockProxy> = startMockProxy({ egressIp: '127.0.0.2' });
const e: string = new LeakBlockedError('x').code;
void info; void p; void e;
`,
      );
      writeFileSync(
        path.join(dir, 'cjs.cts'),
        `import { install, withProxy } from 'session-proxy';
import { testCa } from 'session-proxy/testing';
const ca: string = testCa;
const r: Promise<number> = withProxy('a', async () => 1);
void install; void ca; void r;
`,
      );
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(root, 'node_modules/@types')] },
          files: ['esm.mts', 'cjs.cts'],
        }),
      );
      const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
      let output = '';
      try {
        execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', timeout: 60_000 });
      } catch (err) {
        output = String((err as { stdout?: string }).stdout);
      }
      expect(output).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
