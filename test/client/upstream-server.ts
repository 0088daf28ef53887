import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { expect } from 'vitest';
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

/**
 * A real `node:https` mTLS server on 127.0.0.1 that counts handshakes, resumptions, requests, open sockets, and every
 * byte of application data it decrypts.
 */
export interface UpstreamServer {
  readonly origin: string;
  readonly server: Server;
  /** Full handshakes and resumptions (`secureConnection` events). */
  handshakes: number;
  /** Connections whose TLS session was resumed. */
  resumed: number;
  /** Every request that reached the HTTP layer, once its body ended. */
  readonly requests: SeenRequest[];
  /** Requests whose head was parsed (`request` events), counted before their body arrives. */
  requestHeads: number;
  /** Application-data bytes received on all TLS sockets: what a client sent after its handshake, parsed or not. */
  bytesReceived: number;
  /** TLS sockets currently open (handshake done). */
  readonly sockets: Set<TLSSocket>;
  /**
   * Connections currently open (`address:port` of the client), including those whose handshake failed or has not
   * finished. One ends when its TCP socket or its TLS socket closes: once a TLS socket has taken over, Node may
   * leave the raw socket object open after the TLS one is gone.
   */
  readonly connections: Set<string>;
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
export async function startUpstream(identity: TestPeer, caPem: string, handler: Handler = echo): Promise<UpstreamServer> {
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
    requestHeads: 0,
    bytesReceived: 0,
    sockets: new Set(),
    connections: new Set(),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('connection', (socket: Socket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    state.connections.add(peer);
    socket.once('close', () => state.connections.delete(peer));
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    state.handshakes++;
    if (socket.isSessionReused()) state.resumed++;
    state.sockets.add(socket);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.once('close', () => {
      state.sockets.delete(socket);
      state.connections.delete(peer);
    });
    // Registered before any record is read, so no byte escapes it (Node's HTTP parser then reads from these events).
    socket.on('data', (chunk: Buffer) => {
      state.bytesReceived += chunk.length;
    });
  });
  server.on('request', () => {
    state.requestHeads++;
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

/** What the server had received at one moment, to compare with later. */
export interface ReceivedMark {
  readonly bytesReceived: number;
  readonly requestHeads: number;
}

/** The server's counters now. */
export function mark(server: UpstreamServer): ReceivedMark {
  return { bytesReceived: server.bytesReceived, requestHeads: server.requestHeads };
}

/**
 * Asserts that a call that just failed sent no request byte: waits until its connection has closed on the server's
 * side (at most `keepOpen` connections, those of earlier calls, remain), then checks that the server decrypted no byte
 * and parsed no request head since `since`. Waiting for the close is what makes a zero meaningful: bytes a client
 * wrote before closing its socket are read by the server before it sees the close.
 */
export async function expectNothingReceived(
  server: UpstreamServer,
  since: ReceivedMark = { bytesReceived: 0, requestHeads: 0 },
  keepOpen = 0,
): Promise<void> {
  await eventually(() => server.connections.size <= keepOpen);
  // The close and a last read can land in the same turn: let pending reads be counted.
  await new Promise((resolve) => setImmediate(resolve));
  expect({
    bytesReceived: server.bytesReceived - since.bytesReceived,
    requestHeads: server.requestHeads - since.requestHeads,
  }).toEqual({
    bytesReceived: 0,
    requestHeads: 0,
  });
}
