import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/** A signing key of a {@link TestTokenIssuer}. */
export interface TestSigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  /** The public JWK as published (with `kid`, `alg`, `use`). */
  readonly publicJwk: JWK;
}

/** Options of one minted token. */
export interface MintOptions {
  /** Sign with this key instead of the current one (e.g. one not in the JWKS). */
  key?: TestSigningKey;
  /** Header overrides (`kid`, `typ`, …); `kid: undefined` leaves it out. */
  header?: Record<string, unknown>;
  /** Lifetime in seconds from now; `null` mints a token without `exp`. @default 300 */
  expiresInSec?: number | null;
}

/** Options of {@link TestPki.tokenIssuer}. */
export interface TestTokenIssuerOptions {
  /** The `iss` of minted tokens. @default 'https://issuer.test' */
  issuer?: string;
  /** @default 'ES256' */
  alg?: 'ES256' | 'ES384' | 'RS256' | 'PS256' | 'EdDSA';
}

let counter = 0;

/**
 * A token issuer for tests: real keys, real signatures. Mints tokens with any claims and any key, deliberately broken
 * ones (unsigned, HS256 keyed with the public key, wrong key), writes its JWKS file (atomically, by rename) and rotates.
 * {@link dispose} removes the directories {@link writeJwks} created (`TestPki.dispose()` does it for its issuers).
 */
export class TestTokenIssuer implements AsyncDisposable {
  /** Directories {@link writeJwks} created, removed by {@link dispose}. */
  readonly #temporaryDirs = new Set<string>();
  #keys: TestSigningKey[];
  #current: TestSigningKey;

  private constructor(
    /** The `iss` of minted tokens. */
    readonly issuer: string,
    private readonly alg: string,
    first: TestSigningKey,
  ) {
    this.#keys = [first];
    this.#current = first;
  }

  /** A new issuer with one signing key. */
  static async create(options: TestTokenIssuerOptions = {}): Promise<TestTokenIssuer> {
    const alg = options.alg ?? 'ES256';
    return new TestTokenIssuer(options.issuer ?? 'https://issuer.test', alg, await TestTokenIssuer.newKey(alg));
  }

  /** A key pair that no JWKS publishes until {@link addKey}; sign with it through `MintOptions.key`. */
  static async newKey(alg = 'ES256', kid = `test-key-${++counter}`): Promise<TestSigningKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    return { kid, alg, privateKey, publicJwk };
  }

  /** The key new tokens are signed with. */
  get currentKey(): TestSigningKey {
    return this.#current;
  }

  /** The published keys. */
  get keys(): readonly TestSigningKey[] {
    return this.#keys;
  }

  /** The JWKS document of the published keys. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#keys.map((key) => key.publicJwk) };
  }

  /** Publishes a new key and signs with it from now on; the old keys stay published until {@link removeKey}. */
  async rotate(): Promise<TestSigningKey> {
    const key = await TestTokenIssuer.newKey(this.alg);
    this.#keys = [...this.#keys, key];
    this.#current = key;
    return key;
  }

  /** Publishes a key made by {@link newKey}. */
  addKey(key: TestSigningKey): void {
    this.#keys = [...this.#keys, key];
  }

  /** Stops publishing a key. */
  removeKey(kid: string): void {
    this.#keys = this.#keys.filter((key) => key.kid !== kid);
  }

  /**
   * Writes the JWKS to `file` (default: a new temporary directory's `jwks.json`) by writing a temporary file and
   * renaming it over the target, as most writers do; returns the path.
   */
  async writeJwks(file?: string): Promise<string> {
    let target = file;
    if (target === undefined) {
      const dir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-jwks-'));
      this.#temporaryDirs.add(dir);
      target = join(dir, 'jwks.json');
    }
    const temporary = `${target}.${process.pid}.${++counter}.tmp`;
    await writeFile(temporary, JSON.stringify(this.jwks()));
    await rename(temporary, target);
    return target;
  }

  /**
   * Removes the directories {@link writeJwks} created (never a `file` it was given). Close the apps that read them
   * first. Safe to call twice; the issuer can still mint and write afterwards.
   */
  async dispose(): Promise<void> {
    const dirs = [...this.#temporaryDirs];
    this.#temporaryDirs.clear();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }

  /** `await using issuer = await TestTokenIssuer.create()` disposes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** A signed token: `iss` and `iat` by default, `exp` in 5 minutes unless `expiresInSec` says otherwise. */
  async mint(claims: JWTPayload = {}, options: MintOptions = {}): Promise<string> {
    const key = options.key ?? this.#current;
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = { iss: this.issuer, iat: now, ...claims };
    const expiresIn = options.expiresInSec === undefined ? 300 : options.expiresInSec;
    if (expiresIn !== null && !('exp' in claims)) payload.exp = now + expiresIn;
    const header = { alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header };
    for (const name of Object.keys(header))
      if ((header as Record<string, unknown>)[name] === undefined) delete (header as Record<string, unknown>)[name];
    return new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
  }

  /** An unsigned token (`alg: none`, empty signature replaced by one junk character so it still has three parts). */
  unsigned(claims: JWTPayload = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${part({ alg: 'none', typ: 'JWT', kid: this.#current.kid })}.${part({ iss: this.issuer, iat: now, exp: now + 300, ...claims })}.x`;
  }

  /** The algorithm-confusion attack: HS256 keyed with the current public key's JWK JSON, as a naive verifier would use. */
  async hs256WithPublicKey(claims: JWTPayload = {}): Promise<string> {
    const secret = new TextEncoder().encode(JSON.stringify(this.#current.publicJwk));
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: this.issuer, iat: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: 'HS256', kid: this.#current.kid, typ: 'JWT' })
      .sign(secret);
  }
}

/** RFC 8705 `x5t#S256` of a PEM certificate (the leaf, first in a chain): base64url SHA-256 of its DER. */
export function certificateThumbprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url');
}
