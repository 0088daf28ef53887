import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.js';

const { projects: _suiteProjects, ...shared } = base.test ?? {};

/** `npm run test:package`: the packed tarball installed into a fresh app (rebuilds dist/, so not part of `npm test`). */
export default defineConfig({
  ...base,
  test: { ...shared, include: ['test/package/**/*.spec.ts'], exclude: configDefaults.exclude },
});
