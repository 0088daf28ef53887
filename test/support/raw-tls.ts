import { once } from 'node:events';
import { createServer, connect as connectTcp, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

/** What a raw request over TLS got back: the status line's code, or how the connection ended without one. */
export interface RawAnswer {
  /** HTTP status, or undefined when the connection ended (or failed) before a status line arrived. */
  readonly status: number | undefined;
  /** Everything received, as latin1 text. */
  readonly text: string;
  /** The TLS error, when the connection failed instead of ending. */
  readonly error: string | undefined;
}

/** TLS credentials and limits of a raw client. */
export type RawClientOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'minVersion' | 'maxVersion' | 'session'>;

/**
 * Opens a TLS connection, writes `request` (raw HTTP/1.1 text) once the handshake completes and collects the answer
 * until the server closes the connection or `timeoutMs` passes.
 */
export function rawRequest(port: number, request: string, options: RawClientOptions, timeoutMs = 3_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ...options, checkServerIdentity: () => undefined });
    let text = '';
    let error: string | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: match === null ? undefined : Number(match[1]), text, error });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('secureConnect', () => socket.write(request));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on('close', finish);
  });
}

/** Connects and resolves with the session the server hands out (a TLS 1.3 ticket arrives after the handshake). */
export async function sessionFrom(port: number, options: RawClientOptions): Promise<Buffer> {
  const socket: TLSSocket = connect({ host: '127.0.0.1', port, ...options, checkServerIdentity: () => undefined });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  let session: Buffer | undefined;
  socket.on('session', (ticket: Buffer) => (session ??= ticket));
  // A request, so the server sends its tickets and then closes the connection cleanly.
  socket.once('secureConnect', () => socket.write('GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
  socket.resume();
  await closed;
  if (session === undefined) throw new Error('the server handed out no TLS session');
  return session;
}

/**
 * A TCP relay in front of a TLS server that can hold a client's second flight: after the server's first answer on a
 * connection, everything the client sends next is kept back until `release()`. The client's ClientHello reaches the
 * server at once; its Certificate/Finished flight (and anything after it) waits.
 */
export interface Relay {
  readonly port: number;
  /** Resolves when a connection has data held back (the client's second flight reached the relay). */
  readonly holding: Promise<void>;
  /** Forwards what was held and stops holding. */
  release(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  let holding = true;
  const held: Array<{ upstream: Socket; chunk: Buffer }> = [];
  const sockets = new Set<Socket>();
  let signalHolding!: () => void;
  const holdingPromise = new Promise<void>((resolve) => (signalHolding = resolve));
  const server: Server = createServer((client) => {
    const upstream = connectTcp({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    let serverAnswered = false;
    client.on('data', (chunk: Buffer) => {
      if (holding && serverAnswered) {
        held.push({ upstream, chunk });
        signalHolding();
      } else {
        upstream.write(chunk);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      serverAnswered = true;
      client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    holding: holdingPromise,
    release() {
      holding = false;
      for (const { upstream, chunk } of held.splice(0)) upstream.write(chunk);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
