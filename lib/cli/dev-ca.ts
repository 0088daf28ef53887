// The dev CA behind `nestjs-mtls dev-ca`: a root CA kept on disk that issues short-lived X509-SVIDs into the Kubernetes
// Secret layout, so a service reads its dev certificates exactly as it reads cert-manager's in production.
// For development and tests only: production certificates come from cert-manager, Vault PKI or SPIRE.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.js';
import { canonicalIp } from '../identity/ip-address.js';
import { normalizeDnsName } from '../identity/dns-name.js';
import { CertificateAuthority } from '../x509/certificate-authority.js';
import type { KeyAlgorithm } from '../x509/certificate-authority.js';
import { writeKubernetesSecret } from '../credentials/secret-layout.js';
import { printable } from '../format/describe-value.js';
import {
  caFiles,
  createCa,
  DEV_CA_FOLDER,
  FORCE_HINT,
  loadExistingCa,
  pathExists,
  trustDomainOfExistingCa,
  writeCa,
  type CaFiles,
} from './dev-ca-store.js';
import {
  CLOCK_SKEW_MS,
  evaluateExisting,
  readExistingSet,
  SECRET_FILES,
  type DevCertificateReason,
  type DevCertificateRequest,
} from './dev-certificate-policy.js';

export { DEV_CA_FOLDER } from './dev-ca-store.js';
export type { DevCertificateReason, DevCertificateRequest } from './dev-certificate-policy.js';

/** Validity of a dev certificate unless told otherwise: short, so that renewal is exercised every day. */
export const DEFAULT_DEV_CERTIFICATE_VALIDITY_MS = 24 * 60 * 60 * 1000;

/** Validity of a new dev CA unless told otherwise. */
export const DEFAULT_DEV_CA_VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

/** The key algorithms the dev CA can issue; `ECDSA-P256` by default. */
export const DEV_KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ECDSA-P256', 'ECDSA-P384', 'RSA-2048', 'Ed25519'];

// A folder name that is safe on every file system and cannot climb out of the dev CA directory.
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** Options of {@link initDevCa}. */
export interface InitDevCaOptions {
  /** The dev CA directory; the CA lives in its `ca/` folder. */
  dir: string;
  /**
   * Trust domain of a new CA, written as its `spiffe://<trustDomain>` URI SAN. Optional when a CA exists (it is then
   * checked against the CA's); required to create one.
   */
  trustDomain?: string;
  /** Replace an existing CA (its key is deleted; every certificate it issued stops being trusted). @default false */
  force?: boolean;
  /** Validity of a new CA. @default 365 days */
  validityMs?: number;
}

/** What {@link initDevCa} did: `created` a CA where there was none, `loaded` the existing one, or `replaced` it. */
export type DevCaAction = 'created' | 'loaded' | 'replaced';

/** The dev CA and what {@link initDevCa} did with it. */
export interface DevCaResult {
  readonly action: DevCaAction;
  /** The CA; its key is redacted from `util.inspect` and `JSON.stringify`. */
  readonly ca: CertificateAuthority;
  /** `<dir>/ca/ca.crt`: the trust bundle to give services and tools. */
  readonly certFile: string;
  /** `<dir>/ca/ca.key` (mode 0600). */
  readonly keyFile: string;
  /** Findings that do not stop the CA from working, e.g. that it expires soon. */
  readonly warnings: readonly string[];
}

/** Options of {@link issueDevCertificate}. */
export interface IssueDevCertificateOptions {
  /** The dev CA directory (the one given to {@link initDevCa}). */
  dir: string;
  /** Folder of the certificate set, `<dir>/<name>/`; letters, digits, `.`, `-`, `_`. */
  name: string;
  /** The SPIFFE ID, written as the certificate's only URI SAN. */
  spiffeId: string;
  /** DNS SANs, e.g. `localhost` or `orders.shop.svc`. */
  dnsNames?: string[];
  /** IP address SANs, e.g. `127.0.0.1`. */
  ipAddresses?: string[];
  /** Validity from now; shortened to the CA's own expiry if that comes first. @default 24 hours */
  validityMs?: number;
  /** @default 'ECDSA-P256' */
  keyAlgorithm?: KeyAlgorithm;
  /** Issue a new certificate even if the existing one is still good. @default false */
  force?: boolean;
}

