import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { rawSocketOf } from './connection-gate.js';
import { clipped } from '../format/describe-value.js';

/** What is known about a peer whose handshake was rejected: where it came from, and the certificate it sent, if any. */
export interface RejectedPeer {
  readonly address: string | undefined;
  readonly port: number | undefined;
  /** The DER of the leaf the peer sent, when it could still be read. */
  readonly certificateDer?: Uint8Array | undefined;
}

/** At most this many SANs are named; a hostile certificate can carry thousands. */
const MAX_SANS = 4;
/** Longest SAN or name echoed into a log line. */
const MAX_VALUE = 200;

/**
 * Called for every accepted TCP connection of the TLS server: reads the peer's address while the socket is open.
 * Node caches it on the socket, so it can still be logged after a rejected handshake has torn the socket down (until
 * then it was `undefined`, and every foreign-CA client was logged as `unknown address`).
 */
export function rememberPeerAddress(raw: object): void {
  void (raw as Socket).remoteAddress;
}

/**
 * The address, port and — when `withCertificate` and the connection is still open — leaf certificate of a TLS socket
 * being rejected. Node destroys a socket that failed verification before `tlsClientError`, so there only the address
 * is left; a connection refused by the module's own admission still has its certificate.
 */
export function rejectedPeerOf(socket: TLSSocket, withCertificate: boolean): RejectedPeer {
  const raw = rawSocketOf(socket) as Socket | undefined;
  let certificateDer: Uint8Array | undefined;
  if (withCertificate) {
    try {
      // The leaf's DER alone (`getPeerCertificate(false)`): cheaper than an X509Certificate, and all that is logged.
      const leaf = socket.getPeerCertificate(false) as { raw?: Buffer } | null;
      certificateDer = leaf?.raw;
    } catch {
      certificateDer = undefined;
    }
  }
  return {
    address: socket.remoteAddress ?? raw?.remoteAddress,
    port: socket.remotePort ?? raw?.remotePort,
    certificateDer,
  };
}

/** A SAN as a quoted JSON string: control characters escaped, so a hostile name cannot forge a log line. */
function quoted(value: string): string {
  return JSON.stringify(clipped(value, MAX_VALUE));
}

function describeSans(leaf: CertificateInfo): string {
  const sans = [
    ...leaf.uris.map((v) => `URI:${quoted(v)}`),
    ...leaf.dnsNames.map((v) => `DNS:${quoted(v)}`),
    ...leaf.ipAddresses.map((v) => `IP:${v}`),
    ...leaf.emails.map((v) => `email:${quoted(v)}`),
  ];
  if (sans.length === 0) return 'no SAN';
  const more = sans.length > MAX_SANS ? `, … (${sans.length} in all)` : '';
  return `SANs ${sans.slice(0, MAX_SANS).join(', ')}${more}`;
}

/**
 * One log fragment naming a rejected peer: `127.0.0.1:51234`, then — when it sent a certificate — its subject, SPIFFE
 * ID (or SANs), issuer and SHA-256 fingerprint. Never the certificate body, never a key, never more than these.
 */
export function describeRejectedPeer(peer: RejectedPeer): string {
  const host = peer.address === undefined ? 'unknown address' : peer.address.includes(':') ? `[${peer.address}]` : peer.address;
  const where = peer.address !== undefined && peer.port !== undefined ? `${host}:${peer.port}` : host;
  if (peer.certificateDer === undefined || peer.certificateDer.length === 0) return where;
  let leaf: CertificateInfo;
  try {
    leaf = parseCertificateDer(peer.certificateDer);
  } catch {
    return `${where} (a certificate that does not parse)`;
  }
  const spiffeIds = leaf.uris.filter((uri) => uri.toLowerCase().startsWith('spiffe://'));
  const identity = spiffeIds.length === 1 && leaf.uris.length === 1 ? `SPIFFE ID ${quoted(spiffeIds[0]!)}` : describeSans(leaf);
  return (
    `${where} (subject ${quoted(leaf.subject)}, ${identity}, issuer ${quoted(leaf.issuer)}, ` + `SHA-256 ${leaf.fingerprint256})`
  );
}
