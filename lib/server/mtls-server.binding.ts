import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { CredentialStore } from '../credentials/credential-store.js';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import { secureContextOptions } from '../credentials/secure-context.js';
import { CertificateParseError, MtlsConfigError, PeerError } from '../errors/mtls.errors.js';
import { MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import { MtlsEvents } from '../observability/mtls-events.js';
import { notHttpsMessage, watchAdditionalServers } from './adapters/http-servers.js';
import { decideAdmission, PeerCertificates, type Admission, type PeerChain } from './connection-admission.js';
import {
  answerRequest,
  answerStream,
  answerTakeover,
  interceptServerEvents,
  rawSocketOf,
  readPeerChain,
} from './connection-gate.js';
import { admissionOf, recordAdmission } from './connection-identity.js';
import { ConnectionTracker, type AdmittedConnection } from './connection-tracker.js';
import { describeRejectedPeer, rejectedPeerOf, rememberPeerAddress } from './rejected-peer.js';
import { nextTrustGeneration, type TrustGeneration } from './trust-generation.js';

/**
 * TLS settings given to `https.createServer` that `setSecureContext` would silently replace on the first install:
 * they must come through the module's `credentials` and `tls` options instead.
 */
const DROPPED_HTTPS_OPTIONS = ['key', 'cert', 'ca', 'crl', 'pfx', 'ciphers', 'maxVersion', 'sigalgs', 'ecdhCurve', 'dhparam'];

const TICKET_KEYS_REFUSED =
  'httpsOptions "ticketKeys" are refused by MtlsModule: Node keeps them across every setSecureContext, so a TLS session ' +
  'ticket issued before a CRL or CA update still resumes after it, and keys shared with other processes let a peer ' +
  'revoked here resume where the new trust is not loaded yet. Remove "ticketKeys": Node then gives every TLS context ' +
  'its own keys, renewed with each credential change (tickets issued under an older trust stop resuming)';

/** Node stores the last installed options on the server object; these hold key material. */
const SECRET_SERVER_FIELDS = ['key', 'pfx', 'passphrase'];

/** The trust generation in force when a TCP connection was accepted, kept on the raw socket. */
const ACCEPTED_UNDER = Symbol('nestjs-mtls.acceptedUnder');

function refusedHttpsOptions(server: TlsServer): MtlsConfigError | undefined {
  const fields = server as unknown as Record<string, unknown>;
  if (fields.ticketKeys !== undefined) return new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', TICKET_KEYS_REFUSED);
  const dropped = DROPPED_HTTPS_OPTIONS.filter((name) => fields[name] !== undefined);
  // mtlsHttpsOptions() sets TLSv1.2; anything else was the user's choice, and the module's tls.minVersion rules.
  if (fields.minVersion !== undefined && fields.minVersion !== 'TLSv1.2') dropped.push('minVersion');
  if (dropped.length === 0) return undefined;
  return new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `httpsOptions ${dropped.map((name) => `"${name}"`).join(', ')} would be replaced by MtlsModule: pass only ` +
      'httpsOptions: mtlsHttpsOptions(), and set certificates with the module option "credentials" and TLS policy with "tls"',
  );
}

