import { TrustAnchors } from '../identity/trust-anchors.js';
import { verifyChain } from '../x509/chain-verifier.js';
import type { RevocationList } from '../x509/crl.js';
import { decodePemBlock, findPemBlocks } from '../x509/pem.js';
import { CertificateParseError, PeerError, ProxyHeaderError } from '../errors/mtls.errors.js';
import { EKU_CLIENT_AUTH, parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { normalizeDnsName } from '../identity/dns-name.js';
import { peerIdentityFromCertificate, type PeerIdentity, type PeerSource } from '../identity/peer-identity.js';
import { parseSpiffeId, spiffeIdError } from '../identity/spiffe-id.js';
import { hasSpiffeScheme } from '../identity/svid-rules.js';
import type { XfccElement } from './xfcc.parser.js';

/*
 * The caller's identity from what a trusted proxy forwarded. A forwarded certificate is read with the same DER reader
 * and the same rules as a peer's certificate on a TLS connection (X509-SVID rules, CA leaves refused), and optionally
 * verified against the trust bundle; the proxy's text fields (URI, DNS, Subject) are used only when it forwarded no
 * certificate, and must agree with the certificate when it did.
 */

/** Most certificates in a forwarded chain (XFCC `Chain`, RFC 9440 `Client-Cert-Chain`). */
export const MAX_FORWARDED_CHAIN = 10;

/** What a forwarded certificate is checked against. */
export interface ForwardedTrust {
  /**
   * The trust bundle the forwarded chain must verify to, as on a TLS connection (validity, CA flags, path length, CRLs,
   * the clientAuth usage, the trust domain of the anchor); undefined takes the proxy's word for the chain.
   */
  readonly bundle: readonly CertificateInfo[] | undefined;
  /** CRLs checked along the chain when {@link bundle} is set (every CA then needs a current one, as in TLS). */
  readonly crls: readonly RevocationList[];
  /** The instant the certificates must be valid at. */
  readonly now: Date;
}

const forwardedDer = new WeakMap<PeerIdentity, Buffer>();
const verifiedUntil = new WeakMap<PeerIdentity, number>();

/**
 * The DER of the certificate a trusted proxy forwarded for this identity (XFCC `Cert`, RFC 9440 `Client-Cert`), as a
 * copy; undefined for an identity from a TLS connection or from a proxy's text fields. For token binding (RFC 8705
 * `cnf["x5t#S256"]` is the SHA-256 of these bytes, which `fingerprint256` already holds in hex).
 */
export function forwardedCertificateDer(peer: PeerIdentity): Uint8Array | undefined {
  const der = forwardedDer.get(peer);
  return der === undefined ? undefined : Uint8Array.from(der);
}

function malformed(message: string): ProxyHeaderError {
  return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_MALFORMED', message);
}

function mismatch(message: string): ProxyHeaderError {
  return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_MISMATCH', message);
}

/** A value from a header, quoted for a log line and cut short: the header's content is the attacker's. */
function shown(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}…` : value);
}

function parseForwarded(der: Uint8Array, what: string): CertificateInfo {
  try {
    return parseCertificateDer(der);
  } catch (error) {
    if (error instanceof CertificateParseError) throw malformed(`${what} is not an X.509 certificate: ${error.message}`);
    throw error;
  }
}

/** The certificates of URL-encoded PEM (XFCC `Cert`, `Chain`): 1 to `max` CERTIFICATE blocks and nothing else. */
export function certificatesFromUrlEncodedPem(value: string, what: string, max: number): Buffer[] {
  let pem: string;
  try {
    pem = decodeURIComponent(value);
  } catch {
    throw malformed(`${what} is not URL-encoded PEM`);
  }
  const data = Buffer.from(pem, 'latin1');
  const scan = findPemBlocks(data);
  if (!scan.ok) throw malformed(`${what}: ${scan.reason}`);
  if (scan.blocks.length === 0) throw malformed(`${what} holds no PEM certificate`);
  if (scan.blocks.length > max) throw malformed(`${what} holds more than ${max} certificates`);
  return scan.blocks.map((block, index) => {
    const der = block.label === 'CERTIFICATE' ? decodePemBlock(data, block) : undefined;
    if (der === undefined) throw malformed(`${what}: PEM block #${index + 1} is not a base64 CERTIFICATE`);
    return der;
  });
}

/** Most unhandled critical extensions a message names: the leaf and its number of extensions are the caller's. */
const MAX_SHOWN_EXTENSIONS = 3;

/** `unhandled critical extension 1.2.3`, or the first few of many and how many there are. */
function unhandledCritical(oids: readonly string[]): string {
  if (oids.length === 1) return `unhandled critical extension ${oids[0]}`;
  const more = oids.length > MAX_SHOWN_EXTENSIONS ? `, … (${oids.length} in all)` : '';
  return `unhandled critical extensions ${oids.slice(0, MAX_SHOWN_EXTENSIONS).join(', ')}${more}`;
}

