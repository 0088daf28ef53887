import type { ExecutionContext } from '@nestjs/common';
import type { PeerIdentity } from '../identity/peer-identity.js';

const PEER = Symbol('nestjs-mtls.peer');

interface Http2StreamLike {
  session?: { socket?: unknown; destroyed?: boolean } | undefined;
}

interface WithSocket {
  socket?: unknown;
  /** Node's HTTP/2 compatibility request (`Http2ServerRequest`). */
  stream?: Http2StreamLike | undefined;
  /** Fastify's request wraps Node's. */
  raw?: WithSocket | undefined;
}

/**
 * @internal The TLS connection a request came over. HTTP/1.1 (Express, Fastify): `request.socket`. HTTP/2: the
 * request's `socket` is a proxy made per stream; the connection is the session's socket (one per TLS connection, so
 * the identity is derived once per connection, not per stream). A destroyed session has no connection left.
 */
export function connectionOf(request: object): unknown {
  // Fastify's request wraps Node's: read Node's directly (one getter less per request).
  const raw = ((request as WithSocket).raw ?? request) as WithSocket;
  const stream = raw.stream;
  if (stream === undefined) return raw.socket;
  const session = stream.session;
  return session === undefined || session.destroyed === true ? undefined : session.socket;
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
export function attachPeer(request: WithSocket, peer: PeerIdentity, scope: 'connection' | 'request' = 'connection'): void {
  // Behind a proxy one connection carries many callers: the peer belongs to the request, never to the socket.
  if (scope === 'request') {
    (request as { [PEER]?: PeerIdentity })[PEER] = peer;
    return;
  }
  const socket = connectionOf(request);
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
  const socket = connectionOf(request as WithSocket);
  return typeof socket === 'object' && socket !== null ? (socket as { [PEER]?: PeerIdentity })[PEER] : undefined;
}
