import { isIP } from 'node:net';
import { checkServerIdentity as checkHostName, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import type { Authorizer } from '../authorization/authorizer.js';
import { compileRule } from '../authorization/peer-rule.js';
import { chainTrustDomainProblem, type TrustAnchors } from '../identity/trust-anchors.js';
import { CertificateParseError, UpstreamError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { peerIdentityFromCertificate, type PeerIdentity } from '../identity/peer-identity.js';

/** Node's `checkServerIdentity` hook: return an Error to fail the handshake before any request byte is sent. */
export type ServerIdentityCheck = (hostname: string, certificate: PeerCertificate) => Error | undefined;

/**
 * What the server of one upstream must prove, compiled once and shared by every pool that expects it.
 * Chain trust is OpenSSL's (the CA bundle, `rejectUnauthorized: true`); this is the identity check on top of it.
 */
export interface UpstreamExpectation {
  /** The expected identity as written in errors: a SPIFFE ID or rule, or a host name. */
  readonly description: string;
  /** SNI to send instead of the URL's host (an expected host name), or undefined to let the URL decide. */
  readonly servername: string | undefined;
  /**
   * Builds the handshake check for connections to `origin`; `upstream` names the upstream in errors. `trustAnchors`
   * are those of the CA bundle the connection trusts (`TrustAnchors.of(credentials.caCertificates)`): with them a
   * server's SPIFFE ID is checked against the anchor of its trust domain at no cost in the common case. Without them
   * the check falls back to the chain Node rebuilt, verifying its signatures once per distinct chain (see
   * `chainTrustDomainProblem` for what that cannot catch).
   */
  verifier(upstream: string, origin: URL, trustAnchors?: TrustAnchors): ServerIdentityCheck;
}

/**
 * The server must present an X509-SVID whose SPIFFE ID satisfies `expectPeer`: a named peer, a SPIFFE ID, or a
 * pattern (`*` = one path segment). The host name plays no part: SVIDs rarely carry a SAN for the URL's host, and
 * Node's default check would fall back to the subject CN. Throws MtlsConfigError for an unknown named peer.
 */
export function expectSpiffePeer(expectPeer: string, namedPeers: ReadonlyMap<string, string>): UpstreamExpectation {
  const authorizer = compileRule({ kind: 'peers', peers: [expectPeer] }, namedPeers);
  const description = describeRule(expectPeer, namedPeers);
  return {
    description,
    servername: undefined,
    verifier: (upstream, _origin, trustAnchors) => (_hostname, certificate) =>
      checkSpiffeId(certificate, trustAnchors, authorizer, upstream, description),
  };
}

/**
 * The server's certificate must carry `hostname` as a DNS or IP SAN (legacy servers without SPIFFE IDs).
 * The hostname is also sent as SNI, so that a server behind a shared address picks the right certificate.
 */
export function expectHostName(hostname: string): UpstreamExpectation {
  const name = hostname.toLowerCase();
  return {
    description: `host name ${name}`,
    servername: isIP(name) === 0 ? name : undefined,
    verifier: (upstream, _origin, trustAnchors) => (_hostname, certificate) =>
      checkHost(name, certificate, trustAnchors, upstream),
  };
}

function describeRule(expectPeer: string, namedPeers: ReadonlyMap<string, string>): string {
  const id = namedPeers.get(expectPeer);
  return id === undefined ? expectPeer : `${expectPeer} (${id})`;
}

/** The server's identity, or what it presented and why that is no usable identity. */
type ServerIdentity =
  | { readonly ok: true; readonly peer: PeerIdentity; readonly leaf: CertificateInfo }
  | { readonly ok: false; readonly seen: string; readonly reason: string; readonly cause: unknown };

/**
 * Derives the server's identity with the guard's rules: a leaf that can sign, or that claims a SPIFFE ID without being
 * a valid X509-SVID, is refused whatever was expected; a SPIFFE ID must be vouched for by its chain's trust anchor.
 */
function serverIdentity(certificate: PeerCertificate, trustAnchors: TrustAnchors | undefined): ServerIdentity {
  let leaf: CertificateInfo;
  let peer: PeerIdentity;
  try {
    leaf = parseCertificateDer(certificate.raw);
    peer = peerIdentityFromCertificate(leaf);
  } catch (error) {
    return { ok: false, seen: 'an unusable certificate', reason: describeError(error), cause: error };
  }
  if (peer.spiffeId !== undefined) {
    const problem =
      trustAnchors === undefined
        ? chainTrustDomainProblem(peer, [leaf, ...issuersOf(certificate)])
        : trustAnchors.problem(peer, leaf, () => issuersOf(certificate));
    if (problem !== undefined) return { ok: false, seen: peer.spiffeId, reason: problem, cause: undefined };
  }
  return { ok: true, peer, leaf };
}

/** Most certificates read above a server's leaf: a real chain has one or two intermediates and a root. */
const MAX_ISSUERS = 8;

/**
 * The certificates above the leaf in the chain Node built for `checkServerIdentity`: those the server sent, linked by
 * name, then the root found in the trust store, which links to itself. Unreadable ones are skipped.
 */
function issuersOf(certificate: PeerCertificate): CertificateInfo[] {
  const issuers: CertificateInfo[] = [];
  let previous: object = certificate;
  let current = (certificate as Partial<DetailedPeerCertificate>).issuerCertificate;
  while (current !== undefined && current !== previous && issuers.length < MAX_ISSUERS) {
    if (current.raw !== undefined) {
      try {
        issuers.push(parseCertificateDer(current.raw));
      } catch (error) {
        if (!(error instanceof CertificateParseError)) throw error;
      }
    }
    previous = current;
    current = current.issuerCertificate;
  }
  return issuers;
}

function checkSpiffeId(
  certificate: PeerCertificate,
  trustAnchors: TrustAnchors | undefined,
  authorizer: Authorizer,
  upstream: string,
  expected: string,
): Error | undefined {
  const identity = serverIdentity(certificate, trustAnchors);
  if (!identity.ok) return mismatch(upstream, expected, identity.seen, identity.reason, identity.cause);
  // The authorizer's reason only repeats what was presented, which the message already shows.
  const { peer } = identity;
  return authorizer(peer) === undefined ? undefined : mismatch(upstream, expected, describePeer(peer), undefined);
}

function checkHost(
  name: string,
  certificate: PeerCertificate,
  trustAnchors: TrustAnchors | undefined,
  upstream: string,
): Error | undefined {
  const expected = `host name ${name}`;
  const identity = serverIdentity(certificate, trustAnchors);
  if (!identity.ok) return mismatch(upstream, expected, identity.seen, identity.reason, identity.cause);
  const { leaf } = identity;
  const seen = describeNames(leaf.uris, leaf.dnsNames, leaf.ipAddresses);
  // Node matches the subject CN when a certificate has no DNS SAN (RFC 6125 §6.4.4); browsers and Go stopped long ago.
  if (isIP(name) === 0 && leaf.dnsNames.length === 0) {
    return mismatch(upstream, expected, seen, 'the certificate has no DNS SAN (the subject CN is never used)');
  }
  const error = checkHostName(name, certificate);
  if (error === undefined) return undefined;
  return mismatch(upstream, expected, seen, `${name} is not among its SANs`, error);
}

function mismatch(upstream: string, expected: string, seen: string, reason: string | undefined, cause?: unknown): UpstreamError {
  const why = reason === undefined ? '' : `: ${reason}`;
  return new UpstreamError(
    'ERR_MTLS_UPSTREAM_IDENTITY',
    `upstream ${upstream} presented ${seen}, expected ${expected}${why}; no request was sent`,
    { upstream, expected, seen },
    cause === undefined ? undefined : { cause },
  );
}

/** How a server presented itself, for errors: its SPIFFE ID, or why it has none and which SANs it carries. */
export function describePeer(peer: PeerIdentity): string {
  if (peer.spiffeId !== undefined) return peer.spiffeId;
  const names = describeNames(peer.uris, peer.dnsNames, peer.ipAddresses);
  return `no SPIFFE ID (${peer.svidError ?? 'not an X509-SVID'}); ${names}`;
}

function describeNames(uris: readonly string[], dnsNames: readonly string[], ipAddresses: readonly string[]): string {
  // Quoted: SAN text comes from the remote party and ends up in logs.
  const names = [
    ...uris.map((uri) => `URI:${JSON.stringify(uri)}`),
    ...dnsNames.map((dns) => `DNS:${JSON.stringify(dns)}`),
    ...ipAddresses.map((ip) => `IP:${ip}`),
  ];
  return names.length === 0 ? 'a certificate without SANs' : `SANs [${names.join(', ')}]`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