/**
 * Why a forwarded leaf and chain would not pass a TLS handshake against `trust.bundle`, else the verified path (leaf to
 * root); undefined without a bundle.
 */
function chainProblem(
  leaf: CertificateInfo,
  presented: readonly CertificateInfo[],
  peer: PeerIdentity,
  trust: ForwardedTrust,
): PeerError | readonly CertificateInfo[] | undefined {
  const bundle = trust.bundle;
  if (bundle === undefined) return undefined;
  const unauthenticated = (reason: string): PeerError =>
    new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', `forwarded certificate not trusted: ${reason}`);
  // OpenSSL's TLS client purpose: a leaf that restricts its usages must allow clientAuth.
  if (leaf.extKeyUsage !== undefined && !leaf.extKeyUsage.includes(EKU_CLIENT_AUTH)) {
    return unauthenticated('its extended key usage lacks clientAuth');
  }
  if (leaf.unhandledCriticalExtensions.length > 0) {
    return unauthenticated(unhandledCritical(leaf.unhandledCriticalExtensions));
  }
  const result = verifyChain(leaf, presented, bundle, { now: trust.now, crls: trust.crls, usages: ['clientAuth'] });
  if (!result.ok) return unauthenticated(result.reason);
  const problem = TrustAnchors.of(bundle).problem(peer, leaf, () => presented, trust.now);
  return problem === undefined ? result.path : new PeerError('ERR_MTLS_PEER_INVALID', problem);
}

/**
 * The identity a forwarded certificate proves: the same derivation as for a TLS peer (throws `PeerError`
 * `ERR_MTLS_PEER_INVALID` for a CA leaf or a broken SVID), then, with `trust.bundle`, the chain check a TLS handshake
 * would make (`ERR_MTLS_PEER_UNAUTHENTICATED` when it fails). `presented` are the other certificates the proxy forwarded;
 * `check` sees the parsed leaf first (the XFCC consistency checks). Throws {@link ProxyHeaderError}
 * `ERR_MTLS_PROXY_HEADER_MALFORMED` for bytes that are not a certificate.
 */
export function identityFromForwardedCertificate(
  leafDer: Uint8Array,
  presentedDer: readonly Uint8Array[],
  source: Exclude<PeerSource, 'tls'>,
  trust: ForwardedTrust,
  check?: (leaf: CertificateInfo) => void,
): PeerIdentity {
  const leaf = parseForwarded(leafDer, 'the forwarded certificate');
  const presented = presentedDer.map((der, index) => parseForwarded(der, `forwarded chain certificate #${index + 1}`));
  check?.(leaf);
  const peer = peerIdentityFromCertificate(leaf, source);
  const path = chainProblem(leaf, presented, peer, trust);
  if (path instanceof PeerError) throw path;
  const validity = validityProblem(peer, trust.now);
  if (validity !== undefined) throw validity;
  forwardedDer.set(peer, leaf.der);
  verifiedUntil.set(peer, verdictDeadline(leaf, path, trust.crls));
  return peer;
}

/**
 * Epoch ms after which what verified a forwarded certificate may no longer hold. Without chain verification (no `path`)
 * the chain is the proxy's word: the leaf's notAfter. With it, the earliest notAfter of the verified path, leaf to root
 * (as a TLS peer is served until its chain's earliest notAfter), and the earliest nextUpdate of the CRLs of the path's
 * CAs (a handshake, and a fresh derivation, refuse a chain whose CRL has expired).
 */
function verdictDeadline(
  leaf: CertificateInfo,
  path: readonly CertificateInfo[] | undefined,
  crls: readonly RevocationList[],
): number {
  let deadline = leaf.notAfter.getTime();
  if (path === undefined) return deadline;
  for (const certificate of path) deadline = Math.min(deadline, certificate.notAfter.getTime());
  for (const crl of crls) {
    if (crl.nextUpdate === undefined) continue;
    if (path.some((ca) => ca !== leaf && ca.subjectDer.equals(crl.issuerDer)))
      deadline = Math.min(deadline, crl.nextUpdate.getTime());
  }
  return deadline;
}

/**
 * Whether the verification that derived `peer` from a forwarded certificate has lapsed at `now`: a certificate of the
 * forwarded chain or a CRL it was checked against has expired since, so a cached verdict must be derived again. False
 * for an identity from text fields (no certificate of its own).
 */
export function forwardedVerdictLapsed(peer: PeerIdentity, now: Date): boolean {
  const until = verifiedUntil.get(peer);
  return until !== undefined && now.getTime() > until;
}

/** Why `peer`'s certificate is not valid at `now` (a cached identity is checked again on every use), or undefined. */
export function validityProblem(peer: PeerIdentity, now: Date): PeerError | undefined {
  const at = now.getTime();
  if (at <= peer.notAfter.getTime() && at >= peer.notBefore.getTime()) return undefined;
  return new PeerError(
    'ERR_MTLS_PEER_UNAUTHENTICATED',
    `forwarded certificate is valid only from ${peer.notBefore.toISOString()} to ${peer.notAfter.toISOString()}`,
  );
}

