import { PeerError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { normalizeDnsName } from './dns-name.js';
import { parseSpiffeId, spiffeIdError } from './spiffe-id.js';
import { claimsSpiffeId, svidProblems, type SvidProblem } from './svid-rules.js';

/**
 * Who the peer is, derived from its leaf certificate's DER (the server does so once per leaf and trust bundle).
 * Immutable and safe to log (no key material, no raw DER).
 */
export interface PeerIdentity {
  /**
   * The SPIFFE ID of a valid X509-SVID: exactly one URI SAN that parses as a SPIFFE ID with a non-root path. A leaf
   * with a spiffe URI SAN that breaks these rules has no identity at all (it is refused, X509-SVID §5.2).
   */
  readonly spiffeId: string | undefined;
  /** Trust domain of `spiffeId`. */
  readonly trustDomain: string | undefined;
  /** Why a legacy peer (no spiffe URI SAN) has no SPIFFE ID, e.g. `certificate contains no URI SAN`; undefined for an SVID. */
  readonly svidError: string | undefined;
  /** Every URI SAN, in certificate order. */
  readonly uris: readonly string[];
  /** Every DNS SAN, as encoded. */
  readonly dnsNames: readonly string[];
  /**
   * The DNS SANs that name a host, lower-cased: what DNS rules compare, computed once per identity. Wildcard,
   * malformed and non-ASCII SANs are left out: they name no single host.
   */
  readonly normalizedDnsNames: readonly string[];
  /** Every IP SAN, as text. */
  readonly ipAddresses: readonly string[];
  /** Every rfc822Name (email) SAN. */
  readonly emails: readonly string[];
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
  /**
   * Where the identity was read: `'tls'` from the peer's own TLS connection; `'xfcc'` or `'rfc9440'` from the header
   * of a trusted proxy that terminated the caller's mTLS (module option `proxy`). Always set by this package; optional
   * in the type only so that identities built by hand (test fixtures) stay valid, where undefined reads as `'tls'`.
   */
  readonly source?: PeerSource;
}

/** Where a {@link PeerIdentity} was read: the TLS connection, or a trusted proxy's XFCC or RFC 9440 header. */
export type PeerSource = 'tls' | 'xfcc' | 'rfc9440';

/** Why a leaf with a given kind of problem is refused whatever the route's rule; appended to go-spiffe's text. */
const REFUSAL: Readonly<Record<SvidProblem['kind'], string>> = {
  'spiffe-id': 'a certificate with a spiffe URI SAN authenticates only as a valid X509-SVID (X509-SVID §5.2)',
  'end-entity': 'a certificate that can sign certificates or CRLs never authenticates a peer',
  signing: 'its chain cannot have signed it',
};

const EMPTY: readonly string[] = Object.freeze([]);

/** Why a leaf without any spiffe URI SAN is no SVID, in go-spiffe's `x509svid.IDFromCert` wording. */
function legacySvidError(leaf: CertificateInfo): string {
  if (leaf.uris.length === 0) return 'certificate contains no URI SAN';
  if (leaf.uris.length > 1) return 'certificate contains more than one URI SAN';
  return spiffeIdError(leaf.uris[0]!) ?? 'not an X509-SVID';
}

function normalizedDnsNames(dnsNames: readonly string[]): readonly string[] {
  if (dnsNames.length === 0) return EMPTY;
  // A Set keeps certificate order and stays linear however many SANs a certificate carries.
  const names = new Set<string>();
  for (const name of dnsNames) {
    const normalized = normalizeDnsName(name);
    if (normalized !== undefined) names.add(normalized);
  }
  return Object.freeze([...names]);
}

/**
 * Derives a {@link PeerIdentity} from a parsed leaf. Throws `PeerError('ERR_MTLS_PEER_INVALID')` for a leaf that may
 * never authenticate a peer whatever the route's rule: one that can sign (basicConstraints cA true, keyCertSign or
 * cRLSign), and one that claims a SPIFFE ID (a URI SAN with the `spiffe` scheme, in any case) without being a valid
 * X509-SVID — two URI SANs, a malformed ID, a root ID. A leaf without a spiffe URI SAN is a legacy peer: no SPIFFE ID,
 * its DNS, IP and other SANs usable by DNS and CN rules.
 */
export function peerIdentityFromCertificate(leaf: CertificateInfo, source: PeerSource = 'tls'): PeerIdentity {
  const [problem] = svidProblems(leaf, 'peer');
  if (problem !== undefined) {
    throw new PeerError(
      'ERR_MTLS_PEER_INVALID',
      `${problem.message}: ${REFUSAL[problem.kind]} (subject ${JSON.stringify(leaf.subject)}, serial ${leaf.serialNumber})`,
    );
  }
  const svid = claimsSpiffeId(leaf);
  const spiffeId = svid ? leaf.uris[0] : undefined;
  // One literal with every field (no spread): V8 keeps a single shape for all identities.
  return Object.freeze({
    spiffeId,
    trustDomain: spiffeId === undefined ? undefined : parseSpiffeId(spiffeId).trustDomain,
    svidError: svid ? undefined : legacySvidError(leaf),
    uris: leaf.uris,
    dnsNames: leaf.dnsNames,
    normalizedDnsNames: normalizedDnsNames(leaf.dnsNames),
    ipAddresses: leaf.ipAddresses,
    emails: leaf.emails,
    subject: leaf.subject,
    commonName: leaf.subjectCommonNames.length === 1 ? leaf.subjectCommonNames[0] : undefined,
    issuer: leaf.issuer,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    // Copies: a Date is mutable even inside a frozen object.
    notBefore: new Date(leaf.notBefore.getTime()),
    notAfter: new Date(leaf.notAfter.getTime()),
    source,
  });
}

/** Parses a leaf's DER and derives its {@link PeerIdentity}; throws `CertificateParseError` or `PeerError`. */
export function peerIdentityFromDer(der: Uint8Array): PeerIdentity {
  return peerIdentityFromCertificate(parseCertificateDer(der));
}
