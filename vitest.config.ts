import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real TLS servers and file watchers: a little parallelism, not one fork per core.
    maxWorkers: 2,
  },
});