/** Node reads these two server fields for every accepted connection (lib/_tls_wrap.js, tlsConnectionListener). */
interface ClientCertificatePolicy {
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/**
 * Turns the application's HTTPS server into an mTLS server and decides trust on each connection: installs the
 * credentials and TLS policy before it listens (and again on every rotation, always the full option set), admits or
 * destroys every connection right after its handshake before any HTTP listener sees it, re-verifies open connections
 * on every trust change and closes each at its peer's notAfter, and logs rejected handshakes, rate-limited.
 * Everything done to a server is in {@link bind}, so that it applies to every server the application listens on.
 */
@Injectable()
export class MtlsServerBinding implements OnModuleInit, OnApplicationShutdown {
  readonly #logger = new Logger('MtlsServer');
  readonly #rejections: RateLimitedLogger;
  readonly #connections: ConnectionTracker;
  readonly #certificates = new PeerCertificates();
  /** The generation each leaf's chain was last verified under, so a resumed session in it needs no new check. */
  readonly #verifiedUnder = new WeakMap<PeerChain, number>();
  /** Bound servers and the function that unbinds each. */
  readonly #servers = new Map<TlsServer, () => void>();
  #generation: TrustGeneration;
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
    @Inject(MTLS_IDENTITY_CREDENTIALS) private readonly store: CredentialStore,
    private readonly events: MtlsEvents,
  ) {
    this.#rejections = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
    this.#connections = new ConnectionTracker({
      events,
      logRateLimitPerMinute: options.logRateLimitPerMinute,
      logger: this.#logger,
    });
    this.#generation = nextTrustGeneration(undefined, store.current);
    this.#connections.watchLapse(this.#generation);
  }

  /** The open admitted connections, re-checked when the trust changes and closed at their peer's notAfter. */
  get connections(): ConnectionTracker {
    return this.#connections;
  }

  /** The trust generation in force. */
  get generation(): TrustGeneration {
    return this.#generation;
  }

  /** The application's mTLS server (`getHttpServer()`'s), once bound. */
  get server(): TlsServer | undefined {
    return this.#servers.keys().next().value;
  }

  /** Every server bound so far: the application's, and those Fastify added to listen on more addresses. */
  get servers(): readonly TlsServer[] {
    return [...this.#servers.keys()];
  }

  onModuleInit(): void {
    // Behind a loopback sidecar the application serves plain HTTP: LoopbackListenerBinding (lib/proxy) owns the server.
    if (this.options.proxy?.trust.kind === 'loopback') return;
    const adapter = this.adapterHost.httpAdapter;
    const server: unknown = adapter?.getHttpServer();
    if (!(server instanceof TlsServer)) throw new MtlsConfigError('ERR_MTLS_NOT_HTTPS', notHttpsMessage(adapter));
    this.bind(server);
    // Fastify's servers for the other addresses of a name like `localhost`, bound as they start listening.
    watchAdditionalServers(
      adapter,
      (additional) => this.bind(additional),
      (message) => this.#logger.error(message),
    );
    this.#unsubscribe = this.store.subscribe((current) => this.#rotate(current));
    if (this.options.mode === 'permissive') {
      this.#logger.warn(
        'permissive mode: handshakes without a valid client certificate complete and every request on them is answered 401; use only while migrating',
      );
    }
  }

  onApplicationShutdown(): void {
    this.#unsubscribe?.();
    this.#connections.stop();
    for (const unbind of this.#servers.values()) unbind();
    this.#servers.clear();
  }

  /**
   * Makes `server` an mTLS server of this module: refuses httpsOptions the module would override, sets the client
   * certificate policy, installs the credentials, and gates its connection and request events. Idempotent.
   */
  bind(server: TlsServer): void {
    if (this.#servers.has(server)) return;
    const refusal = refusedHttpsOptions(server);
    if (refusal !== undefined) throw refusal;
    const policy = server as unknown as ClientCertificatePolicy;
    policy.requestCert = true;
    policy.rejectUnauthorized = this.options.mode === 'strict';
    this.#install(server, this.store.current);
    const restore = interceptServerEvents(server, {
      accepted: this.#accepted,
      admit: this.#admit,
      request: this.#request,
      takeover: this.#takeover,
      stream: this.#stream,
      unknownProtocol: this.#unknownProtocol,
    });
    server.on('tlsClientError', this.#onHandshakeRejected);
    this.#servers.set(server, () => {
      restore();
      server.off('tlsClientError', this.#onHandshakeRejected);
    });
  }

  #rotate(current: Credentials): void {
    const previous = this.#generation;
    const next = nextTrustGeneration(previous, current);
    // One synchronous step: a connection accepted from now on is stamped with the generation whose context it gets.
    this.#generation = next;
    for (const server of this.#servers.keys()) this.#install(server, current);
    if (next === previous) return;
    this.#connections.watchLapse(next);
    // New handshakes already use the new trust; now the open connections, in slices.
    this.#connections.recheck(next).catch((error: unknown) => {
      this.#logger.error(`re-checking open connections after a trust change failed: ${String(error)}`);
    });
  }

  #install(server: TlsServer, credentials: Credentials): void {
    server.setSecureContext(secureContextOptions(credentials, this.options.tls));
    // New connections use the context just built; the copy Node keeps on the server is only a leak waiting to happen.
    const fields = server as unknown as Record<string, unknown>;
    for (const name of SECRET_SERVER_FIELDS) fields[name] = undefined;
  }

  // Node's own 'connection' listener (tlsConnectionListener) creates the TLSSocket right after this, in the same tick,
  // with the server's current SecureContext: the generation stamped here is the one OpenSSL verifies the peer under.
  readonly #accepted = (rawSocket: object): void => {
    (rawSocket as { [ACCEPTED_UNDER]?: number })[ACCEPTED_UNDER] = this.#generation.id;
    rememberPeerAddress(rawSocket);
  };

  readonly #admit = (socket: TLSSocket): boolean => {
    // A TLS 1.2 renegotiation could present another certificate after the connection was admitted.
    socket.disableRenegotiation();
    const generation = this.#generation;
    const raw = rawSocketOf(socket) as { [ACCEPTED_UNDER]?: number } | undefined;
    const resumed = socket.isSessionReused();
    let admission: Admission;
    try {
      const chain = readPeerChain(socket, this.#certificates, generation, resumed);
      // Verified by OpenSSL under the current trust, unless the handshake began under an older one (or Node did not
      // say), or it resumed a session not known to be verified under this generation.
      const reverify =
        raw?.[ACCEPTED_UNDER] !== generation.id ||
        (resumed && chain !== undefined && this.#verifiedUnder.get(chain) !== generation.id);
      admission = decideAdmission({
        chain,
        tlsError: socket.authorized ? undefined : String(socket.authorizationError ?? 'UNABLE_TO_GET_ISSUER_CERT'),
        reverify,
        generation,
        now: Date.now(),
        authorizer: this.options.connectionAuthorizer,
      });
    } catch (error) {
      // Fail closed: whatever went wrong, this connection is not admitted, and the server keeps running.
      const peerError =
        error instanceof CertificateParseError
          ? new PeerError('ERR_MTLS_PEER_INVALID', `peer certificate unreadable: ${error.message}`)
          : new PeerError(
              'ERR_MTLS_PEER_UNAUTHENTICATED',
              `admission failed: ${error instanceof Error ? error.message : String(error)}`,
            );
      admission = { kind: 'refused', error: peerError, label: peerError.code };
    }
    if (admission.kind === 'admitted') {
      const connection: AdmittedConnection = {
        socket,
        identity: admission.identity,
        chain: admission.chain,
        deadline: admission.deadline,
        generation: generation.id,
      };
      this.#verifiedUnder.set(admission.chain, generation.id);
      recordAdmission(socket, connection);
      this.#connections.track(connection);
      return true;
    }
    if (admission.kind === 'unauthenticated' && this.options.mode === 'permissive') {
      // Kept open: every request on it is answered 401 before the application (see #request).
      recordAdmission(socket, admission.error);
      return true;
    }
    this.#reject(socket, admission.label, admission.error);
    return false;
  };

  readonly #request = (request: IncomingMessage, response: ServerResponse): boolean => {
    const admission = admissionOf(request.socket);
    if (admission === undefined || admission instanceof PeerError) {
      answerRequest(response, admission ?? notAdmitted());
      return false;
    }
    return this.#servable(admission);
  };

  readonly #takeover = (request: IncomingMessage, socket: Duplex): boolean => {
    const admission = admissionOf(request.socket);
    if (admission === undefined || admission instanceof PeerError) {
      answerTakeover(socket, admission ?? notAdmitted());
      return false;
    }
    return this.#servable(admission);
  };

  readonly #stream = (stream: ServerHttp2Stream): boolean => {
    const admission = admissionOf(stream.session?.socket);
    if (admission === undefined || admission instanceof PeerError) {
      answerStream(stream, admission ?? notAdmitted());
      return false;
    }
    return this.#servable(admission);
  };

  readonly #unknownProtocol = (socket: TLSSocket): boolean => {
    const admission = admissionOf(socket);
    if (admission === undefined || admission instanceof PeerError) {
      answerTakeover(socket, admission ?? notAdmitted());
      // No HTTP layer reads this socket: reading lets the peer's close end it.
      socket.resume();
      return false;
    }
    return this.#servable(admission);
  };

  /**
   * Per request, two comparisons: the peer certificate has not expired (the timer closes the connection at notAfter; a
   * request that beat the timer closes it here), and the connection was verified under the trust in force (a request
   * that beat the sliced re-check verifies its connection first).
   */
  #servable(connection: AdmittedConnection): boolean {
    if (Date.now() > connection.deadline) {
      this.#connections.expire(connection);
      connection.socket.destroy();
      return false;
    }
    const generation = this.#generation;
    if (connection.generation >= generation.id) return true;
    if (this.#connections.verify(connection, generation)) return true;
    connection.socket.destroy();
    return false;
  }

  #reject(socket: TLSSocket, reason: string, error: PeerError): void {
    const logLine = this.#rejections.admit();
    // Read before the teardown, and the certificate only for a line that is logged.
    const peer = rejectedPeerOf(socket, logLine !== undefined);
    socket.destroy();
    this.events.emit({ type: 'handshake.rejected', reason, remoteAddress: peer.address });
    if (logLine !== undefined) {
      const rule = error.rule === undefined ? '' : `; rule: ${error.rule}`;
      logLine(
        `TLS connection from ${describeRejectedPeer(peer)} closed after its handshake: ${error.code}: ${error.message}${rule}`,
      );
    }
  }

  readonly #onHandshakeRejected = (error: Error & { code?: string }, socket: TLSSocket): void => {
    // With rejectUnauthorized, Node destroys the socket after verification and reports a bare ECONNRESET;
    // the verification result is on the socket.
    const reason = socket.authorizationError?.toString() ?? error.code ?? error.message;
    const peer = rejectedPeerOf(socket, false);
    this.events.emit({ type: 'handshake.rejected', reason, remoteAddress: peer.address });
    this.#rejections.warn(() => `TLS handshake rejected from ${describeRejectedPeer(peer)}: ${reason}`);
  };
}

function notAdmitted(): PeerError {
  return new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'the connection was not admitted by MtlsModule');
}
