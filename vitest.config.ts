import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

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
    include: ['test/**/*.spec.ts'],
    // `npm run test:package` (vitest.package.config.ts): it repacks and so rebuilds dist/.
    exclude: [...configDefaults.exclude, 'test/package/**'],
    // Disposes each file's TestPki instances and temporary directories: nothing is left in os.tmpdir().
    setupFiles: ['test/support/cleanup.setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real TLS servers and file watchers: a little parallelism, not one fork per core.
    maxWorkers: 2,
  },
});
