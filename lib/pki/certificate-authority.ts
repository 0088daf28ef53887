// CONTRACT STUB — implemented by the pki helper. Keep these signatures.
// Mints real certificates (via @peculiar/x509 on Node's WebCrypto) for the dev CA CLI and the testing kit.

/** Key algorithm of a minted key. */
export type KeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'Ed25519';

/** What to put in a leaf certificate. Every field is optional; defaults give a valid X509-SVID-shaped leaf. */
export interface IssueOptions {
  /** The SPIFFE ID, written as the single URI SAN. */
  spiffeId?: string;
  /** Raw URI SANs (added after `spiffeId`), to build invalid certificates on purpose. */
  uris?: string[];
  /** DNS SANs, written verbatim (no validation: tests put hostile text here on purpose). */
  dnsNames?: string[];
  ipAddresses?: string[];
  emails?: string[];
  /** Subject commonName(s); several produce several CN attributes. Default: none when a SAN is given. */
  commonName?: string | string[];
  /** @default now - 1 minute */
  notBefore?: Date;
  /** @default notBefore + validityMs */
  notAfter?: Date;
  /** @default 24 hours */
  validityMs?: number;
  /** Extended key usages; `null` omits the extension. @default ['serverAuth', 'clientAuth'] */
  extKeyUsage?: Array<'serverAuth' | 'clientAuth'> | null;
  /** Key usage bits; `null` omits the extension. @default ['digitalSignature'] (+ keyEncipherment for RSA) */
  keyUsage?: Array<'digitalSignature' | 'keyEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign'> | null;
  /** basicConstraints cA on a leaf (invalid on purpose). @default false */
  isCa?: boolean;
  /** @default 'ECDSA-P256' */
  keyAlgorithm?: KeyAlgorithm;
}

/** A minted leaf with its key. `keyPem` is PKCS#8 PEM; never log it. */
export interface IssuedCertificate {
  /** The leaf alone. */
  readonly certPem: string;
  /** Leaf followed by the issuing intermediates (what a server or client presents). */
  readonly chainPem: string;
  /** PKCS#8 private key PEM. */
  readonly keyPem: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly spiffeId: string | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CertificateAuthorityOptions {
  /** Subject CN of the CA. @default 'nestjs-mtls dev CA' */
  commonName?: string;
  /** Written as the CA's URI SAN `spiffe://<trustDomain>` when set. */
  trustDomain?: string;
  /** @default 'ECDSA-P256' */
  keyAlgorithm?: KeyAlgorithm;
  notBefore?: Date;
  notAfter?: Date;
  /** @default 1 year */
  validityMs?: number;
}

/** A CA (root or intermediate) that can issue leaves, intermediates and CRLs. */
export class CertificateAuthority {
  /** The CA certificate PEM. */
  readonly certPem: string = '';
  /** The CA's private key PEM (PKCS#8). */
  readonly keyPem: string = '';
  /** PEM of this CA followed by its parents up to the root, excluding the root (what a leaf's chain appends). */
  readonly intermediatesPem: string = '';
  /** The root's PEM: what goes into a trust bundle (`ca.crt`). */
  readonly rootPem: string = '';

  /** Creates a new self-signed root CA. */
  static async create(options?: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    throw new Error(`not implemented ${String(options)}`);
  }

  /** Loads a CA from its certificate and key PEM (the dev CA on disk). */
  static async load(certPem: string, keyPem: string): Promise<CertificateAuthority> {
    throw new Error(`not implemented ${certPem.length + keyPem.length}`);
  }

  /** Creates an intermediate CA signed by this one. */
  async createIntermediate(options?: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    throw new Error(`not implemented ${String(options)}`);
  }

  /** Issues a leaf certificate with a fresh key. */
  async issue(options?: IssueOptions): Promise<IssuedCertificate> {
    throw new Error(`not implemented ${String(options)}`);
  }

  /** Issues a CRL signed by this CA that revokes the given serial numbers (hex). */
  async createCrl(revokedSerials: string[], options?: { thisUpdate?: Date; nextUpdate?: Date }): Promise<string> {
    throw new Error(`not implemented ${revokedSerials.length} ${String(options)}`);
  }
}
