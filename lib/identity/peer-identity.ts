// CONTRACT STUB — implemented by the identity helper. Keep these signatures.
import type { CertificateInfo } from './certificate.js';

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
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** Subject as RFC 4514 text (for logs). */
  readonly subject: string;
  /** The subject's commonName when it has exactly one, else undefined. */
  readonly commonName: string | undefined;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * Derives a {@link PeerIdentity} from a parsed leaf. Throws `PeerError('ERR_MTLS_PEER_INVALID')` for a leaf that may never
 * authenticate a peer whatever the route's rule (basicConstraints cA true, keyCertSign or cRLSign set).
 */
export function peerIdentityFromCertificate(leaf: CertificateInfo): PeerIdentity {
  throw new Error(`not implemented ${leaf.subject}`);
}
