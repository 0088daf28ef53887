import type { INestApplication } from '@nestjs/common';
import { connect as connectHttp2, constants as http2Constants, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { CallerCredentials } from '../../lib/testing/index.js';

/** A response read off the wire. */
export interface RawResponse {
  readonly status: number;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * Sends one HTTP/1.1 request with exactly the header lines given, in order (repeated names stay separate lines, as an
 * attacker or a proxy would write them), over plain TCP or over mTLS as `tls`. `Connection: close` is added. With
 * `http2`, the same request on its own HTTP/2 session, over mTLS (ALPN `h2` only) or cleartext (h2c) without `tls`:
 * a repeated name is sent as separate header fields.
 */
export function rawRequest(
  app: INestApplication,
  path: string,
  headers: readonly (readonly [string, string])[],
  tls?: CallerCredentials,
  http2 = false,
): Promise<RawResponse> {
  return rawRequestTo(app.getHttpServer().address() as AddressInfo, path, headers, tls, http2);
}

/** {@link rawRequest} in the protocol clients speak to `cell`: HTTP/2 on an HTTP/2 cell (h2c without `tls`). */
export function cellRequest(cell: {
  readonly http2: boolean;
}): (
  app: INestApplication,
  path: string,
  headers: readonly (readonly [string, string])[],
  tls?: CallerCredentials,
) => Promise<RawResponse> {
  return (app, path, headers, tls) => rawRequest(app, path, headers, tls, cell.http2);
}

/** {@link rawRequest} to one listening address (an application may listen on several). */
export function rawRequestTo(
  { address, port }: Pick<AddressInfo, 'address' | 'port'>,
  path: string,
  headers: readonly (readonly [string, string])[],
  tls?: CallerCredentials,
  http2 = false,
): Promise<RawResponse> {
  if (http2) return rawRequest2(address, port, path, headers, tls);
  const host = address.includes(':') ? `[${address}]` : address;
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}:${port}`,
    ...headers.map(([name, value]) => `${name}: ${value}`),
    'Connection: close',
  ];
  return new Promise((resolve, reject) => {
    const socket: Socket =
      tls === undefined
        ? netConnect({ host: address, port })
        : tlsConnect({
            host: address,
            port,
            key: tls.keyPem,
            cert: tls.chainPem,
            ca: tls.caPem,
            checkServerIdentity: () => undefined,
          });
    const chunks: Buffer[] = [];
    socket.on(tls === undefined ? 'connect' : 'secureConnect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (match === null) return reject(new Error(`no HTTP response: ${JSON.stringify(text.slice(0, 200))}`));
      const headerEnd = text.indexOf('\r\n\r\n');
      let body = headerEnd < 0 ? '' : text.slice(headerEnd + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(text.slice(0, headerEnd))) body = dechunk(body);
      resolve({ status: Number(match[1]), body, json: () => JSON.parse(body) });
    });
  });
}

function rawRequest2(
  address: string,
  port: number,
  path: string,
  headers: readonly (readonly [string, string])[],
  tls: CallerCredentials | undefined,
): Promise<RawResponse> {
  // HTTP/2 names are lower-case; a name given twice becomes an array, which Node sends as one field per value.
  const fields: Record<string, string[]> = {};
  for (const [name, value] of headers) (fields[name.toLowerCase()] ??= []).push(value);
  const host = address.includes(':') ? `[${address}]` : address;
  return new Promise((resolve, reject) => {
    const session =
      tls === undefined
        ? connectHttp2(`http://${host}:${port}`)
        : connectHttp2(`https://${host}:${port}`, {
            key: tls.keyPem,
            cert: tls.chainPem,
            ca: tls.caPem,
            checkServerIdentity: () => undefined,
            ALPNProtocols: ['h2'],
          });
    session.on('error', reject);
    const stream = session.request({
      ...(fields as OutgoingHttpHeaders),
      [http2Constants.HTTP2_HEADER_METHOD]: 'GET',
      [http2Constants.HTTP2_HEADER_PATH]: path,
    });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (received) => (status = Number(received[http2Constants.HTTP2_HEADER_STATUS])));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', (error: Error) => {
      session.destroy();
      reject(error);
    });
    stream.on('end', () => {
      session.close();
      const body = Buffer.concat(chunks).toString('utf8');
      if (status === 0) return reject(new Error('no HTTP/2 response'));
      resolve({ status, body, json: () => JSON.parse(body) });
    });
    stream.end();
  });
}

function dechunk(body: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', i);
    const size = parseInt(body.slice(i, lineEnd), 16);
    if (!(size > 0)) return out;
    out += body.slice(lineEnd + 2, lineEnd + 2 + size);
    i = lineEnd + 2 + size + 2;
  }
}
