import { hash } from 'node:crypto';
import { TrustAnchors } from '../identity/trust-anchors.js';
import type { Authorizer } from '../authorization/authorizer.js';
import { signatureVerifies } from '../x509/certificate-checks.js';
import { verifyChain, type ChainFailureKind } from '../x509/chain-verifier.js';
import { CertificateParseError, PeerError, type PeerErrorCode } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { peerIdentityFromCertificate, type PeerIdentity } from '../identity/peer-identity.js';
import type { TrustGeneration } from './trust-generation.js';

/*
 * The connection-level decision, as plain functions: given what the peer presented, OpenSSL's verdict and the trust
 * generation in force, is this a peer the package could ever admit? Route rules are not evaluated here (the guard
 * does that per request); the socket plumbing lives in connection-gate.ts.
 */

/** Most certificates of a peer chain ever considered: its leaf and up to nine certificates it sent after it. */
export const MAX_PEER_CHAIN = 10;
/** Distinct leaves (and their chains, identities) remembered; beyond it the oldest go. */
const MAX_REMEMBERED = 4096;

/** What a peer presented: its leaf and, when they were needed, the certificates it sent after it (bounded). */
export interface PeerChain {
  readonly leaf: CertificateInfo;
  /** At most {@link MAX_PEER_CHAIN} − 1 certificates, in the order Node links them; empty when none were read. */
  readonly presented: readonly CertificateInfo[];
}

/** Whether a chain verifies under a generation at an instant, and why not. */
export type ChainVerdict =
  { readonly ok: true } | { readonly ok: false; readonly kind: ChainFailureKind; readonly reason: string };

/** The decision on one connection. */
export type Admission =
  | {
      readonly kind: 'admitted';
      readonly identity: PeerIdentity;
      readonly chain: PeerChain;
      /** Epoch ms after which the peer is no longer served: the earliest notAfter of its chain. */
      readonly deadline: number;
    }
  /** No certificate, or one the trust does not accept: 401 in permissive mode, closed in strict mode. */
  | { readonly kind: 'unauthenticated'; readonly error: PeerError; readonly label: string }
  /** A certificate that can never authenticate a peer here, or one the connection rule refuses: always closed. */
  | { readonly kind: 'refused'; readonly error: PeerError; readonly label: string };

/** The X509_V_ERR name (as Node spells it) closest to a chain failure: one label set for OpenSSL's refusals and ours. */
export const CHAIN_FAILURE_LABELS: Readonly<Record<ChainFailureKind, string>> = Object.freeze({
  'no-path': 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'not-a-ca': 'INVALID_CA',
  'not-yet-valid': 'CERT_NOT_YET_VALID',
  expired: 'CERT_HAS_EXPIRED',
  'path-length': 'PATH_LENGTH_EXCEEDED',
  usage: 'INVALID_PURPOSE',
  revoked: 'CERT_REVOKED',
  'crl-missing': 'UNABLE_TO_GET_CRL',
  'crl-expired': 'CRL_HAS_EXPIRED',
  'crl-not-yet-valid': 'CRL_NOT_YET_VALID',
});

/** Drops the oldest entry of a Map used as a bounded memory (a Map iterates in insertion order). */
function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= MAX_REMEMBERED && !map.has(key)) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

/**
 * Parsed peer certificates by DER, so that a reconnecting peer costs one SHA-256 and a lookup; and the last chain
 * each leaf presented, so that a resumed session (which carries the leaf only) is verified against what the peer
 * really sent. Bounded: the oldest entries go first.
 */
export class PeerCertificates {
  readonly #byDer = new Map<string, CertificateInfo>();
  readonly #chains = new Map<CertificateInfo, PeerChain>();

