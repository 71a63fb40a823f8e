import { readFileSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

// One source, two builds (ESM .mjs + CJS .cjs) with .d.mts/.d.cts. Both builds
// keep their runtime state on globalThis under Symbol.for keys (src/state.ts),
// so an app that loads both still has one manager and one scope store.
const shared: Options = {
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  shims: false,
  outExtension: ({ format }) => ({ js: format === 'esm' ? '.mjs' : '.cjs' }),
  // src/children/child-env.ts finds dist/ from `import.meta.url` in the ESM
  // build and `__filename` in the CJS one, where import.meta is empty on purpose.
  esbuildOptions(options) {
    options.logOverride = { ...options.logOverride, 'empty-import-meta': 'silent' };
  },
};

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      'testing/index': 'src/testing/index.ts',
      // `session-proxy/register`: node --import / -r preload (ESM and CJS).
      register: 'src/register.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    // The CLI below is built by a parallel config into the same folder.
    clean: ['!cli.mjs', '!cli.mjs.map'],
  },
  {
    ...shared,
    // `session-proxy` bin: ESM only, with a shebang.
    entry: { cli: 'src/cli/index.ts' },
    format: ['esm'],
    dts: false,
    clean: false,
    banner: { js: '#!/usr/bin/env node' },
    define: { __SESSION_PROXY_VERSION__: JSON.stringify(version) },
  },
]);
