import type { CertificateInfo } from '../x509/certificate.js';
import type { CertificateUsage } from '../x509/chain-verifier.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { PrivateKeyMaterial } from './private-key.js';

/**
 * Where a credential set lives. Either a directory in the Kubernetes Secret layout
 * (`tls.crt` = leaf + chain, `tls.key`, `ca.crt`, as cert-manager and kubelet write them),
 * or one file per credential (Vault Agent templates, spiffe-helper, plain files).
 */
export type CredentialsSourceOptions = SecretDirectoryOptions | CredentialFilesOptions;

/** Kubernetes Secret layout: one directory, reloaded through its `..data` symlink when present. */
export interface SecretDirectoryOptions {
  /** The mounted directory, e.g. `/var/run/secrets/tls`. */
  dir: string;
  /** @default 'tls.crt' */
  certFileName?: string;
  /** @default 'tls.key' */
  keyFileName?: string;
  /** @default 'ca.crt' */
  caFileName?: string;
  /** CRL files (PEM, one or several CRLs each). Absolute, or relative to `dir`. */
  crlFiles?: string[];
}

/** One file per credential. */
export interface CredentialFilesOptions {
  /** Leaf certificate followed by its intermediates (PEM). */
  certFile: string;
  /** Private key (PEM: PKCS#8, PKCS#1 or SEC1; unencrypted). */
  keyFile: string;
  /** Trust bundle: the CA certificates peers must chain to (PEM). */
  caFile: string;
  /** CRL file(s) (PEM). Enables revocation checks for every CA in the chain. */
  crlFile?: string | string[];
}

/** Resolved absolute paths of one credential set. */
export interface CredentialFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly crl: readonly string[];
  /** For a Secret directory: the directory whose `..data` link is the commit point, else undefined. */
  readonly secretDir: string | undefined;
}

/** Bytes read from disk as one consistent set, not yet validated. */
export interface RawCredentials {
  readonly files: CredentialFiles;
  readonly certPem: string;
  readonly key: PrivateKeyMaterial;
  readonly caPem: string;
  /** One entry per CRL block (a file holding several CRLs yields several entries). */
  readonly crlPems: readonly string[];
  /** The file each entry of {@link crlPems} came from, index for index, so errors can name it. */
  readonly crlFiles: readonly string[];
  /** SHA-256 over every file's bytes: equal hashes mean nothing changed. */
  readonly contentHash: string;
  /**
   * Federation (Workload API): the bundles of *other* trust domains, trust domain name → PEM. When present, `caPem`
   * is the bundle of the leaf's own trust domain, and every peer is verified against its own trust domain's bundle only.
   */
  readonly federatedBundlePems?: ReadonlyMap<string, string> | undefined;
}

/** Which credential set: the server's identity, or a separate client set. */
export type CredentialSetName = 'identity' | 'client';

/** What a certificate must be allowed to do. */
export type CredentialUsage = CertificateUsage;

/** A validated credential set, ready to hand to TLS. Safe to log: the key is redacted. */
export interface Credentials {
  readonly files: CredentialFiles;
  /** Leaf first, then the intermediates as presented in the certificate file. */
  readonly chain: readonly CertificateInfo[];
  readonly leaf: CertificateInfo;
  /** The service's own identity as its peers will see it. */
  readonly identity: PeerIdentity;
  /** The trust bundle's certificates. */
  readonly caCertificates: readonly CertificateInfo[];
  /** Earliest NotAfter among the trust bundle's certificates. */
  readonly caNotAfter: Date;
  /**
   * Explicit per-trust-domain bundles (Workload API, federation): trust domain name → its CA certificates, own trust
   * domain included. `caCertificates` is then their union, and a peer is admitted only when its chain reaches a root of
   * its own SPIFFE ID's trust domain. Undefined for file sources, whose roots bind trust domains by their URI SAN.
   */
  readonly trustDomainBundles?: ReadonlyMap<string, readonly CertificateInfo[]> | undefined;
  readonly crlPems: readonly string[];
  readonly key: PrivateKeyMaterial;
  readonly contentHash: string;
  /** Non-fatal findings, e.g. expiring soon. */
  readonly warnings: readonly string[];
}
