import { afterAll } from 'vitest';
import { TestPki } from '../../lib/testing/test-pki.js';
import { removeTemporaryDirs } from './temporary-dirs.js';

/**
 * Vitest setup file: after each test file (once its own afterAll hooks have closed its apps), dispose every TestPki it
 * created and remove its temporary directories, so `npm test` leaves nothing behind in os.tmpdir().
 */
const pkis: TestPki[] = [];
const create = TestPki.create.bind(TestPki);
TestPki.create = async (...args: Parameters<typeof TestPki.create>): Promise<TestPki> => {
  const pki = await create(...args);
  pkis.push(pki);
  return pki;
};

afterAll(async () => {
  await Promise.all(pkis.splice(0).map((pki) => pki.dispose()));
  await removeTemporaryDirs();
});
