// The dev CA on disk: where its files live, creating, writing, loading and checking it.
import { lstat, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { keyReadableByOthersWarning } from './key-file-mode.js';
import { join } from 'node:path';
import { CredentialsError } from '../errors/mtls.errors.js';
import { errorCode } from '../errors/error-code.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { parseCertificatesPem } from '../x509/certificate.js';
import { CertificateAuthority } from '../x509/certificate-authority.js';
import { formatDuration } from '../format/duration.js';
import { RENEW_FRACTION } from './dev-certificate-policy.js';

/** Folder under the dev CA directory that holds the CA itself (`ca.crt`, `ca.key`). */
export const DEV_CA_FOLDER = 'ca';
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
const DAY_MS = 24 * 60 * 60 * 1000;
export const CA_WARNING_MS = 30 * DAY_MS;
/** The command that replaces the dev CA. */
export const FORCE_HINT = 'nestjs-mtls dev-ca init --force';
export const REPLACE_CA = `replace the CA with \`${FORCE_HINT}\` (its key is then overwritten)`;

export interface CaFiles {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
}

export function caFiles(dir: string): CaFiles {
  const caDir = join(dir, DEV_CA_FOLDER);
  return { dir: caDir, cert: join(caDir, CA_CERT_FILE), key: join(caDir, CA_KEY_FILE) };
}

export async function createCa(trustDomain: string, validityMs: number): Promise<CertificateAuthority> {
  const label = `nestjs-mtls dev CA ${trustDomain}`;
  // RFC 5280 upper bound for a commonName is 64 characters.
  return CertificateAuthority.create({ trustDomain, validityMs, commonName: label.length <= 64 ? label : 'nestjs-mtls dev CA' });
}

/**
 * Writes the CA into a fresh folder and renames it into place, so `ca/` appears with both files or not at all. Returns
 * false when, without `replace`, another process put a CA there first.
 */
export async function writeCa(
  dir: string,
  files: CaFiles,
  ca: CertificateAuthority,
  options: { replace: boolean },
): Promise<boolean> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(join(dir, '.ca-'));
  try {
    await writeFile(join(staging, CA_KEY_FILE), ca.keyPem, { mode: 0o600, flag: 'wx' });
    await writeFile(join(staging, CA_CERT_FILE), ca.certPem, { mode: 0o644, flag: 'wx' });
    let retired: string | undefined;
    if (options.replace) {
      retired = `${staging}.replaced`;
      try {
        await rename(files.dir, retired);
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error;
        retired = undefined;
      }
    }
    try {
      await rename(staging, files.dir);
    } catch (error) {
      if (retired !== undefined) {
        await rename(retired, files.dir);
        throw error;
      }
      // rename(2) over a non-empty directory: somebody else's CA is already there.
      if (errorCode(error) === 'ENOTEMPTY' || errorCode(error) === 'EEXIST') return false;
      throw error;
    }
    if (retired !== undefined) {
      await rm(retired, { recursive: true, force: true });
    }
    return true;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Loads the CA in `ca/`; undefined when neither file exists. Throws when it cannot be used, saying how to fix it. */
export async function loadExistingCa(files: CaFiles): Promise<{ ca: CertificateAuthority; warnings: string[] } | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(files.cert, 'ca'), readIfExists(files.key, 'key')]);
  if (certPem === undefined && keyPem === undefined) {
    return undefined;
  }
  if (certPem === undefined || keyPem === undefined) {
    const [missing, present, field] =
      certPem === undefined ? [files.cert, files.key, 'ca' as const] : [files.key, files.cert, 'key' as const];
    throw new CredentialsError(
      'ERR_MTLS_CREDENTIALS_UNREADABLE',
      `the dev CA is incomplete: ${present} exists but ${missing} does not`,
      { file: missing, field, fix: `restore it, or ${REPLACE_CA}` },
    );
  }
  let ca: CertificateAuthority;
  try {
    ca = await CertificateAuthority.load(certPem, keyPem, { certFile: files.cert, keyFile: files.key });
  } catch (error) {
    if (error instanceof CredentialsError) {
      throw new CredentialsError(
        error.code,
        error.reason,
        { file: error.file, field: error.field, fix: `${error.fix}; or ${REPLACE_CA}` },
        { cause: error },
      );
    }
    throw error;
  }
  const warnings = checkCaValidity(ca, files);
  const keyWarning = await keyReadableByOthersWarning(files.key);
  if (keyWarning !== undefined) warnings.push(keyWarning);
  return { ca, warnings };
}

/** Throws when the CA cannot issue a valid certificate now; returns a warning when it expires soon. */
export function checkCaValidity(ca: CertificateAuthority, files: CaFiles): string[] {
  const now = Date.now();
  const replace = `replace the CA with \`${FORCE_HINT}\`, then re-issue its certificates (dev-ca issue, or npm run sample)`;
  if (now >= ca.notAfter.getTime()) {
    const ago = formatDuration(now - ca.notAfter.getTime());
    throw new CredentialsError('ERR_MTLS_CERT_EXPIRED', `the dev CA expired ${ago} ago (${ca.notAfter.toISOString()})`, {
      file: files.cert,
      field: 'ca',
      fix: replace,
    });
  }
  if (now < ca.notBefore.getTime()) {
    throw new CredentialsError('ERR_MTLS_CERT_NOT_YET_VALID', `the dev CA is not valid until ${ca.notBefore.toISOString()}`, {
      file: files.cert,
      field: 'ca',
      fix: `check the system clock, or ${replace}`,
    });
  }
  const left = ca.notAfter.getTime() - now;
  const lifetime = ca.notAfter.getTime() - ca.notBefore.getTime();
  if (left <= Math.min(CA_WARNING_MS, lifetime * RENEW_FRACTION)) {
    return [`the dev CA expires in ${formatDuration(left)} (${ca.notAfter.toISOString()}); ${replace}`];
  }
  return [];
}

/** The trust domain named by an existing CA certificate, read without its key (to replace it like for like). */
export async function trustDomainOfExistingCa(files: CaFiles): Promise<string | undefined> {
  try {
    const [cert] = parseCertificatesPem(await readFile(files.cert, 'utf8'));
    const uri = cert?.uris.length === 1 ? cert.uris[0]! : undefined;
    return uri === undefined ? undefined : parseTrustDomain(uri);
  } catch {
    return undefined;
  }
}

export async function readIfExists(file: string, field: 'ca' | 'key'): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw new CredentialsError(
      'ERR_MTLS_CREDENTIALS_UNREADABLE',
      `cannot read the dev CA (${errorCode(error) ?? 'unknown error'})`,
      {
        file,
        field,
        fix: 'check the permissions of the dev CA directory',
      },
    );
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
}
