import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH } from './certificate.js';
import type { CertificateInfo } from './certificate.js';
import { certificateLabel, signatureVerifies, validityAt } from './certificate-checks.js';
import { crlIssuerMismatch, isRevokedBy } from './crl.js';
import type { RevocationList } from './crl.js';

/** Options of {@link verifyChain}. */
export interface ChainVerifyOptions {
  /** The instant every certificate (and CRL) must be valid at. */
  readonly now: Date;
  /**
   * CRLs to check revocation against. When non-empty, every certificate in the path needs a current CRL from its
   * issuer, as Node's TLS does once any `crl` is configured (OpenSSL's CRL_CHECK_ALL). Each is taken as the complete list
   * of its issuer's revocations, which `parseCrl` guarantees. Empty or absent: no revocation check.
   */
  readonly crls?: readonly RevocationList[];
  /** Usages every untrusted CA in the path must allow when it restricts its extended key usage (OpenSSL's purpose check). */
  readonly usages?: readonly CertificateUsage[];
  /** Most certificates in a path, leaf and root included. @default 8 */
  readonly maxDepth?: number;
}

/** Why a chain did not verify. `certificate` is the one at fault, when there is one. */
export type ChainFailureKind =
  | 'no-path'
  | 'not-a-ca'
  | 'not-yet-valid'
  | 'expired'
  | 'path-length'
  | 'usage'
  | 'revoked'
  | 'crl-missing'
  | 'crl-expired'
  | 'crl-not-yet-valid';

/** Result of {@link verifyChain}: the path from the leaf to a self-signed root of the bundle, or why there is none. */
export type ChainVerifyResult =
  | { readonly ok: true; readonly path: readonly CertificateInfo[] }
  | {
      readonly ok: false;
      readonly kind: ChainFailureKind;
      readonly reason: string;
      readonly certificate: CertificateInfo | undefined;
    };

type Failure = Extract<ChainVerifyResult, { ok: false }>;

/** What a certificate must be allowed to do (its extended key usage). */
export type CertificateUsage = 'serverAuth' | 'clientAuth';

/** The extended key usage OID that allows each usage. */
export const USAGE_OIDS: Readonly<Record<CertificateUsage, string>> = Object.freeze({
  serverAuth: EKU_SERVER_AUTH,
  clientAuth: EKU_CLIENT_AUTH,
});
const DEFAULT_MAX_DEPTH = 8;
// Bounds the work a bundle full of same-named CAs can cause.
const MAX_EXTENSIONS = 64;

interface DeadEnd {
  readonly certificate: CertificateInfo;
  readonly depth: number;
  /** Some certificate carried the issuer's name but its key did not verify the signature. */
  readonly nameMatched: boolean;
  /** The path already went through a certificate of the bundle. */
  readonly reachedBundle: boolean;
}

/**
 * Builds and checks the path from `leaf` through `intermediates` (untrusted, as presented) to a self-signed
 * certificate of `roots` (the trust bundle), the way Node 20's OpenSSL does: issuers are found by subject name and
 * signature, the anchor must be a self-signed root (Node has no partial-chain mode), every certificate must be valid at
 * `now`, every issuer must be a CA allowed to sign certificates within its path length, and with CRLs every certificate
 * must be unrevoked under a current CRL of its issuer. Name constraints and certificate policies are not evaluated.
 * Pure: no I/O, results cached per certificate object.
 */
