import { isIP } from 'node:net';
import { checkServerIdentity as checkHostName, type PeerCertificate } from 'node:tls';
import { compileRule } from '../authorization/peer-rule.js';
import type { Authorizer } from '../authorization/authorizer.js';
import { UpstreamError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../identity/certificate.js';
import { peerIdentityFromDer, type PeerIdentity } from '../identity/peer-identity.js';

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
  /** Builds the handshake check for connections to `origin`; `upstream` names the upstream in errors. */
  verifier(upstream: string, origin: URL): ServerIdentityCheck;
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
    verifier: (upstream) => (_hostname, certificate) => checkSpiffeId(certificate, authorizer, upstream, description),
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
    verifier: (upstream) => (_hostname, certificate) => checkHost(name, certificate, upstream),
  };
}

/** The server's certificate must carry the URL's host as a DNS or IP SAN: the default when nothing else is expected. */
export const URL_HOST_NAME: UpstreamExpectation = Object.freeze({
  description: "the URL's host name",
  servername: undefined,
  verifier: (upstream: string, origin: URL): ServerIdentityCheck => {
    // The pool's origin, not Node's `hostname` argument: undici derives SNI, and so that argument, from a `Host` header.
    const name = origin.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    return (_hostname, certificate) => checkHost(name, certificate, upstream);
  },
});

function describeRule(expectPeer: string, namedPeers: ReadonlyMap<string, string>): string {
  const id = namedPeers.get(expectPeer);
  return id === undefined ? expectPeer : `${expectPeer} (${id})`;
}

function checkSpiffeId(
  certificate: PeerCertificate,
  authorizer: Authorizer,
  upstream: string,
  expected: string,
): Error | undefined {
  let peer: PeerIdentity;
  try {
    peer = peerIdentityFromDer(certificate.raw);
  } catch (error) {
    return mismatch(upstream, expected, 'an unusable certificate', describeError(error), error);
  }
  // The authorizer's reason only repeats what was presented, which the message already shows.
  return authorizer(peer) === undefined ? undefined : mismatch(upstream, expected, describePeer(peer), undefined);
}

function checkHost(name: string, certificate: PeerCertificate, upstream: string): Error | undefined {
  let leaf: CertificateInfo;
  try {
    leaf = parseCertificateDer(certificate.raw);
  } catch (error) {
    return mismatch(upstream, `host name ${name}`, 'an unusable certificate', describeError(error), error);
  }
  const seen = describeNames(leaf.uris, leaf.dnsNames, leaf.ipAddresses);
  // Node matches the subject CN when a certificate has no DNS SAN (RFC 6125 §6.4.4); browsers and Go stopped long ago.
  if (isIP(name) === 0 && leaf.dnsNames.length === 0) {
    return mismatch(upstream, `host name ${name}`, seen, 'the certificate has no DNS SAN (the subject CN is never used)');
  }
  const error = checkHostName(name, certificate);
  if (error === undefined) return undefined;
  return mismatch(upstream, `host name ${name}`, seen, `${name} is not among its SANs`, error);
}

function mismatch(
  upstream: string,
  expected: string,
  seen: string,
  reason: string | undefined,
  cause?: unknown,
): UpstreamError {
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
