import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { keyReadableByOthersWarning } from './key-file-mode.js';

/** Folder of the dev token issuer inside the dev CA directory. */
export const DEV_ISSUER_FOLDER = 'issuer';
/** The dev issuer's default `iss`, the sample's `JWT_ISSUER` default. */
export const DEV_ISSUER_DEFAULT = 'https://issuer.shop.test';

/** The files of a dev issuer. */
export interface DevIssuerFiles {
  readonly dir: string;
  /** Public keys, to point `tokens.issuers.<name>.jwks` at. */
  readonly jwks: string;
  /** The ES256 signing key, PKCS#8 PEM, mode 0600. */
  readonly key: string;
  /** `{ issuer, kid }`. */
  readonly config: string;
}

/** What `dev-ca issuer init` did. */
export interface DevIssuerResult {
  readonly action: 'created' | 'loaded';
  readonly issuer: string;
  readonly kid: string;
  readonly files: DevIssuerFiles;
  /** Problems worth telling the user that do not stop the command, e.g. a signing key readable by other users. */
  readonly warnings: readonly string[];
}

/** The files of the dev issuer under `dir` (the dev CA directory). */
export function devIssuerFiles(dir: string): DevIssuerFiles {
  const folder = join(dir, DEV_ISSUER_FOLDER);
  return { dir: folder, jwks: join(folder, 'jwks.json'), key: join(folder, 'issuer.key'), config: join(folder, 'issuer.json') };
}

/**
 * Writes `file` by rename from a new temporary file: an unguessable name created exclusively (`wx`: O_CREAT|O_EXCL,
 * which follows no symlink and opens no existing file), so the key goes into a file this call made, with `mode`.
 */
async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temporary = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, content, { mode, flag: 'wx' });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Creates a development token issuer (an ES256 key and its `jwks.json`) under `<dir>/issuer/`, or loads the one
 * there. An existing key is replaced only with `force`. For development and tests only.
 */
export async function initDevIssuer(options: {
  dir: string;
  issuer?: string | undefined;
  force?: boolean | undefined;
}): Promise<DevIssuerResult> {
  const files = devIssuerFiles(options.dir);
  if (!options.force) {
    try {
      const existing = JSON.parse(await readFile(files.config, 'utf8')) as { issuer: string; kid: string };
      const keyWarning = await keyReadableByOthersWarning(files.key);
      if (options.issuer !== undefined && options.issuer !== existing.issuer) {
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `issuer: the dev issuer in ${files.dir} is ${existing.issuer}; pass --force to replace it`,
        );
      }
      return {
        action: 'loaded',
        issuer: existing.issuer,
        kid: existing.kid,
        files,
        warnings: keyWarning === undefined ? [] : [keyWarning],
      };
    } catch (error) {
      if (error instanceof MtlsConfigError || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  const issuer = options.issuer ?? DEV_ISSUER_DEFAULT;
  if (!issuer.startsWith('https://'))
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `issuer: use an https:// identifier, got ${JSON.stringify(issuer)}`);
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url')
    .slice(0, 16);
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  await writeAtomically(files.key, await exportPKCS8(privateKey), 0o600);
  await writeAtomically(files.jwks, `${JSON.stringify({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }, null, 2)}\n`, 0o644);
  await writeAtomically(files.config, `${JSON.stringify({ issuer, kid }, null, 2)}\n`, 0o644);
  return { action: 'created', issuer, kid, files, warnings: [] };
}

/** Options of {@link mintDevToken}. */
export interface DevTokenOptions {
  readonly dir: string;
  readonly sub: string;
  readonly aud: readonly string[];
  /** Lifetime in ms. */
  readonly ttlMs: number;
  /** A PEM certificate (the first one of the file) to bind the token to (RFC 8705 `cnf["x5t#S256"]`). */
  readonly bindCert?: string | undefined;
  /** Space-separated scopes. */
  readonly scope?: string | undefined;
}

/** Signs a token with the dev issuer under `dir` (created first if missing). */
export async function mintDevToken(options: DevTokenOptions): Promise<string> {
  if (options.sub === '') throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'sub: must not be empty');
  if (options.aud.length === 0 || options.aud.some((a) => a === ''))
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'aud: name at least one audience');
  const { issuer, kid, files } = await initDevIssuer({ dir: options.dir });
  const key = createPrivateKey(await readFile(files.key, 'utf8'));
  const claims: JWTPayload = { sub: options.sub, aud: options.aud.length === 1 ? options.aud[0]! : [...options.aud] };
  if (options.scope !== undefined) claims.scope = options.scope;
  if (options.bindCert !== undefined) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(await readFile(options.bindCert));
    } catch (error) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `bindCert: ${options.bindCert} is not a readable PEM certificate (${(error as Error).message})`,
      );
    }
    claims.cnf = { 'x5t#S256': createHash('sha256').update(certificate.raw).digest('base64url') };
  }
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(issuer)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.ceil(options.ttlMs / 1000))
    .sign(key);
}
