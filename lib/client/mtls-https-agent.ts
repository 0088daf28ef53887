import { Agent, type RequestOptions } from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { MtlsError, UpstreamError } from '../errors/mtls.errors.js';
import type { ClientGeneration, ClientGenerations } from './client-generation.js';
import { connectionDeadline } from './upstream-expiry.js';
import type { UpstreamExpectation } from './upstream-identity.js';
import type { UpstreamRegistry } from './upstream-registry.js';

/** Idle keep-alive sockets close after this long, as Node's global agent does. */
const IDLE_TIMEOUT_MS = 5_000;

/** The TLS session cache of Node's https.Agent (lib/https.js): `createConnection` resumes what `_getSession` returns. */
interface AgentSessionCache {
  _getSession(key: string): Buffer | undefined;
  _evictSession(key: string): void;
}

const agentSessions = Agent.prototype as unknown as AgentSessionCache;

/**
 * An `https.Agent` for `node:https` and `@nestjs/axios` users, fed from the client's credentials: each new connection
 * gets the current generation's SecureContext and the server identity check, whatever the request's own TLS options
 * say. The generation is part of the connection name, so neither sockets nor TLS sessions cross a rotation; idle
 * sockets of a retired generation are destroyed and busy ones close after their response. Each connection ends at its
 * server chain's notAfter, and no TLS session is resumed past it (Node skips the certificate check on a resumed
 * session). Failures to open a connection reach the request's `error` event, never a synchronous throw.
 */
export class MtlsHttpsAgent extends Agent {
  readonly #versions = new WeakMap<Duplex, number>();
  /** The deadline of the connection each cached TLS session came from: it may resume until then. */
  readonly #sessionDeadlines = new WeakMap<Buffer, number>();
  /** The session `_getSession` handed to the connection being created, read right after (same call). */
  #handedOut: Buffer | undefined;
  #closed = false;

  /** @internal Built by `MtlsHttpClient.httpsAgent()`, which also calls {@link retireIdle} on rotation. */
  constructor(
    private readonly generations: ClientGenerations,
    private readonly registry: UpstreamRegistry,
    /** Fixed expectation, or undefined to derive it from each request's origin. */
    private readonly expectation: UpstreamExpectation | undefined,
    connections: number,
  ) {
    super({ keepAlive: true, maxSockets: connections, scheduling: 'lifo', timeout: IDLE_TIMEOUT_MS });
  }

  override getName(options?: RequestOptions): string {
    return `${super.getName(options)}:generation=${this.generations.current?.version ?? 'closed'}`;
  }

  override createConnection(
    options: RequestOptions,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): Duplex | null | undefined {
    try {
      return this.#connect(options, callback);
    } catch (error) {
      // https.request() would throw this out of the caller's call; Node's agent contract has the callback for it.
      const failure = error instanceof MtlsError ? error : cannotConnect(options, error);
      process.nextTick(() => callback?.(failure, undefined as never));
      return undefined;
    }
  }

  override keepSocketAlive(socket: Duplex): boolean {
    if (this.#closed || this.#versions.get(socket) !== this.generations.current?.version) return false;
    return (super.keepSocketAlive as (socket: Duplex) => boolean)(socket);
  }

  /** @internal Node's agent asks for the session to resume here: none whose server chain may have expired. */
  _getSession(key: string): Buffer | undefined {
    const session = agentSessions._getSession.call(this, key);
    if (session === undefined) return undefined;
    const deadline = this.#sessionDeadlines.get(session);
    if (deadline === undefined || Date.now() > deadline) {
      agentSessions._evictSession.call(this, key);
      return undefined;
    }
    this.#handedOut = session;
    return session;
  }

  /** @internal Refuses new connections and destroys idle ones; busy sockets close after their response. */
  shutdown(): void {
    this.#closed = true;
    this.retireIdle();
  }

  /** @internal Destroys idle sockets of retired generations (all of them once shut down). */
  retireIdle(): void {
    const current = this.generations.current?.version;
    for (const sockets of Object.values(this.freeSockets)) {
      for (const socket of sockets ?? []) {
        if (this.#closed || this.#versions.get(socket) !== current) socket.destroy();
      }
    }
  }

  #connect(options: RequestOptions, callback: ((error: Error | null, socket: Duplex) => void) | undefined): Duplex | undefined {
    const generation = this.#closed ? undefined : this.generations.current;
    const host = bareHost(options);
    const origin = new URL(`https://${host.includes(':') ? `[${host}]` : host}:${options.port ?? 443}`);
    if (generation === undefined) {
      const message = `the mTLS client is closed; nothing was sent to ${origin.origin}`;
      throw new UpstreamError('ERR_MTLS_UPSTREAM_REQUEST', message, { upstream: origin.origin });
    }
    const expectation =
      this.expectation ?? this.registry.expectation(undefined, origin.origin, 'MtlsHttpClient.httpsAgent() without expectPeer');
    // Node skips checkServerIdentity on a resumed session: only sessions this agent cached (per generation) may resume.
    const { session: _callerSession, ...request } = options as RequestOptions & Pick<ConnectionOptions, 'session'>;
    const connection: RequestOptions & Pick<ConnectionOptions, 'secureContext'> = {
      ...request,
      // `[::1]` names a host in a URL, not to the resolver.
      host,
      // Whatever TLS options the request carries, the context and the checks are the client's.
      secureContext: generation.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: expectation.verifier(this.registry.label(origin.origin), origin, generation.trustAnchors),
      ...(expectation.servername === undefined ? {} : { servername: expectation.servername }),
    };
    this.#handedOut = undefined;
    const socket = super.createConnection(connection, callback) as Duplex | null | undefined;
    const resumes = this.#handedOut;
    this.#handedOut = undefined;
    if (socket == null) return undefined;
    this.#versions.set(socket, generation.version);
    this.#expireWithChain(socket as TLSSocket, resumes === undefined ? NaN : this.#sessionDeadlines.get(resumes)!, generation);
    return socket;
  }

  /**
   * Ends `socket` at its server chain's notAfter, and lets the sessions it receives resume until then. A TLS 1.2
   * session arrives before the handshake completes, TLS 1.3 tickets after it.
   */
  #expireWithChain(socket: TLSSocket, sessionDeadline: number, generation: ClientGeneration): void {
    let deadline: number | undefined;
    const early: Buffer[] = [];
    socket.on('session', (session: Buffer) => {
      if (deadline === undefined) early.push(session);
      else this.#sessionDeadlines.set(session, deadline);
    });
    socket.once('secureConnect', () => {
      const checked = connectionDeadline(socket, sessionDeadline);
      // Only a chain that expired during this handshake gets here (_getSession hands out no expired session); the
      // request Node queued on the socket may be on its way, but nothing more is.
      if (checked instanceof Error) {
        socket.destroy(checked);
        return;
      }
      deadline = checked;
      for (const session of early.splice(0)) this.#sessionDeadlines.set(session, checked);
      generation.expireAt(socket, checked);
    });
  }
}

/** The request's host as the resolver wants it: IPv6 literals without brackets. */
function bareHost(options: RequestOptions): string {
  const host = options.host ?? options.hostname ?? 'localhost';
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function cannotConnect(options: RequestOptions, error: unknown): UpstreamError {
  const where = `${String(options.host ?? options.hostname ?? 'localhost')}:${String(options.port ?? 443)}`;
  const reason = error instanceof Error ? error.message : String(error);
  return new UpstreamError(
    'ERR_MTLS_UPSTREAM_REQUEST',
    `cannot open an mTLS connection to ${where}: ${reason}; nothing was sent`,
    { upstream: where },
    { cause: error },
  );
}
