import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Patching process globals (net, tls, http, the undici dispatcher) is
    // per-process: each test file runs in its own forked process.
    pool: 'forks',
    fileParallelism: true,
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
