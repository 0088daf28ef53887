// The dev CA behind `nestjs-mtls dev-ca`: a root CA kept on disk that issues short-lived X509-SVIDs into the Kubernetes
// Secret layout, so a service reads its dev certificates exactly as it reads cert-manager's in production.
// For development and tests only: production certificates come from cert-manager, Vault PKI or SPIRE.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CredentialsError, MtlsConfigError } from '../errors/mtls.errors.js';
import { errorCode } from '../errors/error-code.js';
import { parseCertificatesPem } from '../x509/certificate.js';
import type { CertificateInfo } from '../x509/certificate.js';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.js';
import { canonicalIp } from '../identity/ip-address.js';
import { normalizeDnsName } from '../identity/dns-name.js';
import { CertificateAuthority, keyAlgorithmOf } from '../x509/certificate-authority.js';
import type { KeyAlgorithm } from '../x509/certificate-authority.js';
import { SECRET_DATA_LINK, writeKubernetesSecret } from '../credentials/secret-layout.js';
import { printable } from '../format/describe-value.js';
import { formatDuration } from '../format/duration.js';

/** Folder under the dev CA directory that holds the CA itself (`ca.crt`, `ca.key`). */
export const DEV_CA_FOLDER = 'ca';

/** Validity of a dev certificate unless told otherwise: short, so that renewal is exercised every day. */
export const DEFAULT_DEV_CERTIFICATE_VALIDITY_MS = 24 * 60 * 60 * 1000;

/** Validity of a new dev CA unless told otherwise. */
export const DEFAULT_DEV_CA_VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

/** The key algorithms the dev CA can issue; `ECDSA-P256` by default. */
export const DEV_KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ECDSA-P256', 'ECDSA-P384', 'RSA-2048', 'Ed25519'];

const CA_CERT_FILE = 'ca.crt';
const CA_KEY_FILE = 'ca.key';
const SECRET_FILES = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Backdated like the CA's own default, so a peer whose clock runs a little behind accepts a fresh certificate.
const CLOCK_SKEW_MS = 60_000;
// Renew at two thirds of the lifetime, as cert-manager does by default: a third is left to notice a failed renewal.
const RENEW_FRACTION = 1 / 3;
const CA_WARNING_MS = 30 * DAY_MS;
// A folder name that is safe on every file system and cannot climb out of the dev CA directory.
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const FORCE_HINT = 'nestjs-mtls dev-ca init --force';
const REPLACE_CA = `replace the CA with \`${FORCE_HINT}\` (its key is then overwritten)`;

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
  | 'ca-changed'
  | 'key-mismatch'
  | 'unreadable';

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
  readonly keyAlgorithm: KeyAlgorithm;
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
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `identities: the name "${name}" is used twice; each set needs its own folder`);
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
export function normalizeDevCertificateRequest(options: Omit<IssueDevCertificateOptions, 'dir' | 'force'>): DevCertificateRequest {
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
    throw invalid('spiffeId', `"${options.spiffeId}" has no path; a workload ID looks like spiffe://${trustDomain}/ns/shop/sa/${name}`);
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

/** The files of a set as read through one `..data` target, or why they could not be read. */
type ExistingSet =
  | { readonly state: 'absent' }
  | { readonly state: 'unreadable'; readonly detail: string }
  | { readonly state: 'present'; readonly certPem: string; readonly keyPem: string; readonly caPem: string };

type Verdict =
  | { readonly keep: true; readonly detail: string; readonly leaf: CertificateInfo }
  | { readonly keep: false; readonly reason: Exclude<DevCertificateReason, 'valid'>; readonly detail: string };

async function readExistingSet(setDir: string): Promise<ExistingSet> {
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
async function visibleEntry(setDir: string, file: string): Promise<'link' | 'missing' | 'foreign'> {
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
function evaluateExisting(existing: ExistingSet, request: DevCertificateRequest, ca: CertificateAuthority, now: number): Verdict {
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
  const haveSans = describeSans(leaf.dnsNames, leaf.ipAddresses.map((ip) => canonicalIp(ip) ?? ip));
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
  if (now < notBefore) {
    return { keep: false, reason: 'not-yet-valid', detail: `not valid until ${leaf.notBefore.toISOString()}` };
  }
  if (now >= notAfter) {
    return { keep: false, reason: 'expired', detail: `expired ${formatDuration(now - notAfter)} ago (${leaf.notAfter.toISOString()})` };
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

function describeSans(dnsNames: readonly string[], ipAddresses: readonly string[]): string {
  const all = [...dnsNames.map((name) => `DNS:${name.toLowerCase()}`), ...ipAddresses.map((ip) => `IP:${ip}`)];
  return all.length === 0 ? '(none)' : [...new Set(all)].sort().join(', ');
}

interface CaFiles {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
}

function caFiles(dir: string): CaFiles {
  const caDir = join(dir, DEV_CA_FOLDER);
  return { dir: caDir, cert: join(caDir, CA_CERT_FILE), key: join(caDir, CA_KEY_FILE) };
}

async function createCa(trustDomain: string, validityMs: number): Promise<CertificateAuthority> {
  const label = `nestjs-mtls dev CA ${trustDomain}`;
  // RFC 5280 upper bound for a commonName is 64 characters.
  return CertificateAuthority.create({ trustDomain, validityMs, commonName: label.length <= 64 ? label : 'nestjs-mtls dev CA' });
}

/**
 * Writes the CA into a fresh folder and renames it into place, so `ca/` appears with both files or not at all. Returns
 * false when, without `replace`, another process put a CA there first.
 */
async function writeCa(dir: string, files: CaFiles, ca: CertificateAuthority, options: { replace: boolean }): Promise<boolean> {
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
async function loadExistingCa(files: CaFiles): Promise<{ ca: CertificateAuthority; warnings: string[] } | undefined> {
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
  if (process.platform !== 'win32') {
    const mode = (await stat(files.key)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      warnings.push(`${files.key} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`);
    }
  }
  return { ca, warnings };
}

/** Throws when the CA cannot issue a valid certificate now; returns a warning when it expires soon. */
function checkCaValidity(ca: CertificateAuthority, files: CaFiles): string[] {
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
async function trustDomainOfExistingCa(files: CaFiles): Promise<string | undefined> {
  try {
    const [cert] = parseCertificatesPem(await readFile(files.cert, 'utf8'));
    const uri = cert?.uris.length === 1 ? cert.uris[0]! : undefined;
    return uri === undefined ? undefined : parseTrustDomain(uri);
  } catch {
    return undefined;
  }
}

async function readIfExists(file: string, field: 'ca' | 'key'): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw new CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE', `cannot read the dev CA (${errorCode(error) ?? 'unknown error'})`, {
      file,
      field,
      fix: 'check the permissions of the dev CA directory',
    });
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw error;
  }
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
    throw invalid('dnsNames', `"${printable(name)}" is not a DNS name (labels of letters, digits, "-" and "_", e.g. orders.shop.svc)`);
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

