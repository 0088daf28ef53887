import { Injectable } from '@nestjs/common';
import type { TLSSocket } from 'node:tls';
import { CertificateParseError, PeerError } from '../errors/mtls.errors.js';
import { parseCertificateDer } from '../identity/certificate.js';
import { peerIdentityFromCertificate, type PeerIdentity } from '../identity/peer-identity.js';

/**
 * Derives the peer's identity once per TLS connection and caches it on the socket's behalf.
 * Authentication rests on the certificate the peer presented *and* OpenSSL's verdict on it:
 * `socket.authorized` alone is not enough (TLS 1.3 resumption without a certificate reports true, node#35317).
 */
@Injectable()
export class ConnectionIdentities {
  readonly #cache = new WeakMap<object, PeerIdentity | PeerError>();

  /** The peer on this socket, or the PeerError explaining why there is none; a bad peer never makes it throw. */
  identify(socket: unknown): PeerIdentity | PeerError {
    if (typeof socket !== 'object' || socket === null) {
      return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'request has no socket');
    }
    let identity = this.#cache.get(socket);
    if (identity === undefined) {
      identity = derive(socket as Partial<TLSSocket>);
      this.#cache.set(socket, identity);
    }
    return identity;
  }
}

function derive(socket: Partial<TLSSocket>): PeerIdentity | PeerError {
  if (typeof socket.getPeerX509Certificate !== 'function') {
    return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'connection is not TLS');
  }
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
  try {
    return peerIdentityFromCertificate(parseCertificateDer(certificate.raw));
  } catch (error) {
    if (error instanceof PeerError) return error;
    if (error instanceof CertificateParseError) {
      return new PeerError('ERR_MTLS_PEER_INVALID', `peer certificate unreadable: ${error.message}`);
    }
    throw error;
  }
}
