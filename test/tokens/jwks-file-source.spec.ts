import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TestTokenIssuer, writeKubernetesSecret } from '../../lib/testing/index.js';
import { JwksFileSource } from '../../lib/tokens/jwks-file-source.js';
import { temporaryDir } from '../support/temporary-dirs.js';

/* The JWKS file source against real files changed the way Kubernetes (ConfigMap/Secret `..data` swap) and editors do. */

const sources: JwksFileSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.stop()));
});

function recorder() {
  const lines: string[] = [];
  return {
    lines,
    logger: { log: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) },
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function open(
  file: string,
  logger: ReturnType<typeof recorder>['logger'],
  changes: string[] = [],
): Promise<JwksFileSource> {
  const source = await JwksFileSource.open({
    issuer: 'shop',
    file,
    algorithms: undefined,
    debounceMs: 20,
    pollIntervalMs: 0,
    maxRetryDelayMs: 200,
    logger,
    onChange: ({ result }) => changes.push(result),
  });
  sources.push(source);
  await source.start();
  return source;
}

describe('JwksFileSource', () => {
  it("follows a Kubernetes volume's ..data swap", async () => {
    const issuer = await TestTokenIssuer.create();
    const dir = await temporaryDir('nestjs-mtls-jwks-k8s-');
    await writeKubernetesSecret(dir, { 'jwks.json': JSON.stringify(issuer.jwks()) });
    const { logger, lines } = recorder();
    const source = await open(join(dir, 'jwks.json'), logger);
    expect(source.current.kids).toEqual([issuer.currentKey.kid]);
    const next = await issuer.rotate();
    await writeKubernetesSecret(dir, { 'jwks.json': JSON.stringify(issuer.jwks()) });
    await until(() => source.current.kids.includes(next.kid), 'the rotated key set');
    expect(lines.some((line) => line.startsWith('token issuer shop: JWKS reloaded from'))).toBe(true);
  });

  it('refuses a broken document once per content, keeps serving, and recovers when the file is fixed', async () => {
    const issuer = await TestTokenIssuer.create();
    const dir = await temporaryDir('nestjs-mtls-jwks-');
    const file = join(dir, 'jwks.json');
    await writeFile(file, JSON.stringify(issuer.jwks()));
    const { logger, lines } = recorder();
    const changes: string[] = [];
    const source = await open(file, logger, changes);
    const served = source.current;
    await writeFile(file, '{"keys":[{"kty":"EC"');
    await until(() => changes.includes('refused'), 'the refusal');
    await new Promise((resolve) => setTimeout(resolve, 500)); // several retries with backoff
    expect(source.current).toBe(served);
    expect(lines.filter((line) => line.includes('JWKS on disk refused'))).toHaveLength(1);
    expect(lines.find((line) => line.includes('JWKS on disk refused'))).toMatch(
      /still serving keys "test-key-\d+"; retrying: .*jwks\.json: not JSON/,
    );
    await issuer.rotate();
    await issuer.writeJwks(file);
    await until(() => changes.includes('rotated'), 'the fixed file');
    expect(source.current.kids).toHaveLength(2);
  });
});
