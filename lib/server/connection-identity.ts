import { Injectable } from '@nestjs/common';
import { PeerError } from '../errors/mtls.errors.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import type { AdmittedConnection } from './connection-tracker.js';

/** Where a connection's admission is kept: on the socket itself (one property read per request, no map lookup). */
const ADMISSION = Symbol('nestjs-mtls.admission');

/** A connection's admission: the admitted peer, or why it was not authenticated (permissive mode keeps those open). */
export type SocketAdmission = AdmittedConnection | PeerError;

/** @internal Records the admission decided right after the handshake (see connection-gate.ts). */
export function recordAdmission(socket: object, admission: SocketAdmission): void {
  (socket as { [ADMISSION]?: SocketAdmission })[ADMISSION] = admission;
}

/** @internal The admission recorded on a socket, or undefined for a connection the mTLS server did not admit. */
export function admissionOf(socket: unknown): SocketAdmission | undefined {
  return typeof socket === 'object' && socket !== null ? (socket as { [ADMISSION]?: SocketAdmission })[ADMISSION] : undefined;
}

const NOT_ADMITTED = 'the connection was not admitted by MtlsModule (it was not accepted by the mTLS server)';

/**
 * The peer of a connection, as decided once right after its TLS handshake: the certificate, OpenSSL's verdict, the
 * trust generation, the identity rules and the module's `connectionAuthorizer` were all applied then. Route rules
 * are the guard's.
 */
@Injectable()
export class ConnectionIdentities {
  /** The peer on this socket, or the PeerError explaining why there is none; a bad peer never makes it throw. */
  identify(socket: unknown): PeerIdentity | PeerError {
    const admission = admissionOf(socket);
    if (admission === undefined) return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', NOT_ADMITTED);
    return admission instanceof PeerError ? admission : admission.identity;
  }
}
