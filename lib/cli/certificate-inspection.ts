import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CertificateParseError, CredentialsError } from '../errors/mtls.errors.js';
import type { CredentialsErrorDetail } from '../errors/mtls.errors.js';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, parseCertificatesPem } from '../x509/certificate.js';
import type { KeyUsageBits } from '../x509/certificate.js';
import { spiffeIdError } from '../identity/spiffe-id.js';

/** Options of {@link inspectCertificate}. */
export interface InspectCertificateOptions {
  /** PEM file whose first certificate is inspected (a `tls.crt` with its chain is fine). */
  certFile: string;
  /** A private key PEM to check against the certificate; only whether it matches is reported. */
  keyFile?: string;
  /** The time validity is judged against. @default now */
  now?: Date;
}

/** What a certificate says about itself. Holds no key material, even when a key file was checked. */
export interface CertificateInspection {
  /** Absolute path of the inspected file. */
  readonly certFile: string;
  /** How many certificates the file holds (leaf, then its chain). */
  readonly certificatesInFile: number;
  /** Subject, RFC 4514 (`''` when empty, as in most SPIFFE certificates). */
  readonly subject: string;
  /** Issuer, RFC 4514. */
  readonly issuer: string;
  /** The SPIFFE ID, when the certificate has exactly one URI SAN and it is a valid SPIFFE ID. */
  readonly spiffeId: string | undefined;
  /** Why `spiffeId` is undefined (no URI SAN, several, or not a SPIFFE ID); undefined when there is one. */
  readonly spiffeIdProblem: string | undefined;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly emails: readonly string[];
  /** basicConstraints cA. */
  readonly isCa: boolean;
  /** Names of the key usage bits set, or undefined without the extension. */
  readonly keyUsage: readonly string[] | undefined;
  /** `serverAuth`, `clientAuth` or the OID of any other purpose; undefined without the extension. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** e.g. `ECDSA P-256`, `RSA 2048`, `Ed25519`. */
  readonly publicKey: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Judged at `now`. */
  readonly validity: 'valid' | 'expired' | 'not-yet-valid';
  /** Milliseconds from `now` to NotAfter; negative once expired. */
  readonly remainingMs: number;
  /** Serial number, lower-case hex. */
  readonly serialNumber: string;
  /** SHA-256 of the DER, `AA:BB:…` (compare with `openssl x509 -noout -fingerprint -sha256`). */
  readonly fingerprint256: string;
  /** Absolute path of the key file, when one was given. */
  readonly keyFile: string | undefined;
  /** Whether the key file's private key belongs to this certificate; undefined when no key file was given. */
  readonly keyMatches: boolean | undefined;
}

const PRIVATE_KEY_PEM = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;

const EKU_NAMES: ReadonlyMap<string, string> = new Map([
  [EKU_SERVER_AUTH, 'serverAuth'],
  [EKU_CLIENT_AUTH, 'clientAuth'],
]);

/**
 * Reads a certificate file (and optionally a key file) and describes the certificate: identity, SANs, issuer, validity,
 * fingerprint, and whether the key matches. Never returns or prints key bytes. Throws {@link CredentialsError} naming
 * the file when a file cannot be read or parsed.
 */
