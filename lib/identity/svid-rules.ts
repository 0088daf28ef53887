import type { CertificateInfo } from '../x509/certificate.js';
import { parseSpiffeId, spiffeIdError } from './spiffe-id.js';

/*
 * The X509-SVID profile of a leaf, in one place for both sides of the package: the guard and the client check a
 * peer's leaf (go-spiffe `x509svid.Verify`), the credentials loader checks our own (go-spiffe `x509svid.Load`).
 * Order and wording follow go-spiffe for each role, so the first problem is the one go-spiffe would report.
 */

/** Whose certificate is checked: a peer's (`x509svid.Verify` rules and wording) or our own (`x509svid.Load`). */
export type SvidRole = 'peer' | 'own';

/** One X509-SVID rule a certificate breaks. */
export interface SvidProblem {
  /**
   * `spiffe-id`: the leaf claims a SPIFFE ID but its URI SANs do not make exactly one valid workload ID (X509-SVID §2,
   * §3.1, §5.2); `end-entity`: the leaf may sign certificates or CRLs, or (own SVID) cannot sign handshakes (§4.1,
   * §4.3); `signing`: an intermediate of our own chain cannot sign certificates (§4.1, §4.3).
   */
  readonly kind: 'spiffe-id' | 'end-entity' | 'signing';
  /** go-spiffe's text for the role, e.g. `leaf certificate with CA flag set to true`. */
  readonly message: string;
}

const NONE: readonly SvidProblem[] = Object.freeze([]);

/** go-spiffe's words per role: `x509svid.Verify` (verify.go) for a peer, `x509svid.Load` (svid.go) for our own. */
const WORDING = {
  peer: {
    noId: 'could not get leaf SPIFFE ID',
    ca: 'leaf certificate with CA flag set to true',
    keyCertSign: 'leaf certificate with KeyCertSign key usage',
    cRLSign: 'leaf certificate with KeyCrlSign key usage',
  },
  own: {
    noId: 'cannot get leaf certificate SPIFFE ID',
    ca: 'leaf certificate must not have CA flag set to true',
    keyCertSign: "leaf certificate must not have 'keyCertSign' set as key usage",
    cRLSign: "leaf certificate must not have 'cRLSign' set as key usage",
  },
} as const;

const SPIFFE = 'spiffe';

/** True when `uri`'s scheme is `spiffe`, in any case (`SPIFFE://…` is a broken SPIFFE ID, not some other URI). */
export function hasSpiffeScheme(uri: string): boolean {
  if (uri.length <= SPIFFE.length || uri.charCodeAt(SPIFFE.length) !== 0x3a) return false;
  for (let i = 0; i < SPIFFE.length; i++) {
    // `| 0x20` folds an ASCII capital onto its lower case; only 's', 'p', 'i', 'f', 'e' and their capitals match.
    if ((uri.charCodeAt(i) | 0x20) !== SPIFFE.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * True when the leaf presents itself as an X509-SVID: some URI SAN has the `spiffe` scheme. Such a leaf is either a
 * valid SVID or refused; it never falls back to a plain certificate that DNS or CN rules could admit (X509-SVID §5.2).
 */
export function claimsSpiffeId(leaf: CertificateInfo): boolean {
  for (const uri of leaf.uris) if (hasSpiffeScheme(uri)) return true;
  return false;
}

/**
 * Every X509-SVID rule `leaf` breaks, in go-spiffe's order (empty when it has none): for a leaf that
 * {@link claimsSpiffeId}, exactly one URI SAN that is a valid SPIFFE ID with a non-root path, then the end-entity
 * rules; for any other leaf, only the end-entity rules (no CA flag, no keyCertSign, no cRLSign), since a certificate
 * that can sign is never an identity. `role: 'own'` adds what go-spiffe checks when loading its own SVID: the
 * digitalSignature key usage and, given the chain's `signingCertificates`, that each of them is a CA with keyCertSign.
 */
export function svidProblems(
  leaf: CertificateInfo,
  role: SvidRole,
  signingCertificates: readonly CertificateInfo[] = [],
): readonly SvidProblem[] {
  const words = WORDING[role];
  const svid = claimsSpiffeId(leaf);
  let problems: SvidProblem[] | undefined;
  const add = (kind: SvidProblem['kind'], message: string): void => {
    (problems ??= []).push(Object.freeze({ kind, message }));
  };

  if (svid) {
    const idProblem = leafSpiffeIdProblem(leaf);
    if (idProblem !== undefined) add('spiffe-id', `${words.noId}: ${idProblem}`);
    else if (parseSpiffeId(leaf.uris[0]!).path === '') add('spiffe-id', 'leaf certificate SPIFFE ID must have a non-root path');
  }
  if (leaf.isCa) add('end-entity', words.ca);
  // go-spiffe requires digitalSignature only of its own SVID; as a verifier it leaves that to the TLS stack.
  if (role === 'own' && svid && leaf.keyUsage?.digitalSignature !== true) {
    add('end-entity', "leaf certificate must have 'digitalSignature' set as key usage");
  }
  if (leaf.keyUsage?.keyCertSign === true) add('end-entity', words.keyCertSign);
  if (leaf.keyUsage?.cRLSign === true) add('end-entity', words.cRLSign);
  if (role === 'own' && svid) {
    for (const signing of signingCertificates) {
      if (!signing.isCa) add('signing', 'signing certificate must have CA flag set to true');
      else if (signing.keyUsage?.keyCertSign !== true)
        add('signing', "signing certificate must have 'keyCertSign' set as key usage");
    }
  }
  return problems === undefined ? NONE : Object.freeze(problems);
}

/** Why a leaf that claims a SPIFFE ID does not hold exactly one valid one (`x509svid.IDFromCert`), or undefined. */
function leafSpiffeIdProblem(leaf: CertificateInfo): string | undefined {
  // §5.2: an SVID with several URI SANs MUST be rejected, never resolved to "the first" or "any matching" one.
  if (leaf.uris.length > 1) return 'certificate contains more than one URI SAN';
  return spiffeIdError(leaf.uris[0]!);
}