export function verifyChain(
  leaf: CertificateInfo,
  intermediates: readonly CertificateInfo[],
  roots: readonly CertificateInfo[],
  options: ChainVerifyOptions,
): ChainVerifyResult {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const trusted = new Set(roots.map((root) => root.fingerprint256));
  // Trusted copies first, as OpenSSL's X509_V_FLAG_TRUSTED_FIRST does; duplicates of bundle certificates are dropped.
  const pool = [...roots, ...intermediates.filter((c) => !trusted.has(c.fingerprint256))];

  let firstFailure: Failure | undefined;
  let deadEnd: DeadEnd | undefined;
  let extensions = 0;

  const search = (path: CertificateInfo[]): ChainVerifyResult | undefined => {
    const current = path[path.length - 1]!;
    let nameMatched = false;
    let extended = false;
    for (const candidate of pool) {
      if (extensions >= MAX_EXTENSIONS) break;
      if (path.some((c) => c.fingerprint256 === candidate.fingerprint256)) continue;
      // Names compare as encoded bytes, as Go's crypto/x509 does: an issuer copies its subject verbatim.
      if (!current.issuerDer.equals(candidate.subjectDer)) continue;
      nameMatched = true;
      if (!signatureVerifies(current, candidate)) continue;
      extended = true;
      extensions++;
      const next = [...path, candidate];
      if (trusted.has(candidate.fingerprint256) && isSelfSigned(candidate)) {
        const failure = checkPath(next, trusted, options);
        if (failure === undefined) return { ok: true, path: next };
        firstFailure ??= failure;
      } else if (next.length < maxDepth) {
        const found = search(next);
        if (found !== undefined) return found;
      } else {
        firstFailure ??= {
          ok: false,
          kind: 'no-path',
          reason: `no path to a root of the trust bundle within ${maxDepth} certificates`,
          certificate: leaf,
        };
      }
    }
    if (!extended && (deadEnd === undefined || path.length > deadEnd.depth)) {
      const reachedBundle = path.some((c) => trusted.has(c.fingerprint256));
      deadEnd = { certificate: current, depth: path.length, nameMatched, reachedBundle };
    }
    return undefined;
  };

  // A self-signed certificate that is itself in the bundle is trusted directly, as OpenSSL does.
  if (trusted.has(leaf.fingerprint256) && isSelfSigned(leaf)) {
    return checkPath([leaf], trusted, options) ?? { ok: true, path: [leaf] };
  }
  const found = search([leaf]);
  if (found !== undefined) return found;
  if (firstFailure !== undefined) return firstFailure;
  const end = deadEnd ?? { certificate: leaf, depth: 1, nameMatched: false, reachedBundle: false };
  return { ok: false, kind: 'no-path', reason: describeDeadEnd(end), certificate: end.certificate };
}

function describeDeadEnd(end: DeadEnd): string {
  const { certificate } = end;
  if (certificate.selfIssued && isSelfSigned(certificate)) {
    return `${certificateLabel(certificate)} is self-signed and not in the trust bundle`;
  }
  if (end.reachedBundle) {
    return `the path reaches ${certificateLabel(certificate)} in the trust bundle but not its self-signed root "${certificate.issuer}"; Node verifies only up to a self-signed root, so the bundle must hold the root`;
  }
  if (end.nameMatched) {
    return `${certificateLabel(certificate)} names "${certificate.issuer}" as issuer, but no certificate of that name verifies its signature (a different CA with the same name?)`;
  }
  return `no certificate in the chain or the trust bundle issued ${certificateLabel(certificate)} (issuer "${certificate.issuer}")`;
}

function isSelfSigned(certificate: CertificateInfo): boolean {
  return certificate.selfIssued && signatureVerifies(certificate, certificate);
}

