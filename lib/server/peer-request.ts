import type { PeerIdentity } from '../identity/peer-identity.js';

const PEER = Symbol('nestjs-mtls.peer');

interface WithSocket {
  socket?: unknown;
}

/**
 * @internal Records the admitted peer on the request's connection. The identity belongs to the TLS connection, and
 * writing the same property of a long-lived socket costs nothing per request, where adding one to every request
 * object reshapes it (measured: most of the guard's keep-alive cost).
 */
export function attachPeer(request: WithSocket, peer: PeerIdentity, scope: 'connection' | 'request' = 'connection'): void {
  // Behind a proxy one connection carries many callers: the peer belongs to the request, never to the socket.
  if (scope === 'request') {
    (request as { [PEER]?: PeerIdentity })[PEER] = peer;
    return;
  }
  const socket = request.socket;
  if (typeof socket === 'object' && socket !== null) (socket as { [PEER]?: PeerIdentity })[PEER] = peer;
}

/**
 * The caller of a request: the peer of its TLS connection (behind a proxy: of the request) once the guard has admitted
 * it. In handlers, pipes and interceptors this is the identity the route's rule admitted; undefined when the guard
 * admitted no peer.
 */
export function peerOfRequest(request: object): PeerIdentity | undefined {
  const own = (request as { [PEER]?: PeerIdentity })[PEER];
  if (own !== undefined) return own;
  const socket = (request as WithSocket).socket;
  return typeof socket === 'object' && socket !== null ? (socket as { [PEER]?: PeerIdentity })[PEER] : undefined;
}
