import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { CertificateParseError, type PeerError } from '../errors/mtls.errors.js';
import type { CertificateInfo } from '../x509/certificate.js';
import { issuedByRoot, MAX_PEER_CHAIN, type PeerCertificates, type PeerChain } from './connection-admission.js';
import { toHttpException } from './mtls-http-errors.js';
import type { TrustGeneration } from './trust-generation.js';

/*
 * The socket plumbing of connection admission: where a server's events are intercepted, how the peer's chain is read
 * from a socket, how a refused request is answered. The decisions are in connection-admission.ts.
 */

/** What the gate asks of the binding, per server event. */
export interface ServerGateHooks {
  /** A TCP connection was accepted (its TLS context is bound now). */
  accepted(rawSocket: object): void;
  /** Decides a connection right after its handshake; false when it was destroyed and must reach no listener. */
  admit(socket: TLSSocket): boolean;
  /** Whether an HTTP request may reach the application; when false it was answered or its connection destroyed. */
  request(request: IncomingMessage, response: ServerResponse): boolean;
  /** The same for `upgrade` and `connect`, which hand the bare socket to the application. */
  takeover(request: IncomingMessage, socket: Duplex): boolean;
  /**
   * The same for an HTTP/2 stream, before every `stream` listener of its session: Node's (which makes the server's
   * `stream`, then `request`, `connect` or `checkContinue`) and the application's (gRPC-style handlers).
   */
  stream(stream: ServerHttp2Stream): boolean;
  /**
   * Whether an HTTP/2-only server's `unknownProtocol` listeners may have a TLS connection that did not negotiate h2;
   * when false it was answered and is closing, or was destroyed.
   */
  unknownProtocol(socket: TLSSocket): boolean;
}

/**
 * Runs the hooks before every listener of the server's connection and request events — present and future ones, in
 * whatever order they were added: Node's HTTP connection listener, the application's request handler (routes,
 * `app.use`, the adapter's routes, static files), a WebSocket library's `upgrade` listener, a proxy's `connect`, an
 * HTTP/2-only server's `unknownProtocol`, and on HTTP/2 the `stream` event of each session (the one event through which
 * a session hands anything to a listener: Node's compatibility layer makes each `request` from it).
 * Returns the function that removes the interception (sessions already open stay gated).
 */
export function interceptServerEvents(server: TlsServer, hooks: ServerGateHooks): () => void {
  const original = server.emit;
  // A plain function: `arguments` keeps each event's exact argument list for the listeners.
  const emit = function (this: TlsServer, event: string | symbol, first?: unknown, second?: unknown): boolean {
    switch (event) {
      case 'connection':
        hooks.accepted(first as object);
        break;
      case 'secureConnection':
        if (!hooks.admit(first as TLSSocket)) return false;
        break;
      case 'request':
      case 'checkContinue':
      case 'checkExpectation':
        if (!hooks.request(first as IncomingMessage, second as ServerResponse)) return true;
        break;
      case 'upgrade':
      case 'connect':
        if (!hooks.takeover(first as IncomingMessage, second as Duplex)) return true;
        break;
      case 'session':
        gateSessionStreams(first as ServerHttp2Session, hooks);
        break;
      case 'unknownProtocol':
        if (!hooks.unknownProtocol(first as TLSSocket)) return true;
        break;
      default:
        break;
    }
    // eslint-disable-next-line prefer-rest-params -- forward the event's own arguments unchanged
    return Reflect.apply(original, this, arguments) as boolean;
  };
  server.emit = emit as typeof server.emit;
  return () => {
    if (server.emit === emit) server.emit = original;
  };
}

/**
 * Runs `hooks.stream` before every `stream` listener of an HTTP/2 session. The server emits `session` right after
 * creating it, before the session reads a frame, so no stream of it is missed.
 */