const HEX_SHA256 = /^[0-9A-Fa-f]{64}$/;

function checkedHash(hash: string | undefined): string | undefined {
  if (hash === undefined) return undefined;
  if (!HEX_SHA256.test(hash)) throw malformed('x-forwarded-client-cert: Hash is not a hex SHA-256');
  return hash.toUpperCase();
}

function fingerprintHex(fingerprint256: string): string {
  return fingerprint256.replaceAll(':', '');
}

/**
 * The identity one XFCC element names. With `Cert`, the certificate decides ({@link identityFromForwardedCertificate});
 * `Hash` must be its SHA-256, and `URI` / `DNS`, when present, must be SANs of it, or the element is refused with
 * `ERR_MTLS_PROXY_HEADER_MISMATCH` (a proxy never writes such an element). Without `Cert`, the text fields make the
 * identity ({@link identityFromXfccText}).
 */
export function identityFromXfccElement(element: XfccElement, trust: ForwardedTrust): PeerIdentity {
  const hash = checkedHash(element.hash);
  if (element.cert === undefined) {
    if (element.chain !== undefined) throw malformed('x-forwarded-client-cert: Chain without Cert');
    return identityFromXfccText(element, hash);
  }
  const [leafDer] = certificatesFromUrlEncodedPem(element.cert, 'x-forwarded-client-cert Cert', 1);
  const chain =
    element.chain === undefined
      ? []
      : certificatesFromUrlEncodedPem(element.chain, 'x-forwarded-client-cert Chain', MAX_FORWARDED_CHAIN);
  return identityFromForwardedCertificate(leafDer!, chain, 'xfcc', trust, (leaf) => {
    if (hash !== undefined && hash !== fingerprintHex(leaf.fingerprint256)) {
      throw mismatch('x-forwarded-client-cert: Hash is not the SHA-256 of Cert');
    }
    if (element.uri !== undefined && !leaf.uris.includes(element.uri)) {
      throw mismatch(`x-forwarded-client-cert: URI ${shown(element.uri)} is not a URI SAN of Cert`);
    }
    for (const dns of element.dns) {
      if (!leaf.dnsNames.includes(dns)) throw mismatch(`x-forwarded-client-cert: DNS ${shown(dns)} is not a DNS SAN of Cert`);
    }
  });
}

const NO_NAMES: readonly string[] = Object.freeze([]);
// A text identity has no certificate of its own: its validity is the proxy's business, so it never expires here.
const NOT_BEFORE = 0;
const NOT_AFTER = 8_640_000_000_000_000;

/**
 * The identity an XFCC element's text fields name, for a proxy that forwards no certificate (Istio's default): `URI`
 * as the SPIFFE ID when its scheme is spiffe (then it must be a valid workload ID, or `ERR_MTLS_PEER_INVALID`), `DNS`
 * as DNS names, `Subject` for logs only (a text subject is never parsed: `commonName` stays undefined, so CN rules need
 * a forwarded certificate). `fingerprint256` comes from `Hash` when sent; issuer and serial number are empty.
 */
export function identityFromXfccText(element: XfccElement, hash: string | undefined = checkedHash(element.hash)): PeerIdentity {
  const uri = element.uri;
  let spiffeId: string | undefined;
  let trustDomain: string | undefined;
  let svidError: string | undefined = 'the proxy forwarded no URI SAN';
  if (uri !== undefined) {
    if (uri === '') throw malformed('x-forwarded-client-cert: URI is empty');
    if (hasSpiffeScheme(uri)) {
      const problem = spiffeIdError(uri) ?? (parseSpiffeId(uri).path === '' ? 'SPIFFE ID must have a non-root path' : undefined);
      if (problem !== undefined) {
        throw new PeerError('ERR_MTLS_PEER_INVALID', `forwarded URI ${shown(uri)} is not a valid workload SPIFFE ID: ${problem}`);
      }
      spiffeId = uri;
      trustDomain = parseSpiffeId(uri).trustDomain;
      svidError = undefined;
    } else {
      svidError = spiffeIdError(uri);
    }
  }
  const names = new Set<string>();
  for (const dns of element.dns) {
    if (dns === '') throw malformed('x-forwarded-client-cert: DNS is empty');
    const normalized = normalizeDnsName(dns);
    if (normalized !== undefined) names.add(normalized);
  }
  return Object.freeze({
    spiffeId,
    trustDomain,
    svidError,
    uris: uri === undefined ? NO_NAMES : Object.freeze([uri]),
    dnsNames: element.dns,
    normalizedDnsNames: names.size === 0 ? NO_NAMES : Object.freeze([...names]),
    ipAddresses: NO_NAMES,
    emails: NO_NAMES,
    subject: element.subject ?? '',
    commonName: undefined,
    issuer: '',
    serialNumber: '',
    fingerprint256: hash === undefined ? '' : (hash.match(/../g) ?? []).join(':'),
    notBefore: new Date(NOT_BEFORE),
    notAfter: new Date(NOT_AFTER),
    source: 'xfcc',
  });
}
