import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TestPeer } from '../../lib/testing/index.js';

/** What the server saw of one request. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  /** The SNI the client sent (false when none). */
  readonly servername: string | false;
  /** Serial number of the client certificate, upper-case hex as Node prints it. */
  readonly clientSerial: string | undefined;
}

/** A real `node:https` mTLS server on 127.0.0.1 that counts handshakes, resumptions, requests and open sockets. */
export interface UpstreamServer {
  readonly origin: string;
  readonly server: Server;
  /** Full handshakes and resumptions (`secureConnection` events). */
  handshakes: number;
  /** Connections whose TLS session was resumed. */
  resumed: number;
  /** Every request that reached the HTTP layer. */
  readonly requests: SeenRequest[];
  /** Sockets currently open. */
  readonly sockets: Set<TLSSocket>;
  close(): Promise<void>;
}

/** A request handler; the default echoes the request as JSON. */
export type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

const echo: Handler = (request, response, body) => {
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.setHeader('x-upstream', 'test');
  response.end(JSON.stringify({ method: request.method, url: request.url, body }));
};

/** Starts a server presenting `identity` and trusting `caPem` for client certificates. */
export async function startUpstream(
  identity: TestPeer,
  caPem: string,
  handler: Handler = echo,
): Promise<UpstreamServer> {
  const server = createServer(
    { key: identity.keyPem, cert: identity.chainPem, ca: caPem, requestCert: true, rejectUnauthorized: true },
    (request, response) => {
      const socket = request.socket as TLSSocket;
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        state.requests.push({
          method: request.method ?? '',
          url: request.url ?? '',
          headers: request.headers,
          body,
          servername: socket.servername ?? false,
          clientSerial: socket.getPeerCertificate().serialNumber,
        });
        handler(request, response, body);
      });
    },
  );
  const state: UpstreamServer = {
    origin: '',
    server,
    handshakes: 0,
    resumed: 0,
    requests: [],
    sockets: new Set(),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    state.handshakes++;
    if (socket.isSessionReused()) state.resumed++;
    state.sockets.add(socket);
    socket.once('close', () => state.sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { origin: `https://127.0.0.1:${port}` });
}

/** Resolves once `condition` holds, polling every 10 ms (fails the test after `timeoutMs`). */
export async function eventually(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