/** What {@link issueDevCertificate} did, for the caller to print. Holds no key material. */
export interface DevCertificateResult {
  readonly action: 'issued' | 'kept';
  readonly reason: DevCertificateReason;
  /** One sentence saying why, for people. */
  readonly detail: string;
  readonly name: string;
  readonly spiffeId: string;
  /** `<dir>/<name>`: pass it as `MtlsModule.forRoot({ credentials: { dir } })`. */
  readonly dir: string;
  /** The visible files of the set (`..data` links, as in a mounted Secret). */
  readonly files: { readonly cert: string; readonly key: string; readonly ca: string };
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Serial number, lower-case hex. */
  readonly serialNumber: string;
  /** SHA-256 of the certificate, `AA:BB:…`. */
  readonly fingerprint256: string;
  readonly warnings: readonly string[];
  /** The CA that {@link issueDevCertificate} had to create first, if there was none. */
  readonly createdCa?: DevCaResult;
}

/** One identity for {@link ensureDevCertificates}: what {@link issueDevCertificate} takes, less the shared directory. */
export type DevIdentity = Omit<IssueDevCertificateOptions, 'dir' | 'force'>;

/** Options of {@link ensureDevCertificates}. */
export interface EnsureDevCertificatesOptions {
  /** The dev CA directory. */
  dir: string;
  /** Trust domain of the CA, when one has to be created (and checked against the existing one otherwise). */
  trustDomain: string;
  identities: DevIdentity[];
}

/** What {@link ensureDevCertificates} did. */
export interface DevCertificatesSummary {
  readonly ca: DevCaResult;
  /** One result per identity, in the order given. */
  readonly certificates: readonly DevCertificateResult[];
}

/**
 * Creates the dev CA in `<dir>/ca/`, or loads the one already there. An existing CA key is never overwritten unless
 * `force` is set: a CA of another trust domain, or one that cannot be read, is an error that says so. A CA that has
 * expired is an error too (it is reported, not silently replaced); one that expires soon comes with a warning.
 */
export async function initDevCa(options: InitDevCaOptions): Promise<DevCaResult> {
  const { dir, ...rest } = normalizeDevCaOptions(options);
  return openDevCa(dir, { ...rest, checkTrustDomain: true });
}

/**
 * Validates {@link initDevCa}'s options without touching the disk; throws {@link MtlsConfigError} naming the option.
 * Exported so that a command line can tell bad input (a usage error) from a failure.
 */
export function normalizeDevCaOptions(options: InitDevCaOptions): {
  readonly dir: string;
  readonly trustDomain: string | undefined;
  readonly validityMs: number;
  readonly force: boolean;
} {
  if (options === null || typeof options !== 'object') {
    throw invalid('options', 'must be an object { dir, trustDomain?, force?, validityMs? }');
  }
  return {
    dir: checkDir(options.dir),
    trustDomain: options.trustDomain === undefined ? undefined : checkTrustDomain(options.trustDomain),
    validityMs: checkValidity(options.validityMs ?? DEFAULT_DEV_CA_VALIDITY_MS, 'validityMs'),
    force: options.force === true,
  };
}

/**
 * Issues a certificate set into `<dir>/<name>/` (`tls.crt` leaf + chain, `tls.key`, `ca.crt`), in one atomic
 * `..data` swap so that a running service reloads a consistent set. Keeps the existing set when it is still good: same
 * SPIFFE ID, SANs and key algorithm, issued by the current CA, and more than a third of its lifetime left. Creates the
 * CA, for the SPIFFE ID's trust domain, when there is none.
 */
