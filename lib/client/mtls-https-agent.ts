import { Agent, type RequestOptions } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import { UpstreamError } from '../errors/mtls.errors.js';
import type { ClientGenerations } from './client-generation.js';
import type { UpstreamExpectation } from './upstream-identity.js';
import type { UpstreamRegistry } from './upstream-registry.js';

/** Idle keep-alive sockets close after this long, as Node's global agent does. */
const IDLE_TIMEOUT_MS = 5_000;

/**
 * An `https.Agent` for `node:https` and `@nestjs/axios` users, fed from the client's credentials: each new connection
 * gets the current generation's SecureContext and the server identity check, whatever the request's own TLS options
 * say. The generation is part of the connection name, so neither sockets nor TLS sessions cross a rotation; idle
 * sockets of a retired generation are destroyed and busy ones close after their response.
 */
export class MtlsHttpsAgent extends Agent {
  readonly #versions = new WeakMap<Duplex, number>();
  #closed = false;

  /** @internal Built by `MtlsHttpClient.httpsAgent()`. */
  constructor(
    private readonly generations: ClientGenerations,
    private readonly registry: UpstreamRegistry,
    /** Fixed expectation, or undefined to derive it from each request's origin. */
    private readonly expectation: UpstreamExpectation | undefined,
    connections: number,
  ) {
    super({ keepAlive: true, maxSockets: connections, scheduling: 'lifo', timeout: IDLE_TIMEOUT_MS });
    generations.onRotate(() => this.#destroyIdle());
  }

  override getName(options?: RequestOptions): string {
    return `${super.getName(options)}:generation=${this.generations.current?.version ?? 'closed'}`;
  }

  override createConnection(
    options: RequestOptions,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): Duplex | null | undefined {
    const generation = this.#closed ? undefined : this.generations.current;
    const host = options.host ?? options.hostname ?? 'localhost';
    const origin = new URL(`https://${host.includes(':') ? `[${host}]` : host}:${options.port ?? 443}`);
    if (generation === undefined) {
      const error = new UpstreamError(
        'ERR_MTLS_UPSTREAM_REQUEST',
        `the mTLS client is closed; nothing was sent to ${origin.origin}`,
        { upstream: origin.origin },
      );
      process.nextTick(() => callback?.(error, undefined as never));
      return undefined;
    }
    const expectation = this.expectation ?? this.registry.expectation(undefined, origin.origin);
    // Node skips checkServerIdentity on a resumed session: only sessions this agent cached (per generation) may resume.
    const { session: _callerSession, ...request } = options as RequestOptions & Pick<ConnectionOptions, 'session'>;
    const connection: RequestOptions & Pick<ConnectionOptions, 'secureContext'> = {
      ...request,
      // Whatever TLS options the request carries, the context and the checks are the client's.
      secureContext: generation.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: expectation.verifier(this.registry.label(origin.origin), origin),
      ...(expectation.servername === undefined ? {} : { servername: expectation.servername }),
    };
    const socket = super.createConnection(connection, callback);
    if (socket != null) this.#versions.set(socket, generation.version);
    return socket;
  }

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.#closed || this.#versions.get(socket) !== this.generations.current?.version) return false;
    return (super.keepSocketAlive as (socket: Duplex) => boolean)(socket);
  }

  /** @internal Refuses new connections and destroys idle ones; busy sockets close after their response. */
  shutdown(): void {
    this.#closed = true;
    this.#destroyIdle();
  }

  #destroyIdle(): void {
    const current = this.generations.current?.version;
    for (const sockets of Object.values(this.freeSockets)) {
      for (const socket of sockets ?? []) {
        if (this.#closed || this.#versions.get(socket) !== current) socket.destroy();
      }
    }
  }
}
