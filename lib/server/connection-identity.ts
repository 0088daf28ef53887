import { Inject, Injectable } from '@nestjs/common';
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TrustAnchors } from '../identity/trust-anchors.js';
import type { CredentialStore } from '../credentials/credential-store.js';
import { CertificateParseError, PeerError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { peerIdentityFromCertificate, type PeerIdentity } from '../identity/peer-identity.js';
import { MTLS_IDENTITY_CREDENTIALS } from '../mtls.constants.js';

/** Most certificates read after a peer's leaf: a real chain has one or two intermediates. */
const MAX_PRESENTED = 8;
/** Distinct peer leaves whose verdict is remembered per trust bundle; beyond it the memory starts over. */
const MAX_REMEMBERED_LEAVES = 1024;

type Verdict = PeerIdentity | PeerError;

/** Verdicts per trust bundle, by leaf SHA-256: a reconnecting peer is not parsed and checked again. */
const verdictsByBundle = new WeakMap<readonly CertificateInfo[], Map<string, Verdict>>();

function verdictsFor(bundle: readonly CertificateInfo[]): Map<string, Verdict> {
  let verdicts = verdictsByBundle.get(bundle);
  if (verdicts === undefined) {
    verdicts = new Map();
    verdictsByBundle.set(bundle, verdicts);
  }
  return verdicts;
}

/**
 * The peer of a socket. The verdict on a leaf is reached once per leaf and trust bundle (a reconnecting peer is not
 * parsed or checked again) and kept per socket; the certificate's validity is checked against the clock on each call.
 * Authentication rests on the certificate the peer presented *and* OpenSSL's verdict on it:
 * `socket.authorized` alone is not enough (TLS 1.3 resumption without a certificate reports true, node#35317).
 * A SPIFFE ID must also be vouched for by the trust anchor the certificate chains to ({@link TrustAnchors}).
 */
@Injectable()
export class ConnectionIdentities {
  readonly #cache = new WeakMap<object, PeerIdentity | PeerError>();

  constructor(@Inject(MTLS_IDENTITY_CREDENTIALS) private readonly store: Pick<CredentialStore, 'current'>) {}

  /** The peer on this socket, or the PeerError explaining why there is none; a bad peer never makes it throw. */
  identify(socket: unknown): PeerIdentity | PeerError {
    if (typeof socket !== 'object' || socket === null) {
      return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'request has no socket');
    }
    let identity = this.#cache.get(socket);
    if (identity === undefined) {
      // The bundle of the server's current context: the one this connection was verified against, short of a
      // reload in between (after which the connection tracker re-verifies open connections).
      identity = derive(socket as Partial<TLSSocket>, this.store.current.caCertificates);
      this.#cache.set(socket, identity);
    }
    return identity;
  }
}

function derive(socket: Partial<TLSSocket>, bundle: readonly CertificateInfo[]): PeerIdentity | PeerError {
  if (typeof socket.getPeerX509Certificate !== 'function') {
    return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'connection is not TLS');
  }
  // Read once: on a server socket, Node 20 hands the peer's intermediates to the first call only.
  const certificate = socket.getPeerX509Certificate();
  if (certificate === undefined) {
    return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'peer presented no certificate');
  }
  if (socket.authorized !== true) {
    return new PeerError(
      'ERR_MTLS_PEER_UNAUTHENTICATED',
      `peer certificate not trusted: ${String(socket.authorizationError ?? 'unknown reason')}`,
    );
  }
  const verdicts = verdictsFor(bundle);
  const key = certificate.fingerprint256;
  let verdict = verdicts.get(key);
  if (verdict === undefined) {
    verdict = judge(certificate, bundle);
    if (verdicts.size >= MAX_REMEMBERED_LEAVES) verdicts.clear();
    verdicts.set(key, verdict);
  }
  if (verdict instanceof PeerError) return verdict;
  // A resumed TLS session carries the verdict of its first handshake, possibly past the certificate's lifetime.
  const now = Date.now();
  if (now > verdict.notAfter.getTime() || now < verdict.notBefore.getTime()) {
    return new PeerError(
      'ERR_MTLS_PEER_UNAUTHENTICATED',
      `peer certificate is valid only from ${verdict.notBefore.toISOString()} to ${verdict.notAfter.toISOString()}`,
    );
  }
  return verdict;
}

/** The identity a leaf proves under this bundle, or why it proves none; independent of time and connection. */
function judge(certificate: X509Certificate, bundle: readonly CertificateInfo[]): Verdict {
  try {
    const leaf = parseCertificateDer(certificate.raw);
    const peer = peerIdentityFromCertificate(leaf);
    const problem = TrustAnchors.of(bundle).problem(peer, leaf, () => presentedAfter(certificate));
    return problem === undefined ? peer : new PeerError('ERR_MTLS_PEER_INVALID', problem);
  } catch (error) {
    if (error instanceof PeerError) return error;
    if (error instanceof CertificateParseError) {
      return new PeerError('ERR_MTLS_PEER_INVALID', `peer certificate unreadable: ${error.message}`);
    }
    throw error;
  }
}

/**
 * The certificates the peer sent after its leaf, as Node links them (`issuerCertificate`; a self-signed one links to
 * itself). Only candidates for path building: the trust decision checks every signature. Unreadable ones are skipped.
 */
function presentedAfter(leaf: X509Certificate): readonly CertificateInfo[] {
  const presented: CertificateInfo[] = [];
  const seen = new Set<string>();
  let current = leaf.issuerCertificate;
  // Bounded: a self-linked certificate may come back as a new wrapper object on every step.
  for (let steps = 0; current !== undefined && steps < MAX_PRESENTED; steps++, current = current.issuerCertificate) {
    let info: CertificateInfo;
    try {
      info = parseCertificateDer(current.raw);
    } catch (error) {
      if (!(error instanceof CertificateParseError)) throw error;
      continue;
    }
    if (seen.has(info.fingerprint256)) break;
    seen.add(info.fingerprint256);
    presented.push(info);
  }
  return presented;
}
