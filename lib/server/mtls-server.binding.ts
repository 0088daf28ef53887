import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { CredentialStore } from '../credentials/credential-store.js';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import { secureContextOptions } from '../credentials/secure-context.js';
import { MtlsConfigError, PeerError } from '../errors/mtls.errors.js';
import { MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import { MtlsEvents } from '../observability/mtls-events.js';
import { ConnectionIdentities } from './connection-identity.js';
import { ConnectionTracker } from './connection-tracker.js';
import { toHttpException } from './mtls-http-errors.js';

const NOT_HTTPS =
  'MtlsModule needs the application to be served over HTTPS. In main.ts, create the app with:\n' +
  "  import { mtlsHttpsOptions } from 'nestjs-mtls';\n" +
  '  const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() });';

/**
 * TLS settings given to `https.createServer` that `setSecureContext` would silently replace on the first install:
 * they must come through the module's `credentials` and `tls` options instead.
 */
const DROPPED_HTTPS_OPTIONS = ['key', 'cert', 'ca', 'crl', 'pfx', 'ciphers', 'maxVersion', 'sigalgs', 'ecdhCurve', 'dhparam'];

/** Node stores the last installed options on the server object; these hold key material. */
const SECRET_SERVER_FIELDS = ['key', 'pfx', 'passphrase'];

function droppedHttpsOptions(server: TlsServer): string[] {
  const fields = server as unknown as Record<string, unknown>;
  const dropped = DROPPED_HTTPS_OPTIONS.filter((name) => fields[name] !== undefined);
  // mtlsHttpsOptions() sets TLSv1.2; anything else was the user's choice, and the module's tls.minVersion rules.
  if (fields.minVersion !== undefined && fields.minVersion !== 'TLSv1.2') dropped.push('minVersion');
  return dropped;
}

/** Node reads these two server fields for every accepted connection (lib/_tls_wrap.js, tlsConnectionListener). */
interface ClientCertificatePolicy {
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/**
 * Turns the application's HTTPS server into an mTLS server: installs the credentials and TLS policy before it
 * listens, re-installs them on every rotation (always the full option set: `setSecureContext` resets what it is
 * not given), and logs rejected handshakes with their real reason, rate-limited.
 */
@Injectable()
export class MtlsServerBinding implements OnModuleInit, OnApplicationShutdown {
  readonly #logger = new Logger('MtlsServer');
  readonly #rejections: RateLimitedLogger;
  readonly #connections: ConnectionTracker;
  #server: TlsServer | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
    @Inject(MTLS_IDENTITY_CREDENTIALS) private readonly store: CredentialStore,
    private readonly events: MtlsEvents,
    private readonly identities: ConnectionIdentities,
  ) {
    this.#rejections = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
    this.#connections = new ConnectionTracker({ events, logRateLimitPerMinute: options.logRateLimitPerMinute, logger: this.#logger });
  }

  /** The open authenticated connections, re-checked when the trust changes. */
  get connections(): ConnectionTracker {
    return this.#connections;
  }

  /** The mTLS server, once bound. */
  get server(): TlsServer | undefined {
    return this.#server;
  }

  onModuleInit(): void {
    const server: unknown = this.adapterHost.httpAdapter?.getHttpServer();
    if (!(server instanceof TlsServer)) throw new MtlsConfigError('ERR_MTLS_NOT_HTTPS', NOT_HTTPS);
    const dropped = droppedHttpsOptions(server);
    if (dropped.length > 0) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `httpsOptions ${dropped.map((name) => `"${name}"`).join(', ')} would be replaced by MtlsModule: pass only ` +
          'httpsOptions: mtlsHttpsOptions(), and set certificates with the module option "credentials" and TLS policy with "tls"',
      );
    }
    this.#server = server;
    const policy = server as unknown as ClientCertificatePolicy;
    policy.requestCert = true;
    policy.rejectUnauthorized = this.options.mode === 'strict';
    this.#install(this.store.current);
    this.#connections.update(this.store.current);
    this.#unsubscribe = this.store.subscribe((current) => {
      this.#install(current);
      // New handshakes already use the new trust; now cut off open connections it no longer accepts.
      this.#connections.update(current);
    });
    server.on('secureConnection', onSecureConnection);
    server.on('secureConnection', this.#connections.track);
    this.#connections.startPeriodicRecheck(this.options.reload.pollIntervalMs, () => this.store.current);
    server.on('tlsClientError', this.#onHandshakeRejected);
    if (this.options.mode === 'permissive') {
      gateUnauthenticated(server, this.identities);
      this.#logger.warn(
        'permissive mode: handshakes without a valid client certificate complete and the guard answers 401; use only while migrating',
      );
    }
  }

  onApplicationShutdown(): void {
    this.#unsubscribe?.();
    this.#connections.stopPeriodicRecheck();
    this.#server?.off('secureConnection', onSecureConnection);
    this.#server?.off('secureConnection', this.#connections.track);
    this.#server?.off('tlsClientError', this.#onHandshakeRejected);
  }

  #install(credentials: Credentials): void {
    const server = this.#server;
    if (server === undefined) return;
    server.setSecureContext(secureContextOptions(credentials, this.options.tls));
    // New connections use the context just built; the copy Node keeps on the server is only a leak waiting to happen.
    const fields = server as unknown as Record<string, unknown>;
    for (const name of SECRET_SERVER_FIELDS) fields[name] = undefined;
  }

  readonly #onHandshakeRejected = (error: Error & { code?: string }, socket: TLSSocket): void => {
    // With rejectUnauthorized, Node destroys the socket after verification and reports a bare ECONNRESET;
    // the verification result is on the socket.
    const reason = socket.authorizationError?.toString() ?? error.code ?? error.message;
    const remoteAddress = socket.remoteAddress;
    this.events.emit({ type: 'handshake.rejected', reason, remoteAddress });
    this.#rejections.warn(() => `TLS handshake rejected from ${remoteAddress ?? 'unknown address'}: ${reason}`);
  };
}

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * In permissive mode, answers 401 to requests from peers without a verified certificate before the application sees
 * them: middleware, static files and unknown routes run before any guard, and must not be reachable either.
 */
function gateUnauthenticated(server: TlsServer, identities: ConnectionIdentities): void {
  const application = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const peer = identities.identify(request.socket);
    if (peer instanceof PeerError && peer.code === 'ERR_MTLS_PEER_UNAUTHENTICATED') {
      const exception = toHttpException(peer);
      response.writeHead(exception.getStatus(), { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(exception.getResponse()));
      return;
    }
    for (const listener of application) listener.call(server, request, response);
  });
}

function onSecureConnection(socket: TLSSocket): void {
  // A TLS 1.2 renegotiation could present another certificate after the identity was derived for the connection.
  socket.disableRenegotiation();
}