export async function issueDevCertificate(options: IssueDevCertificateOptions): Promise<DevCertificateResult> {
  const request = normalizeDevCertificateRequest(options);
  const dir = checkDir(options.dir);
  // A CA of another trust domain may issue this ID (see issueWithCa); only a new CA takes the ID's trust domain.
  const caResult = await openDevCa(dir, {
    trustDomain: request.trustDomain,
    checkTrustDomain: false,
    validityMs: DEFAULT_DEV_CA_VALIDITY_MS,
    force: false,
  });
  const result = await issueWithCa(dir, caResult.ca, request, options.force === true);
  return {
    ...result,
    warnings: [...caResult.warnings, ...result.warnings],
    ...(caResult.action === 'created' ? { createdCa: caResult } : {}),
  };
}

/** Creates or loads the dev CA, then issues (or keeps) one certificate set per identity, in order. */
export async function ensureDevCertificates(options: EnsureDevCertificatesOptions): Promise<DevCertificatesSummary> {
  const dir = checkDir(options.dir);
  if (!Array.isArray(options.identities)) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'identities: must be an array of { name, spiffeId }');
  }
  const requests = options.identities.map((identity) => normalizeDevCertificateRequest(identity));
  const names = new Set<string>();
  for (const { name } of requests) {
    if (names.has(name)) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `identities: the name "${name}" is used twice; each set needs its own folder`,
      );
    }
    names.add(name);
  }
  const ca = await initDevCa({ dir, trustDomain: options.trustDomain });
  const certificates: DevCertificateResult[] = [];
  for (const request of requests) {
    certificates.push(await issueWithCa(dir, ca.ca, request, false));
  }
  return { ca, certificates };
}

/**
 * Validates and normalises a certificate request; throws {@link MtlsConfigError} naming the option and the fix. Exported
 * so that a command line can tell bad input (a usage error) from a failure while issuing.
 */
export function normalizeDevCertificateRequest(
  options: Omit<IssueDevCertificateOptions, 'dir' | 'force'>,
): DevCertificateRequest {
  if (options === null || typeof options !== 'object') {
    throw invalid('identity', 'must be an object { name, spiffeId, dnsNames?, ipAddresses? }');
  }
  const name = checkName(options.name);
  if (typeof options.spiffeId !== 'string') {
    throw invalid('spiffeId', `must be a SPIFFE ID such as spiffe://shop.test/ns/shop/sa/${name}`);
  }
  let trustDomain: string;
  let path: string;
  try {
    ({ trustDomain, path } = parseSpiffeId(options.spiffeId));
  } catch (cause) {
    throw invalid('spiffeId', `"${printable(options.spiffeId)}" is not a SPIFFE ID: ${(cause as Error).message}`, cause);
  }
  if (path === '') {
    // X509-SVID §3.1: the trust domain alone names the trust domain, not a workload.
    throw invalid(
      'spiffeId',
      `"${options.spiffeId}" has no path; a workload ID looks like spiffe://${trustDomain}/ns/shop/sa/${name}`,
    );
  }
  const keyAlgorithm = options.keyAlgorithm ?? 'ECDSA-P256';
  if (!DEV_KEY_ALGORITHMS.includes(keyAlgorithm)) {
    throw invalid('keyAlgorithm', `"${printable(String(keyAlgorithm))}" is not one of ${DEV_KEY_ALGORITHMS.join(', ')}`);
  }
  return {
    name,
    spiffeId: options.spiffeId,
    trustDomain,
    dnsNames: unique(listOf(options.dnsNames, 'dnsNames').map(checkDnsName)),
    ipAddresses: unique(listOf(options.ipAddresses, 'ipAddresses').map(checkIp)),
    validityMs: checkValidity(options.validityMs ?? DEFAULT_DEV_CERTIFICATE_VALIDITY_MS, 'validityMs'),
    validityRequested: options.validityMs !== undefined,
    keyAlgorithm,
  };
}