  /** The parsed certificate; throws CertificateParseError for DER that is not one. */
  parse(der: Uint8Array): CertificateInfo {
    const key = hash('sha256', der, 'base64');
    let info = this.#byDer.get(key);
    if (info === undefined) {
      info = parseCertificateDer(der);
      remember(this.#byDer, key, info);
    }
    return info;
  }

  /** One object per distinct chain (verdicts are cached per object), remembered as the leaf's latest. */
  chain(leaf: CertificateInfo, presented: readonly CertificateInfo[]): PeerChain {
    const known = this.#chains.get(leaf);
    if (known !== undefined && sameCertificates(known.presented, presented)) return known;
    const chain = Object.freeze({ leaf, presented: Object.freeze([...presented]) });
    // Only a chain that carries certificates replaces what is known: a resumed session presents the leaf alone.
    if (presented.length > 0 || known === undefined) remember(this.#chains, leaf, chain);
    return chain;
  }

  /** The chain `leaf` was last seen with, or the leaf alone. */
  lastChain(leaf: CertificateInfo): PeerChain {
    return this.#chains.get(leaf) ?? this.chain(leaf, []);
  }
}

function sameCertificates(a: readonly CertificateInfo[], b: readonly CertificateInfo[]): boolean {
  return a.length === b.length && a.every((certificate, i) => certificate === b[i]);
}

/** True when `leaf` is signed by a self-signed root of the bundle: no certificate the peer sent can matter then. */
export function issuedByRoot(leaf: CertificateInfo, roots: readonly CertificateInfo[]): boolean {
  for (const root of roots) {
    if (root.selfIssued && leaf.issuerDer.equals(root.subjectDer) && signatureVerifies(leaf, root)) return true;
  }
  return false;
}

/** Verifies a recorded chain against a generation's bundle and CRLs at `now`, as OpenSSL would (clientAuth). */
export function verifyPeerChain(chain: PeerChain, generation: TrustGeneration, now: Date): ChainVerdict {
  const result = verifyChain(chain.leaf, chain.presented, generation.roots, {
    now,
    crls: generation.crls,
    usages: ['clientAuth'],
    maxDepth: MAX_PEER_CHAIN + 1,
  });
  return result.ok ? { ok: true } : { ok: false, kind: result.kind, reason: result.reason };
}

/** Epoch ms after which the chain is no longer valid: its earliest notAfter. */
export function chainDeadline(chain: PeerChain): number {
  let deadline = chain.leaf.notAfter.getTime();
  for (const certificate of chain.presented) deadline = Math.min(deadline, certificate.notAfter.getTime());
  return deadline;
}

type Identity = PeerIdentity | PeerError;

/** Identities per bundle, by chain (a mixed bundle's binding depends on what was presented): independent of time. */
const identitiesByBundle = new WeakMap<readonly CertificateInfo[], Map<PeerChain, Identity>>();

/**
 * The identity a leaf proves under a bundle, or why it proves none: a valid X509-SVID when it claims a SPIFFE ID, no
 * CA/keyCertSign/cRLSign leaf, a SPIFFE ID vouched for by the root it chains to. Cached per bundle and chain.
 */
export function identityOf(chain: PeerChain, roots: readonly CertificateInfo[]): Identity {
  let identities = identitiesByBundle.get(roots);
  if (identities === undefined) {
    identities = new Map();
    identitiesByBundle.set(roots, identities);
  }
  let identity = identities.get(chain);
  if (identity === undefined) {
    identity = judge(chain, roots);
    remember(identities, chain, identity);
  }
  return identity;
}

function judge(chain: PeerChain, roots: readonly CertificateInfo[]): Identity {
  try {
    const peer = peerIdentityFromCertificate(chain.leaf);
    const problem = TrustAnchors.of(roots).problem(peer, chain.leaf, () => chain.presented);
    return problem === undefined ? peer : new PeerError('ERR_MTLS_PEER_INVALID', problem);
  } catch (error) {
    if (error instanceof PeerError) return error;
    if (error instanceof CertificateParseError) {
      return new PeerError('ERR_MTLS_PEER_INVALID', `peer certificate unreadable: ${error.message}`);
    }
    throw error;
  }
}

/** Everything {@link decideAdmission} looks at. */
export interface AdmissionInput {
  /** What the peer presented, or undefined when it presented no certificate. */
  readonly chain: PeerChain | undefined;
  /** OpenSSL's verification error for this handshake (`socket.authorizationError`), undefined when it verified. */
  readonly tlsError: string | undefined;
  /**
   * The chain must be verified here against `generation`: the handshake began under an older generation, or it
   * resumed a session whose verdict is not known to hold under this one.
   */
  readonly reverify: boolean;
  /** The trust in force now. */
  readonly generation: TrustGeneration;
  /** Epoch ms. */
  readonly now: number;
  /** The module's connection-level rule (`connectionAuthorizer`), if any. */
  readonly authorizer: Authorizer | undefined;
}

function unauthenticated(reason: string, label: string): Admission {
  return { kind: 'unauthenticated', error: new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', reason), label };
}

function refused(code: PeerErrorCode, reason: string, rule?: string): Admission {
  return { kind: 'refused', error: new PeerError(code, reason, rule), label: code };
}

/**
 * Decides one connection, in order: a certificate at all; OpenSSL's verdict; the chain under the current generation
 * when the handshake began under an older one or resumed a session; validity now; an identity the package could ever
 * admit; the connection rule. Pure: no socket, no clock.
 */
export function decideAdmission(input: AdmissionInput): Admission {
  const { chain, generation } = input;
  if (chain === undefined) return unauthenticated('peer presented no certificate', 'ERR_MTLS_PEER_UNAUTHENTICATED');
  if (input.tlsError !== undefined) {
    return unauthenticated(`peer certificate not trusted: ${input.tlsError}`, input.tlsError);
  }
  if (input.reverify) {
    const verdict = verifyPeerChain(chain, generation, new Date(input.now));
    if (!verdict.ok) {
      return unauthenticated(
        `peer certificate not trusted under the current trust: ${verdict.reason}`,
        CHAIN_FAILURE_LABELS[verdict.kind],
      );
    }
  }
  const leaf = chain.leaf;
  if (input.now < leaf.notBefore.getTime() || input.now > chainDeadline(chain)) {
    return unauthenticated(
      `peer certificate is valid only from ${leaf.notBefore.toISOString()} to ${new Date(chainDeadline(chain)).toISOString()}`,
      input.now < leaf.notBefore.getTime() ? 'CERT_NOT_YET_VALID' : 'CERT_HAS_EXPIRED',
    );
  }
  const identity = identityOf(chain, generation.roots);
  if (identity instanceof PeerError) return refused(identity.code, identity.message, identity.rule);
  const authorizer = input.authorizer;
  if (authorizer !== undefined) {
    const reason = authorizer(identity);
    if (reason !== undefined) return refused('ERR_MTLS_PEER_DENIED', `connection refused: ${reason}`, authorizer.description);
  }
  return { kind: 'admitted', identity, chain, deadline: chainDeadline(chain) };
}
