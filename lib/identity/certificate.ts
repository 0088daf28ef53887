// CONTRACT STUB — implemented by the identity helper. Keep these signatures.
import { CertificateParseError } from '../errors/mtls.errors.js';

/** Key usage bits (RFC 5280 §4.2.1.3) as read from the DER. */
export interface KeyUsageBits {
  readonly digitalSignature: boolean;
  readonly nonRepudiation: boolean;
  readonly keyEncipherment: boolean;
  readonly dataEncipherment: boolean;
  readonly keyAgreement: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
  readonly encipherOnly: boolean;
  readonly decipherOnly: boolean;
}

/** Everything this package needs from one X.509 certificate, read from its DER with an ASN.1 parser. */
export interface CertificateInfo {
  /** The DER bytes. */
  readonly der: Buffer;
  /** Subject as an RFC 4514 string (for logs only; never match on it). */
  readonly subject: string;
  /** Every commonName attribute of the subject, in order. */
  readonly subjectCommonNames: readonly string[];
  /** Issuer as an RFC 4514 string. */
  readonly issuer: string;
  /** Serial number, lower-case hex without separators or leading zero bytes. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER, upper-case hex pairs joined by `:` (Node's `fingerprint256` format). */
  readonly fingerprint256: string;
  /** URI SANs, exactly as encoded, in certificate order. */
  readonly uris: readonly string[];
  /** DNS SANs, exactly as encoded. */
  readonly dnsNames: readonly string[];
  /** IP SANs in textual form (IPv4 dotted, IPv6 RFC 5952). */
  readonly ipAddresses: readonly string[];
  /** rfc822Name SANs. */
  readonly emails: readonly string[];
  /** basicConstraints cA, read from the DER (false when the extension is absent). */
  readonly isCa: boolean;
  /** basicConstraints pathLenConstraint, when present. */
  readonly pathLength: number | undefined;
  /** Key usage bits, or undefined when the extension is absent. */
  readonly keyUsage: KeyUsageBits | undefined;
  /** Whether the key usage extension is marked critical. */
  readonly keyUsageCritical: boolean;
  /** Extended key usage OIDs, or undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** Whether the subjectAltName extension is marked critical. */
  readonly subjectAltNameCritical: boolean;
  /** True when subject and issuer are the same name. */
  readonly selfIssued: boolean;
}

/** OIDs of the extended key usages this package checks. */
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Parses one certificate's DER. Throws {@link CertificateParseError} on anything that is not a well-formed X.509 certificate. */
export function parseCertificateDer(der: Uint8Array): CertificateInfo {
  throw new CertificateParseError(`not implemented (${der.byteLength} bytes)`);
}

/**
 * Splits PEM text into its CERTIFICATE blocks and parses each. Throws {@link CertificateParseError}
 * when there is no CERTIFICATE block or a block does not parse.
 */
export function parseCertificatesPem(pem: string): CertificateInfo[] {
  throw new CertificateParseError(`not implemented (${pem.length} chars)`);
}
