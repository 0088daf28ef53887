import { PeerError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from './certificate.js';
import { parseSpiffeId, spiffeIdError } from './spiffe-id.js';

/**
 * Who the peer is, derived once per TLS connection from its leaf certificate's DER.
 * Immutable and safe to log (no key material, no raw DER).
 */
export interface PeerIdentity {
  /** The SPIFFE ID, only when the leaf is a valid X509-SVID: exactly one URI SAN that parses as a SPIFFE ID with a non-root path. */
  readonly spiffeId: string | undefined;
  /** Trust domain of `spiffeId`. */
  readonly trustDomain: string | undefined;
  /** Why the leaf is not an X509-SVID, when `spiffeId` is undefined (e.g. `certificate contains more than one URI SAN`). */
  readonly svidError: string | undefined;
  /** Every URI SAN, in certificate order. */
  readonly uris: readonly string[];
  /** Every DNS SAN, as encoded. */
  readonly dnsNames: readonly string[];
  /** Every IP SAN, as text. */
  readonly ipAddresses: readonly string[];
  /** Subject as RFC 4514 text (for logs). */
  readonly subject: string;
  /** The subject's commonName when it has exactly one, else undefined. */
  readonly commonName: string | undefined;
  /** Issuer as RFC 4514 text (for logs). */
  readonly issuer: string;
  /** Serial number, lower-case hex. */
  readonly serialNumber: string;
  /** SHA-256 of the leaf's DER, `AB:CD:…`. */
  readonly fingerprint256: string;
  /** Start of the leaf's validity. */
  readonly notBefore: Date;
  /** End of the leaf's validity. */
  readonly notAfter: Date;
}

interface SvidResult {
  readonly spiffeId: string | undefined;
  readonly trustDomain: string | undefined;
  readonly svidError: string | undefined;
}

function notAnSvid(svidError: string): SvidResult {
  return { spiffeId: undefined, trustDomain: undefined, svidError };
}

/** The SPIFFE ID of a leaf, or why it has none (X509-SVID §2, §3.1; go-spiffe `x509svid.IDFromCert` wording). */
function svidOf(leaf: CertificateInfo): SvidResult {
  if (leaf.uris.length === 0) return notAnSvid('certificate contains no URI SAN');
  // §5.2: an SVID with several URI SANs MUST be rejected, never resolved to "the first" or "any matching" one.
  if (leaf.uris.length > 1) return notAnSvid('certificate contains more than one URI SAN');
  const uri = leaf.uris[0]!;
  // Checked without an exception first: legacy peers with a non-SPIFFE URI SAN take this path on every connection.
  const error = spiffeIdError(uri);
  if (error !== undefined) return notAnSvid(error);
  const { trustDomain, path } = parseSpiffeId(uri);
  // §3.1: `spiffe://td` names the trust domain itself, never a workload.
  if (path === '') return notAnSvid('leaf certificate SPIFFE ID must have a non-root path');
  return { spiffeId: uri, trustDomain, svidError: undefined };
}

/** Why a leaf can never authenticate a peer (X509-SVID §4.1, §4.3), or undefined. go-spiffe `x509svid.Verify` wording. */
function signingCertificateError(leaf: CertificateInfo): string | undefined {
  if (leaf.isCa) return 'leaf certificate with CA flag set to true';
  if (leaf.keyUsage?.keyCertSign) return 'leaf certificate with KeyCertSign key usage';
  if (leaf.keyUsage?.cRLSign) return 'leaf certificate with KeyCrlSign key usage';
  return undefined;
}

/**
 * Derives a {@link PeerIdentity} from a parsed leaf. Throws `PeerError('ERR_MTLS_PEER_INVALID')` for a leaf that may never
 * authenticate a peer whatever the route's rule (basicConstraints cA true, keyCertSign or cRLSign set).
 */
export function peerIdentityFromCertificate(leaf: CertificateInfo): PeerIdentity {
  const refusal = signingCertificateError(leaf);
  if (refusal !== undefined) {
    throw new PeerError(
      'ERR_MTLS_PEER_INVALID',
      `${refusal}: a certificate that can sign certificates or CRLs never authenticates a peer ` +
        `(subject ${JSON.stringify(leaf.subject)}, serial ${leaf.serialNumber})`,
    );
  }
  const { spiffeId, trustDomain, svidError } = svidOf(leaf);
  // One literal with every field (no spread): V8 keeps a single shape for all identities.
  return Object.freeze({
    spiffeId,
    trustDomain,
    svidError,
    uris: leaf.uris,
    dnsNames: leaf.dnsNames,
    ipAddresses: leaf.ipAddresses,
    subject: leaf.subject,
    commonName: leaf.subjectCommonNames.length === 1 ? leaf.subjectCommonNames[0] : undefined,
    issuer: leaf.issuer,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    // Copies: a Date is mutable even inside a frozen object.
    notBefore: new Date(leaf.notBefore.getTime()),
    notAfter: new Date(leaf.notAfter.getTime()),
  });
}

/** Parses a leaf's DER and derives its {@link PeerIdentity}; throws `CertificateParseError` or `PeerError`. */
export function peerIdentityFromDer(der: Uint8Array): PeerIdentity {
  return peerIdentityFromCertificate(parseCertificateDer(der));
}
