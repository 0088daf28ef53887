import { Injectable } from '@nestjs/common';
import type { PeerError } from '../errors/mtls.errors.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { ConnectionIdentities } from './connection-identity.js';
import { connectionOf } from './peer-request.js';

/** What the guard reads of a request: its socket, and the adapter's raw Node request (Fastify's `request.raw`). */
export interface IdentifiableRequest {
  socket?: unknown;
  raw?: unknown;
  rawHeaders?: unknown;
}

/**
 * Where the guard gets a request's peer, chosen once at startup from the module options: the TLS connection
 * ({@link ConnectionIdentitySource}, the default) or a trusted proxy's header (`proxy` option). The guard, `@Peer()`
 * and the route rules are the same either way.
 */
export abstract class PeerIdentitySource {
  /**
   * `'connection'`: every request on a connection has the same peer, so the admitted peer is kept on the socket.
   * `'request'`: each request names its own caller (one proxy connection carries many), so it is kept on the request.
   */
  abstract readonly scope: 'connection' | 'request';

  /** The request's peer, or the PeerError explaining why it has none; never throws for a bad peer or header. */
  abstract identify(request: IdentifiableRequest): PeerIdentity | PeerError;
}

/** Identities from the request's own TLS connection: the peer certificate, checked once per connection. */
@Injectable()
export class ConnectionIdentitySource extends PeerIdentitySource {
  readonly scope = 'connection';

  constructor(private readonly connections: ConnectionIdentities) {
    super();
  }

  identify(request: IdentifiableRequest): PeerIdentity | PeerError {
    return this.connections.identify(connectionOf(request));
  }
}