/** Loads, creates or (with `force`) replaces the CA in `<dir>/ca/`. */
async function openDevCa(
  dir: string,
  options: { trustDomain: string | undefined; checkTrustDomain: boolean; validityMs: number; force: boolean },
): Promise<DevCaResult> {
  const files = caFiles(dir);
  const { trustDomain, validityMs } = options;
  if (options.force) {
    const existed = (await pathExists(files.key)) || (await pathExists(files.cert));
    // Replacing like for like is the common case: keep the old CA's trust domain unless told otherwise.
    const newTrustDomain = trustDomain ?? (existed ? await trustDomainOfExistingCa(files) : undefined);
    if (newTrustDomain === undefined) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        existed
          ? `the dev CA in ${files.dir} names no trust domain that can be read: pass trustDomain (--trust-domain) to replace it`
          : noCaYet(files),
      );
    }
    const ca = await createCa(newTrustDomain, validityMs);
    await writeCa(dir, files, ca, { replace: true });
    return { action: existed ? 'replaced' : 'created', ca, certFile: files.cert, keyFile: files.key, warnings: [] };
  }

  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = await loadExistingCa(files);
    if (existing !== undefined) {
      if (options.checkTrustDomain && trustDomain !== undefined && existing.ca.trustDomain !== trustDomain) {
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `refusing to overwrite the dev CA key ${files.key}: it belongs to the CA of trust domain ` +
            `${describeTrustDomain(existing.ca.trustDomain)}, not "${trustDomain}". Use another directory, or replace the CA ` +
            `with \`${FORCE_HINT} --trust-domain ${trustDomain}\` (every certificate it issued must then be re-issued)`,
        );
      }
      return { action: 'loaded', ca: existing.ca, certFile: files.cert, keyFile: files.key, warnings: existing.warnings };
    }
    if (trustDomain === undefined) {
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', noCaYet(files));
    }
    const ca = await createCa(trustDomain, validityMs);
    if (await writeCa(dir, files, ca, { replace: false })) {
      return { action: 'created', ca, certFile: files.cert, keyFile: files.key, warnings: [] };
    }
    // Another process created the CA first; use theirs so that both processes issue from one CA.
  }
  throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `${files.dir} keeps changing while the dev CA is created; retry`);
}

function noCaYet(files: CaFiles): string {
  return `there is no dev CA in ${files.dir} yet: pass trustDomain (--trust-domain, e.g. shop.test) to create one`;
}

