import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { CertificateParseError } from '../errors/mtls.errors.js';
import { parseCertificateDer } from '../x509/certificate.js';

/*
 * Upstream connections end at the server chain's notAfter, as admitted peers' do on the server (issue 8): a kept-alive
 * connection and a resumed TLS session (on which Node skips the certificate check) must not outlive the certificate
 * the server proved itself with. Shared by the undici pools and the https agent.
 */

/** Certificates read above a server's leaf, at most: a real chain has one or two intermediates and a root. */
const MAX_CHAIN = 10;

/**
 * Epoch ms after which the server's chain on `socket` is no longer valid: the earliest notAfter of the leaf and the
 * certificates Node linked above it (those the server sent, then the trusted root). NaN when there is none to read,
 * as on a resumed session, for which a client keeps no chain.
 */
export function serverChainDeadline(socket: TLSSocket): number {
  let certificate: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  let deadline = Infinity;
  for (let read = 0; certificate?.raw !== undefined && read < MAX_CHAIN; read++) {
    deadline = Math.min(deadline, notAfterOf(certificate));
    const issuer: DetailedPeerCertificate | undefined = certificate.issuerCertificate;
    // A root links to itself.
    certificate = issuer === certificate ? undefined : issuer;
  }
  return deadline === Infinity ? NaN : deadline;
}

function notAfterOf(certificate: DetailedPeerCertificate): number {
  const parsed = Date.parse(certificate.valid_to);
  if (!Number.isNaN(parsed)) return parsed;
  try {
    return parseCertificateDer(certificate.raw).notAfter.getTime();
  } catch (error) {
    if (error instanceof CertificateParseError) return NaN;
    throw error;
  }
}

/**
 * The deadline of a connection that just completed its handshake: its server chain's earliest notAfter, and for a
 * resumed session no later than `sessionDeadline` (that of the connection the session came from, NaN when unknown).
 * An Error (code CERT_HAS_EXPIRED) when the connection must not be used: that deadline has passed, or is unknown.
 */
export function connectionDeadline(socket: TLSSocket, sessionDeadline: number, now: number = Date.now()): number | Error {
  const own = serverChainDeadline(socket);
  const deadline = socket.isSessionReused()
    ? Math.min(Number.isNaN(own) ? Infinity : own, Number.isNaN(sessionDeadline) ? -Infinity : sessionDeadline)
    : own;
  if (!Number.isFinite(deadline)) return expiredChain("the server's certificate chain could not be read");
  if (now > deadline) return expiredChain(`the server's certificate chain expired at ${new Date(deadline).toISOString()}`);
  return deadline;
}

/** Why a connection ends or is refused, with the code OpenSSL gives an expired certificate on a full handshake. */
export function expiredChain(message: string): Error {
  return Object.assign(new Error(message), { code: 'CERT_HAS_EXPIRED' });
}
