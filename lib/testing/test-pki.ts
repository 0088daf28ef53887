import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CredentialsSourceOptions } from '../credentials/credentials.interfaces.js';
import { CertificateAuthority, type IssuedCertificate, type IssueOptions } from '../x509/certificate-authority.js';
import { writeKubernetesSecret } from '../credentials/secret-layout.js';
import { TestTokenIssuer, type TestTokenIssuerOptions } from './test-token-issuer.js';

/** A minted peer: its certificate and key, and the bundle it trusts (to verify the server it calls). */
export interface TestPeer extends IssuedCertificate {
  /** The trust bundle of the CA that issued this peer. */
  readonly caPem: string;
}

/** A credential set written to disk for a service under test. */
export interface TestCredentials {
  readonly peer: TestPeer;
  /** Pass to `MtlsModule.forRoot({ credentials })`. */
  readonly credentials: CredentialsSourceOptions;
  /** The directory holding the files. */
  readonly dir: string;
}

const HOUR = 3_600_000;

/**
 * An in-memory CA for tests: mints SPIFFE peers (good, expired, not yet valid, from another CA, with custom SANs)
 * and writes server credentials in the Kubernetes Secret layout. Certificates are real; so is the TLS that uses them.
 * @example
 * ```ts
 * const pki = await TestPki.create({ trustDomain: 'shop.test' });
 * const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
 * const orders = await pki.peer('spiffe://shop.test/ns/shop/sa/orders');
 * // …
 * await pki.dispose(); // or: await using pki = await TestPki.create()
 * ```
 */
export class TestPki implements AsyncDisposable {
  /** Directories {@link credentials} created, removed by {@link dispose}. */
  readonly #temporaryDirs = new Set<string>();
  /** Issuers {@link tokenIssuer} created, disposed with this PKI (their JWKS directories). */
  readonly #tokenIssuers = new Set<TestTokenIssuer>();

  private constructor(
    /** The CA that signs this PKI's peers. */
    readonly ca: CertificateAuthority,
    /** The trust domain peers are minted in by default. */
    readonly trustDomain: string,
  ) {}

  /** A new root CA (optionally with an intermediate that signs the peers). */
  static async create(options: { trustDomain?: string; intermediate?: boolean } = {}): Promise<TestPki> {
    const trustDomain = options.trustDomain ?? 'shop.test';
    const root = await CertificateAuthority.create({ commonName: `${trustDomain} test root CA`, trustDomain });
    const ca = options.intermediate
      ? await root.createIntermediate({ commonName: `${trustDomain} test intermediate CA`, trustDomain })
      : root;
    return new TestPki(ca, trustDomain);
  }

  /** The trust bundle (root certificate PEM) peers and servers of this PKI trust. */
  get bundlePem(): string {
    return this.ca.rootPem;
  }

  /** A peer with the given SPIFFE ID (or fully custom options), valid for 24 hours. */
  async peer(spiffeIdOrOptions: string | IssueOptions): Promise<TestPeer> {
    const options = typeof spiffeIdOrOptions === 'string' ? { spiffeId: spiffeIdOrOptions } : spiffeIdOrOptions;
    return { ...(await this.ca.issue(options)), caPem: this.bundlePem };
  }

  /** A peer whose certificate expired an hour ago. */
  expiredPeer(spiffeId: string): Promise<TestPeer> {
    const now = Date.now();
    return this.peer({ spiffeId, notBefore: new Date(now - 2 * HOUR), notAfter: new Date(now - HOUR) });
  }

  /** A peer whose certificate becomes valid in an hour. */
  notYetValidPeer(spiffeId: string): Promise<TestPeer> {
    const now = Date.now();
    return this.peer({ spiffeId, notBefore: new Date(now + HOUR), notAfter: new Date(now + 2 * HOUR) });
  }

  /** A peer with the given SPIFFE ID issued by another, untrusted CA. */
  async foreignPeer(spiffeId: string): Promise<TestPeer> {
    const other = await TestPki.create({ trustDomain: this.trustDomain });
    return { ...(await other.peer(spiffeId)), caPem: this.bundlePem };
  }

  /** A token issuer with a real signing key; see {@link TestTokenIssuer}. */
  async tokenIssuer(options: TestTokenIssuerOptions = {}): Promise<TestTokenIssuer> {
    const issuer = await TestTokenIssuer.create(options);
    this.#tokenIssuers.add(issuer);
    return issuer;
  }

  /**
   * Mints a server/client identity (with IP SAN 127.0.0.1 and DNS SAN localhost unless given) and writes it to a new
   * temporary directory in the Kubernetes Secret layout (`tls.crt` with the chain, `tls.key`, `ca.crt`).
   */
  async credentials(spiffeIdOrOptions: string | IssueOptions, dir?: string): Promise<TestCredentials> {
    const options = typeof spiffeIdOrOptions === 'string' ? { spiffeId: spiffeIdOrOptions } : spiffeIdOrOptions;
    const peer = await this.peer({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], ...options });
    let target = dir;
    if (target === undefined) {
      target = await mkdtemp(join(tmpdir(), 'nestjs-mtls-test-'));
      this.#temporaryDirs.add(target);
    }
    await writeKubernetesSecret(target, secretFiles(peer));
    return { peer, credentials: { dir: target }, dir: target };
  }

  /**
   * Removes the temporary directories {@link credentials} created (never a `dir` it was given) and those of the JWKS
   * files its {@link tokenIssuer}s wrote. Close the apps that read them first. Safe to call twice; the PKI can still
   * mint certificates afterwards.
   */
  async dispose(): Promise<void> {
    const dirs = [...this.#temporaryDirs];
    this.#temporaryDirs.clear();
    await Promise.all([
      ...dirs.map((dir) => rm(dir, { recursive: true, force: true })),
      ...[...this.#tokenIssuers].map((issuer) => issuer.dispose()),
    ]);
  }

  /** `await using pki = await TestPki.create()` disposes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** The Kubernetes Secret files of a peer: `tls.crt` (chain), `tls.key`, `ca.crt`. */
export function secretFiles(peer: TestPeer): Record<string, string> {
  return { 'tls.crt': peer.chainPem, 'tls.key': peer.keyPem, 'ca.crt': peer.caPem };
}

/** Writes a peer as three plain files (`cert.pem`, `key.pem`, `ca.pem`) in `dir`; returns the file options. */
export async function writeCredentialFiles(dir: string, peer: TestPeer): Promise<CredentialsSourceOptions> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const caFile = join(dir, 'ca.pem');
  await writeFile(certFile, peer.chainPem);
  await writeFile(keyFile, peer.keyPem, { mode: 0o600 });
  await writeFile(caFile, peer.caPem);
  return { certFile, keyFile, caFile };
}
