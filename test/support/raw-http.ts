import type { INestApplication } from '@nestjs/common';
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
 * attacker or a proxy would write them), over plain TCP or over mTLS as `tls`. `Connection: close` is added.
 */
export function rawRequest(
  app: INestApplication,
  path: string,
  headers: readonly (readonly [string, string])[],
  tls?: CallerCredentials,
): Promise<RawResponse> {
  const { port, address } = app.getHttpServer().address() as AddressInfo;
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
