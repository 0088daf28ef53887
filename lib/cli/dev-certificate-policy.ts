// Whether a dev certificate set on disk is kept or re-issued: a pure verdict over what was read and what was asked.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { lstat, readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { errorCode } from '../errors/error-code.js';
import { canonicalIp } from '../identity/ip-address.js';
import { parseCertificatesPem, type CertificateInfo } from '../x509/certificate.js';
import { keyAlgorithmOf, type CertificateAuthority, type KeyAlgorithm } from '../x509/certificate-authority.js';
import { SECRET_DATA_LINK } from '../credentials/secret-layout.js';
import { printable } from '../format/describe-value.js';
import { formatDuration } from '../format/duration.js';

/** The files of a dev certificate set, as kubelet would mount them from a Secret. */
export const SECRET_FILES = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;
// Renew at two thirds of the lifetime, as cert-manager does by default: a third is left to notice a failed renewal.
export const RENEW_FRACTION = 1 / 3;
// Backdated like the CA's own default, so a peer whose clock runs a little behind accepts a fresh certificate.
export const CLOCK_SKEW_MS = 60_000;

/** Why {@link issueDevCertificate} issued a certificate, or `valid` when it kept the existing one. */
export type DevCertificateReason =
  | 'new'
  | 'forced'
  | 'valid'
  | 'expired'
  | 'expiring'
  | 'not-yet-valid'
  | 'spiffe-id-changed'
  | 'sans-changed'
  | 'key-algorithm-changed'
  | 'validity-changed'
  | 'ca-changed'
  | 'key-mismatch'
  | 'unreadable';

/** A validated, normalised certificate request (see {@link normalizeDevCertificateRequest}). */
export interface DevCertificateRequest {
  readonly name: string;
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Lower-cased, without duplicates, in the order given. */
  readonly dnsNames: readonly string[];
  /** Canonical text (IPv6 compressed), without duplicates, in the order given. */
  readonly ipAddresses: readonly string[];
  readonly validityMs: number;
  /** Whether `validityMs` was asked for: a kept certificate of another lifetime is then re-issued. */
  readonly validityRequested: boolean;
  readonly keyAlgorithm: KeyAlgorithm;
}

/** The files of a set as read through one `..data` target, or why they could not be read. */
export type ExistingSet =
  | { readonly state: 'absent' }
  | { readonly state: 'unreadable'; readonly detail: string }
  | { readonly state: 'present'; readonly certPem: string; readonly keyPem: string; readonly caPem: string };

export type Verdict =
  | { readonly keep: true; readonly detail: string; readonly leaf: CertificateInfo }
  | { readonly keep: false; readonly reason: Exclude<DevCertificateReason, 'valid'>; readonly detail: string };

export async function readExistingSet(setDir: string): Promise<ExistingSet> {
  const names = Object.values(SECRET_FILES);
  const visible = await Promise.all(names.map((name) => visibleEntry(setDir, name)));
  const foreign = names.find((_, index) => visible[index] === 'foreign');
  if (foreign !== undefined) {
    // Anything but kubelet's `name -> ..data/name` link was not written here; overwriting it could destroy real keys.
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `${join(setDir, foreign)} was not written by the dev CA (it is not a link into ${SECRET_DATA_LINK}); ` +
        'move it away or choose another name',
    );
  }
  let target: string;
  try {
    target = await realpath(join(setDir, SECRET_DATA_LINK));
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      return visible.includes('link') ? { state: 'unreadable', detail: `${SECRET_DATA_LINK} is missing` } : { state: 'absent' };
    }
    throw error;
  }
  try {
    const [certPem, keyPem, caPem] = await Promise.all(
      Object.values(SECRET_FILES).map((file) => readFile(join(target, file), 'utf8')),
    );
    return { state: 'present', certPem: certPem!, keyPem: keyPem!, caPem: caPem! };
  } catch (error) {
    return { state: 'unreadable', detail: `a file of the set cannot be read (${errorCode(error) ?? 'unknown error'})` };
  }
}

/** `link` for kubelet's `name -> ..data/name`, `missing`, or `foreign` for anything else. */
export async function visibleEntry(setDir: string, file: string): Promise<'link' | 'missing' | 'foreign'> {
  const path = join(setDir, file);
  try {
    const info = await lstat(path);
    return info.isSymbolicLink() && (await readlink(path)) === join(SECRET_DATA_LINK, file) ? 'link' : 'foreign';
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 'missing';
    throw error;
  }
}

