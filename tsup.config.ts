import { defineConfig } from 'tsup';

// One source, two builds (ESM .mjs + CJS .cjs) with .d.mts/.d.cts. Both builds
// keep their runtime state on globalThis under Symbol.for keys (src/state.ts),
// so an app that loads both still has one manager and one scope store.
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  shims: false,
  outExtension: ({ format }) => ({ js: format === 'esm' ? '.mjs' : '.cjs' }),
});
