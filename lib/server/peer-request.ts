import type { PeerIdentity } from '../identity/peer-identity.js';

const PEER = Symbol('nestjs-mtls.peer');

/** @internal Records the admitted peer on the request object (Express or Fastify). */
export function attachPeer(request: object, peer: PeerIdentity): void {
  (request as { [PEER]?: PeerIdentity })[PEER] = peer;
}

/** The admitted caller of a request, or undefined when the guard has not admitted one (e.g. outside a guarded route). */
export function peerOfRequest(request: object): PeerIdentity | undefined {
  return (request as { [PEER]?: PeerIdentity })[PEER];
}