/** Decides whether an existing set can stay. Pure apart from the clock value passed in. */
export function evaluateExisting(
  existing: ExistingSet,
  request: DevCertificateRequest,
  ca: CertificateAuthority,
  now: number,
): Verdict {
  if (existing.state === 'absent') {
    return { keep: false, reason: 'new', detail: 'no certificate yet' };
  }
  if (existing.state === 'unreadable') {
    return { keep: false, reason: 'unreadable', detail: existing.detail };
  }
  let parsed: { leaf: CertificateInfo; leafX509: X509Certificate; bundle: CertificateInfo[] };
  try {
    const leaf = parseCertificatesPem(existing.certPem)[0]!;
    parsed = { leaf, leafX509: new X509Certificate(leaf.der), bundle: parseCertificatesPem(existing.caPem) };
  } catch (error) {
    return { keep: false, reason: 'unreadable', detail: `the certificate does not parse (${(error as Error).message})` };
  }
  const { leaf, leafX509, bundle } = parsed;
  try {
    if (!leafX509.checkPrivateKey(createPrivateKey(existing.keyPem))) {
      return { keep: false, reason: 'key-mismatch', detail: `${SECRET_FILES.key} does not match ${SECRET_FILES.cert}` };
    }
  } catch {
    // Never echo the key parser's input; its message is not needed to decide.
    return { keep: false, reason: 'unreadable', detail: `${SECRET_FILES.key} is not a readable private key` };
  }
  const caX509 = new X509Certificate(ca.rootPem);
  const issuer = new X509Certificate(ca.certPem);
  const signedByCa = leafX509.checkIssued(issuer) && leafX509.verify(issuer.publicKey);
  if (!signedByCa || bundle.length !== 1 || bundle[0]!.fingerprint256 !== caX509.fingerprint256) {
    return { keep: false, reason: 'ca-changed', detail: `issued by another CA than the current dev CA (${ca.subject})` };
  }
  if (leaf.uris.length !== 1 || leaf.uris[0] !== request.spiffeId) {
    const issuedFor = leaf.uris.map(printable).join(', ') || 'no URI SAN';
    return { keep: false, reason: 'spiffe-id-changed', detail: `issued for ${issuedFor}, requested ${request.spiffeId}` };
  }
  const haveSans = describeSans(
    leaf.dnsNames,
    leaf.ipAddresses.map((ip) => canonicalIp(ip) ?? ip),
  );
  const wantSans = describeSans(request.dnsNames, request.ipAddresses);
  if (haveSans !== wantSans) {
    return { keep: false, reason: 'sans-changed', detail: `DNS/IP SANs are ${haveSans}, requested ${wantSans}` };
  }
  const haveAlgorithm = keyAlgorithmOf(leafX509.publicKey);
  if (haveAlgorithm !== request.keyAlgorithm) {
    const detail = `the key is ${haveAlgorithm ?? 'of another type'}, requested ${request.keyAlgorithm}`;
    return { keep: false, reason: 'key-algorithm-changed', detail };
  }
  const notBefore = leaf.notBefore.getTime();
  const notAfter = leaf.notAfter.getTime();
  const validityChange = validityChangeOf(request, notBefore, notAfter, ca, now);
  if (validityChange !== undefined) return { keep: false, reason: 'validity-changed', detail: validityChange };
  if (now < notBefore) {
    return { keep: false, reason: 'not-yet-valid', detail: `not valid until ${leaf.notBefore.toISOString()}` };
  }
  if (now >= notAfter) {
    return {
      keep: false,
      reason: 'expired',
      detail: `expired ${formatDuration(now - notAfter)} ago (${leaf.notAfter.toISOString()})`,
    };
  }
  const lifetime = notAfter - notBefore;
  const left = notAfter - now;
  if (left <= lifetime * RENEW_FRACTION) {
    return {
      keep: false,
      reason: 'expiring',
      detail: `only ${formatDuration(left)} left of ${formatDuration(lifetime)}; renewed once less than a third is left`,
    };
  }
  return {
    keep: true,
    detail: `still valid for ${formatDuration(left)}`,
    leaf,
  };
}

/**
 * Why a certificate's lifetime does not match an explicitly requested `--validity`, or undefined when it does (within
 * a minute or 1 %), when none was requested, or when the dev CA's own expiry caps both alike.
 */
function validityChangeOf(
  request: DevCertificateRequest,
  notBefore: number,
  notAfter: number,
  ca: CertificateAuthority,
  now: number,
): string | undefined {
  if (!request.validityRequested) return undefined;
  // Issued certificates start CLOCK_SKEW_MS early; the requested validity counts from the moment of issue.
  const lifetime = notAfter - notBefore - CLOCK_SKEW_MS;
  const caNotAfter = ca.notAfter.getTime();
  if (notAfter >= caNotAfter - CLOCK_SKEW_MS && now + request.validityMs >= caNotAfter) return undefined;
  if (Math.abs(lifetime - request.validityMs) <= Math.max(CLOCK_SKEW_MS, request.validityMs / 100)) return undefined;
  return `valid for ${formatDuration(Math.max(lifetime, 0))}, requested --validity ${formatDuration(request.validityMs)}`;
}

export function describeSans(dnsNames: readonly string[], ipAddresses: readonly string[]): string {
  const all = [...dnsNames.map((name) => `DNS:${name.toLowerCase()}`), ...ipAddresses.map((ip) => `IP:${ip}`)];
  return all.length === 0 ? '(none)' : [...new Set(all)].sort().join(', ');
}