export async function inspectCertificate(options: InspectCertificateOptions): Promise<CertificateInspection> {
  const certFile = resolve(options.certFile);
  const now = (options.now ?? new Date()).getTime();
  const pem = await readInput(certFile, 'certificate');
  let certificates;
  try {
    certificates = parseCertificatesPem(pem);
  } catch (error) {
    if (!(error instanceof CertificateParseError)) throw error;
    const fix = PRIVATE_KEY_PEM.test(pem)
      ? 'this file holds a private key: pass the certificate file, and give the key with --key'
      : 'point it at a PEM certificate (-----BEGIN CERTIFICATE-----); ' +
        'convert DER with `openssl x509 -inform DER -in cert.der -out cert.pem`';
    throw new CredentialsError(
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      error.message,
      { file: certFile, field: 'certificate', fix },
      { cause: error },
    );
  }
  const leaf = certificates[0]!;
  const x509 = new X509Certificate(leaf.der);

  let keyFile: string | undefined;
  let keyMatches: boolean | undefined;
  if (options.keyFile !== undefined) {
    keyFile = resolve(options.keyFile);
    keyMatches = matches(x509, readPrivateKey(await readInput(keyFile, 'key'), keyFile));
  }

  const notBefore = leaf.notBefore.getTime();
  const notAfter = leaf.notAfter.getTime();
  return {
    certFile,
    certificatesInFile: certificates.length,
    subject: leaf.subject,
    issuer: leaf.issuer,
    ...spiffeIdOf(leaf.uris),
    uris: leaf.uris,
    dnsNames: leaf.dnsNames,
    ipAddresses: leaf.ipAddresses,
    emails: leaf.emails,
    isCa: leaf.isCa,
    keyUsage: leaf.keyUsage === undefined ? undefined : keyUsageNames(leaf.keyUsage),
    extKeyUsage: leaf.extKeyUsage?.map((oid) => EKU_NAMES.get(oid) ?? oid),
    publicKey: describePublicKey(x509.publicKey),
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    validity: now < notBefore ? 'not-yet-valid' : now >= notAfter ? 'expired' : 'valid',
    remainingMs: notAfter - now,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    keyFile,
    keyMatches,
  };
}

function spiffeIdOf(uris: readonly string[]): { spiffeId: string | undefined; spiffeIdProblem: string | undefined } {
  // X509-SVID §2: exactly one URI SAN, and it must be a SPIFFE ID; anything else is not an SVID.
  if (uris.length === 0) return { spiffeId: undefined, spiffeIdProblem: 'no URI SAN' };
  if (uris.length > 1) return { spiffeId: undefined, spiffeIdProblem: `${uris.length} URI SANs (an X509-SVID has exactly one)` };
  const problem = spiffeIdError(uris[0]!);
  return problem === undefined
    ? { spiffeId: uris[0], spiffeIdProblem: undefined }
    : { spiffeId: undefined, spiffeIdProblem: `the URI SAN is not a SPIFFE ID: ${problem}` };
}

function keyUsageNames(bits: KeyUsageBits): string[] {
  return Object.entries(bits)
    .filter(([, set]) => set)
    .map(([name]) => name);
}

function describePublicKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `ECDSA ${CURVE_NAMES.get(details?.namedCurve ?? '') ?? details?.namedCurve ?? 'unknown curve'}`;
    case 'rsa':
    case 'rsa-pss':
      return `${key.asymmetricKeyType.toUpperCase()} ${details?.modulusLength ?? '?'}`;
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    default:
      return key.asymmetricKeyType ?? 'unknown';
  }
}

const CURVE_NAMES: ReadonlyMap<string, string> = new Map([
  ['prime256v1', 'P-256'],
  ['secp384r1', 'P-384'],
  ['secp521r1', 'P-521'],
]);

function matches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    // A key of another type (RSA key, EC certificate) throws in some OpenSSL versions: it does not match either way.
    return false;
  }
}

function readPrivateKey(pem: string, file: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // The parser's error is dropped on purpose: nothing derived from the key file's content goes into a message.
    throw new CredentialsError(
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'not an unencrypted PEM private key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")',
      { file, field: 'key', fix: 'point --key at the private key PEM; decrypt it first if it is encrypted' },
    );
  }
}

async function readInput(file: string, field: CredentialsErrorDetail['field']): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'the file does not exist'
        : code === 'EISDIR'
          ? 'the path is a directory'
          : `the file cannot be read (${code ?? 'unknown error'})`;
    const fix =
      code === 'EISDIR'
        ? `name the PEM file inside it, e.g. ${field === 'key' ? 'tls.key' : 'tls.crt'}`
        : 'check the path and that you may read the file';
    throw new CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE', reason, { file, field, fix });
  }
}
