import type { ExecutionContext } from '@nestjs/common';
import type { PeerIdentity } from '../identity/peer-identity.js';

const PEER = Symbol('nestjs-mtls.peer');

interface WithSocket {
  socket?: unknown;
}

/**
 * @internal The request whose socket carries the peer, for the guard and `@Peer()` alike: an HTTP request (Express or
 * Fastify), or the request in a GraphQL context (`{ req }` with Express drivers, `{ request }` with Mercurius).
 * Undefined for other transports.
 */
export function requestOf(context: ExecutionContext): WithSocket | undefined {
  const type = context.getType<'http' | 'graphql' | 'rpc' | 'ws'>();
  if (type === 'http') return context.switchToHttp().getRequest<WithSocket>();
  if (type === 'graphql') {
    const graphqlContext = context.getArgByIndex<{ req?: WithSocket; request?: WithSocket } | undefined>(2);
    // Served by the mTLS server: without a request to authenticate, it is denied, never let through.
    return graphqlContext?.req ?? graphqlContext?.request ?? {};
  }
  return undefined;
}

/**
 * @internal Records the admitted peer on the request's connection. The identity belongs to the TLS connection, and
 * writing the same property of a long-lived socket costs nothing per request, where adding one to every request
 * object reshapes it (measured: most of the guard's keep-alive cost).
 */
export function attachPeer(request: WithSocket, peer: PeerIdentity): void {
  const socket = request.socket;
  if (typeof socket === 'object' && socket !== null) (socket as { [PEER]?: PeerIdentity })[PEER] = peer;
}

/**
 * The caller of a request: the peer of its TLS connection once the guard has admitted it. In handlers, pipes and
 * interceptors this is the identity the route's rule admitted; undefined when the guard admitted no peer.
 */
export function peerOfRequest(request: object): PeerIdentity | undefined {
  const socket = (request as WithSocket).socket;
  return typeof socket === 'object' && socket !== null ? (socket as { [PEER]?: PeerIdentity })[PEER] : undefined;
}