async function issueWithCa(
  dir: string,
  ca: CertificateAuthority,
  request: DevCertificateRequest,
  force: boolean,
): Promise<DevCertificateResult> {
  const setDir = join(dir, request.name);
  const files = {
    cert: join(setDir, SECRET_FILES.cert),
    key: join(setDir, SECRET_FILES.key),
    ca: join(setDir, SECRET_FILES.ca),
  };
  const warnings: string[] = [];
  if (ca.trustDomain !== undefined && request.trustDomain !== ca.trustDomain) {
    warnings.push(
      `${request.spiffeId} is outside the dev CA's trust domain "${ca.trustDomain}": services that trust this CA accept ` +
        'its handshake, and only authorization refuses it (as for a federated trust domain)',
    );
  }

  const now = Date.now();
  const existing = await readExistingSet(setDir);
  const verdict = force
    ? ({ keep: false, reason: 'forced', detail: 're-issue requested (force)' } as const)
    : evaluateExisting(existing, request, ca, now);
  if (verdict.keep) {
    const { leaf } = verdict;
    return {
      action: 'kept',
      reason: 'valid',
      detail: verdict.detail,
      name: request.name,
      spiffeId: request.spiffeId,
      dir: setDir,
      files,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      serialNumber: leaf.serialNumber,
      fingerprint256: leaf.fingerprint256,
      warnings,
    };
  }

  let notAfter = new Date(now + request.validityMs);
  if (notAfter > ca.notAfter) {
    notAfter = ca.notAfter;
    warnings.push(`validity shortened to the dev CA's own expiry, ${ca.notAfter.toISOString()}`);
  }
  const issued = await ca.issue({
    spiffeId: request.spiffeId,
    dnsNames: [...request.dnsNames],
    ipAddresses: [...request.ipAddresses],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter,
    keyAlgorithm: request.keyAlgorithm,
  });
  await mkdir(setDir, { recursive: true, mode: 0o700 });
  // Every file 0600, like a Secret mounted with `defaultMode: 0600`: the writer gives all files of a set one mode.
  await writeKubernetesSecret(
    setDir,
    { [SECRET_FILES.cert]: issued.chainPem, [SECRET_FILES.key]: issued.keyPem, [SECRET_FILES.ca]: ca.rootPem },
    { mode: 0o600 },
  );
  return {
    action: 'issued',
    reason: verdict.reason,
    detail: verdict.detail,
    name: request.name,
    spiffeId: request.spiffeId,
    dir: setDir,
    files,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    serialNumber: issued.serialNumber,
    fingerprint256: issued.fingerprint256,
    warnings,
  };
}

function checkDir(dir: unknown): string {
  if (typeof dir !== 'string' || dir.trim() === '' || dir.includes('\0')) {
    throw invalid('dir', 'must be a directory path, e.g. .dev-certs');
  }
  return resolve(dir);
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalid(
      'name',
      `${typeof name === 'string' ? `"${printable(name)}"` : 'it'} must be a folder name: letters, digits, ".", "-" and "_", ` +
        'starting and ending with a letter or digit, at most 63 characters',
    );
  }
  if (name === DEV_CA_FOLDER) {
    throw invalid('name', `"${DEV_CA_FOLDER}" is the dev CA's own folder; choose another name`);
  }
  return name;
}

function checkTrustDomain(trustDomain: unknown): string {
  if (typeof trustDomain !== 'string' || trustDomain.includes(':/')) {
    throw invalid('trustDomain', 'must be a trust domain name such as shop.test (no spiffe:// scheme)');
  }
  try {
    return parseTrustDomain(trustDomain);
  } catch (cause) {
    throw invalid('trustDomain', `"${printable(trustDomain)}" is not a trust domain name: ${(cause as Error).message}`, cause);
  }
}

function checkValidity(validityMs: unknown, option: string): number {
  if (typeof validityMs !== 'number' || !Number.isSafeInteger(validityMs) || validityMs <= 0) {
    throw invalid(option, `must be a positive whole number of milliseconds, got ${printable(String(validityMs))}`);
  }
  return validityMs;
}

function listOf(value: unknown, option: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw invalid(option, 'must be an array of strings');
  }
  return value as string[];
}

/** A host name, optionally with one leading `*.` wildcard label; lower-cased. */
function checkDnsName(name: string): string {
  const lower = normalizeDnsName(name, { wildcard: true });
  if (lower === undefined) {
    throw invalid(
      'dnsNames',
      `"${printable(name)}" is not a DNS name (labels of letters, digits, "-" and "_", e.g. orders.shop.svc)`,
    );
  }
  return lower;
}

function checkIp(ip: string): string {
  const canonical = canonicalIp(ip);
  if (canonical === undefined) throw invalid('ipAddresses', `"${printable(ip)}" is not an IPv4 or IPv6 address`);
  return canonical;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function describeTrustDomain(trustDomain: string | undefined): string {
  return trustDomain === undefined ? '(none)' : `"${trustDomain}"`;
}

function invalid(option: string, message: string, cause?: unknown): MtlsConfigError {
  return new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `${option}: ${message}`, cause === undefined ? undefined : { cause });
}
