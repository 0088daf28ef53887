import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestPki } from '../lib/testing/index.js';
import { VERIFIED_TOKENS_PER_ISSUER } from '../lib/tokens/verified-tokens.js';

/** The identity every server presents (and the rotation server calls itself as). */
export const SERVER_SPIFFE_ID = 'spiffe://shop.test/ns/shop/sa/inventory';
/** The identity of the load generators, the one `@AllowPeers('orders')` admits. */
export const CALLER_SPIFFE_ID = 'spiffe://shop.test/ns/shop/sa/orders';

/** Distinct tokens the token group cycles through: four times what a verifier keeps (VERIFIED_TOKENS_PER_ISSUER). */
export const DISTINCT_TOKENS = 4 * VERIFIED_TOKENS_PER_ISSUER;

/** The CA and the credential directories (Kubernetes Secret layout) of one run, in a temporary directory. */
export interface BenchFixtures {
  readonly pki: TestPki;
  /** Read by the servers of the throughput groups; never rewritten. */
  readonly serverDir: string;
  /** The load generators' credentials. */
  readonly callerDir: string;
  /** The rotation server's Secret directory, rewritten by the rotation group. */
  readonly rotationDir: string;
  /** The token group's issuer JWKS file. */
  readonly jwksFile: string;
  /** A token of that issuer for the load generators' route, valid for the whole run. */
  readonly token: string;
  /**
   * `Authorization` header values of {@link DISTINCT_TOKENS} tokens of that issuer, each with its own `jti`, one per line
   * (a job's arguments could not hold them): sent in turn, one per request, they are more than the verifier keeps
   * verified, so every request is a full verification.
   */
  readonly distinctAuthorizationsFile: string;
  /** Deletes every file of the run. */
  remove(): Promise<void>;
}

/** Mints ECDSA P-256 credentials for the servers and the callers under one test CA. */
export async function createFixtures(): Promise<BenchFixtures> {
  const root = await mkdtemp(join(tmpdir(), 'nestjs-mtls-bench-'));
  try {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SERVER_SPIFFE_ID, join(root, 'server'));
    const caller = await pki.credentials(CALLER_SPIFFE_ID, join(root, 'caller'));
    const rotation = await pki.credentials(SERVER_SPIFFE_ID, join(root, 'rotation'));
    const issuer = await pki.tokenIssuer({ issuer: 'https://issuer.bench.test' });
    const jwksFile = await issuer.writeJwks(join(root, 'jwks.json'));
    const token = await issuer.mint({ sub: 'bench-user', aud: 'inventory' }, { expiresInSec: 24 * 3600 });
    const distinctTokens: string[] = [];
    for (let i = 0; i < DISTINCT_TOKENS; i++) {
      distinctTokens.push(
        await issuer.mint({ sub: 'bench-user', aud: 'inventory', jti: `bench-${i}` }, { expiresInSec: 24 * 3600 }),
      );
    }
    const distinctAuthorizationsFile = join(root, 'distinct-authorizations.txt');
    await writeFile(distinctAuthorizationsFile, distinctTokens.map((token) => `Bearer ${token}\n`).join(''));
    return {
      pki,
      serverDir: server.dir,
      callerDir: caller.dir,
      rotationDir: rotation.dir,
      jwksFile,
      token,
      distinctAuthorizationsFile,
      remove: () => rm(root, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}