function gateSessionStreams(session: ServerHttp2Session, hooks: ServerGateHooks): void {
  const original = session.emit;
  const emit = function (this: ServerHttp2Session, event: string | symbol, first?: unknown): boolean {
    if (event === 'stream' && !hooks.stream(first as ServerHttp2Stream)) return true;
    // eslint-disable-next-line prefer-rest-params -- forward the event's own arguments unchanged
    return Reflect.apply(original, this, arguments) as boolean;
  };
  session.emit = emit as typeof session.emit;
}

/** Where a TLS socket's TCP connection is: Node keeps it as `_parent` (lib/_tls_wrap.js); undefined elsewhere. */
export function rawSocketOf(socket: TLSSocket): object | undefined {
  const parent = (socket as unknown as { _parent?: unknown })._parent;
  return typeof parent === 'object' && parent !== null ? parent : undefined;
}

/**
 * The chain the peer presented on this socket, read the cheapest correct way (bench/RESULTS.md has the figures).
 * After a full handshake: the leaf's DER from `getPeerCertificate(false)` (~2.5× cheaper there than
 * `getPeerX509Certificate()`, which also links the chain), and the certificates sent after it only when the leaf is not
 * signed by a root of the bundle — through the first `getPeerX509Certificate()` of the socket, the only call that
 * carries them on Node 20, and never more than {@link MAX_PEER_CHAIN} − 1 of them. A resumed session carries the leaf
 * alone, which `getPeerX509Certificate()` reads ~5× cheaper than `getPeerCertificate(false)`: it gets the chain that
 * leaf presented last. Undefined when the peer presented no certificate; throws CertificateParseError for an
 * unreadable leaf.
 */
export function readPeerChain(
  socket: TLSSocket,
  certificates: PeerCertificates,
  generation: TrustGeneration,
  resumed: boolean,
): PeerChain | undefined {
  if (resumed) {
    const raw = socket.getPeerX509Certificate()?.raw;
    return raw === undefined ? undefined : certificates.lastChain(certificates.parse(raw));
  }
  const raw = socket.getPeerCertificate(false)?.raw;
  if (raw === undefined) return undefined;
  const leaf = certificates.parse(raw);
  if (issuedByRoot(leaf, generation.roots)) return certificates.chain(leaf, []);
  return certificates.chain(leaf, presentedAfter(socket.getPeerX509Certificate(), certificates));
}

function presentedAfter(leaf: X509Certificate | undefined, certificates: PeerCertificates): CertificateInfo[] {
  const presented: CertificateInfo[] = [];
  const seen = new Set<CertificateInfo>();
  let current = leaf?.issuerCertificate;
  // Bounded however the peer links its certificates (a self-signed one links to itself).
  for (let steps = 1; current !== undefined && steps < MAX_PEER_CHAIN; steps++, current = current.issuerCertificate) {
    let info: CertificateInfo;
    try {
      info = certificates.parse(current.raw);
    } catch (error) {
      if (!(error instanceof CertificateParseError)) throw error;
      continue;
    }
    if (seen.has(info)) break;
    seen.add(info);
    presented.push(info);
  }
  return presented;
}

/** The JSON body and status of the HTTP answer for a peer error (the one mapping in mtls-http-errors.ts). */
function answerOf(error: PeerError): { status: number; body: string } {
  const exception = toHttpException(error);
  return { status: exception.getStatus(), body: JSON.stringify(exception.getResponse()) };
}

/** Answers a request refused before the application with the package's error body; the connection stays usable. */
export function answerRequest(response: ServerResponse, error: PeerError): void {
  const { status, body } = answerOf(error);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/** Answers an HTTP/2 stream refused before the application; the session and its other streams are untouched. */
export function answerStream(stream: ServerHttp2Stream, error: PeerError): void {
  if (stream.destroyed || stream.headersSent) return;
  const { status, body } = answerOf(error);
  stream.respond({
    ':status': status,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  stream.end(body);
}

/** Answers an upgrade or CONNECT refused before the application on the bare socket, then closes it. */
export function answerTakeover(socket: Duplex, error: PeerError): void {
  const { status, body } = answerOf(error);
  const reason = status === 401 ? 'Unauthorized' : 'Forbidden';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
