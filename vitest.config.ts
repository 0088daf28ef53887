import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/**
 * Files whose assertions include tight time bounds (rotation served within 1 s, event-loop delay of a re-check) and
 * the benchmark smoke test, which loads both cores on purpose.
 */
const TIMED = [
  'test/lifecycle/kubernetes-rotation.spec.ts',
  'test/lifecycle/peer-chains.spec.ts',
  'test/bench/bench-smoke.spec.ts',
];

export default defineConfig({
  resolve: {
    // The sample imports the package by name, as users do; tests run it from source.
    alias: [
      { find: /^nestjs-mtls\/testing$/, replacement: source('./lib/testing/index.ts') },
      { find: /^nestjs-mtls\/spiffe$/, replacement: source('./lib/spiffe/index.ts') },
      { find: /^nestjs-mtls\/credentials$/, replacement: source('./lib/credentials/index.ts') },
      { find: /^nestjs-mtls\/terminus$/, replacement: source('./lib/observability/terminus/index.ts') },
      { find: /^nestjs-mtls\/prometheus$/, replacement: source('./lib/observability/prometheus/index.ts') },
      { find: /^nestjs-mtls\/fastify$/, replacement: source('./lib/fastify/index.ts') },
      { find: /^nestjs-mtls\/workload-api$/, replacement: source('./lib/workload-api/index.ts') },
      { find: /^nestjs-mtls$/, replacement: source('./lib/index.ts') },
    ],
  },
  test: {
    // Disposes each file's TestPki instances and temporary directories: nothing is left in os.tmpdir().
    setupFiles: ['test/support/cleanup.setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.spec.ts'],
          // `npm run test:package` (vitest.package.config.ts): it repacks and so rebuilds dist/.
          exclude: [...configDefaults.exclude, 'test/package/**', ...TIMED],
          // Real TLS servers and file watchers: a little parallelism, not one fork per core.
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: 'timed',
          include: TIMED,
          // After the suite, one file at a time: their bounds measure the package, not the other test files.
          sequence: { groupOrder: 1 },
          maxWorkers: 1,
        },
      },
    ],
  },
});