/** Checks a structurally complete path (leaf first, self-signed trusted root last). */
function checkPath(
  path: readonly CertificateInfo[],
  trusted: ReadonlySet<string>,
  options: ChainVerifyOptions,
): Failure | undefined {
  const fail = (kind: ChainFailureKind, reason: string, certificate: CertificateInfo): Failure => ({
    ok: false,
    kind,
    reason,
    certificate,
  });
  for (let i = 0; i < path.length; i++) {
    const certificate = path[i]!;
    const validity = validityAt(certificate, options.now);
    if (validity === 'expired') {
      return fail('expired', `${certificateLabel(certificate)} expired at ${certificate.notAfter.toISOString()}`, certificate);
    }
    if (validity === 'not-yet-valid') {
      return fail(
        'not-yet-valid',
        `${certificateLabel(certificate)} is not valid before ${certificate.notBefore.toISOString()}`,
        certificate,
      );
    }
    if (i === 0) continue;
    if (!certificate.isCa) {
      return fail(
        'not-a-ca',
        `${certificateLabel(certificate)} signs ${certificateLabel(path[i - 1]!)} but is not a CA (basicConstraints cA is not true)`,
        certificate,
      );
    }
    const isRoot = i === path.length - 1;
    // RFC 5280 §4.2.1.3 requires key usage on every CA that signs certificates; only legacy roots may omit it.
    if (certificate.keyUsage === undefined ? !isRoot : !certificate.keyUsage.keyCertSign) {
      return fail('not-a-ca', `${certificateLabel(certificate)} is a CA without the keyCertSign key usage`, certificate);
    }
    if (certificate.pathLength !== undefined) {
      const below = path.slice(1, i).filter((c) => !c.selfIssued).length;
      if (below > certificate.pathLength) {
        return fail(
          'path-length',
          `${certificateLabel(certificate)} allows ${certificate.pathLength} intermediate CA(s) below it (pathLenConstraint), the path has ${below}`,
          certificate,
        );
      }
    }
    // OpenSSL applies the TLS purpose to untrusted CAs only; trust-store certificates are exempt.
    if (!trusted.has(certificate.fingerprint256) && certificate.extKeyUsage !== undefined) {
      for (const usage of options.usages ?? []) {
        if (!certificate.extKeyUsage.includes(USAGE_OIDS[usage])) {
          return fail(
            'usage',
            `intermediate CA ${certificateLabel(certificate)} restricts extended key usage and lacks ${usage}`,
            certificate,
          );
        }
      }
    }
  }
  if (options.crls !== undefined && options.crls.length > 0) {
    return checkRevocation(path, options.crls, options.now);
  }
  return undefined;
}

function checkRevocation(path: readonly CertificateInfo[], crls: readonly RevocationList[], now: Date): Failure | undefined {
  for (let i = 0; i < path.length; i++) {
    const certificate = path[i]!;
    // The root is checked against its own CRL, as OpenSSL does with CRL_CHECK_ALL.
    const issuer = path[i + 1] ?? certificate;
    const fromIssuer = crls.filter((crl) => crlIssuerMismatch(crl, issuer) === undefined);
    if (fromIssuer.length === 0) {
      return {
        ok: false,
        kind: 'crl-missing',
        reason: `no CRL from ${certificateLabel(issuer)}, needed to check ${certificateLabel(certificate)} (with any CRL configured, Node checks every certificate of the chain)`,
        certificate: issuer,
      };
    }
    const current = fromIssuer.filter(
      (crl) =>
        crl.thisUpdate.getTime() <= now.getTime() && (crl.nextUpdate === undefined || now.getTime() <= crl.nextUpdate.getTime()),
    );
    if (current.length === 0) {
      const expired = fromIssuer.some((crl) => crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now.getTime());
      const latest = fromIssuer.reduce((a, b) => (b.thisUpdate > a.thisUpdate ? b : a));
      return expired
        ? {
            ok: false,
            kind: 'crl-expired',
            reason: `the CRL of ${certificateLabel(issuer)} expired at ${latest.nextUpdate?.toISOString() ?? '?'} (nextUpdate)`,
            certificate: issuer,
          }
        : {
            ok: false,
            kind: 'crl-not-yet-valid',
            reason: `the CRL of ${certificateLabel(issuer)} is not valid before ${latest.thisUpdate.toISOString()} (thisUpdate)`,
            certificate: issuer,
          };
    }
    const newest = current.reduce((a, b) => (b.thisUpdate > a.thisUpdate ? b : a));
    if (isRevokedBy(newest, certificate)) {
      return {
        ok: false,
        kind: 'revoked',
        reason: `${certificateLabel(certificate)} (serial ${certificate.serialNumber}) is revoked by the CRL of ${certificateLabel(issuer)}`,
        certificate,
      };
    }
  }
  return undefined;
}
