import type { INestApplication } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPeer } from './test-pki.js';

/** A response received by {@link callAs}. */
export interface PeerResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/** What {@link callAs} needs of a peer: its chain, its key, and the bundle that verifies the server. */
export type CallerCredentials = Pick<TestPeer, 'chainPem' | 'keyPem' | 'caPem'>;

/** Options of one call. */
export interface PeerRequestOptions {
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** A bearer token, sent as `Authorization: Bearer <token>`. */
  token?: string;
}

/** Makes requests to one server as one peer; every call opens a new TLS connection, so each shows its handshake's fate. */
export interface PeerCaller {
  get(path: string, options?: PeerRequestOptions): Promise<PeerResponse>;
  post(path: string, body?: unknown, options?: PeerRequestOptions): Promise<PeerResponse>;
  request(method: string, path: string, options?: PeerRequestOptions): Promise<PeerResponse>;
}

/** TLS settings of {@link callAs}. */
export interface CallAsOptions {
  /** Trust bundle used to verify the server. @default the peer's own `caPem` */
  ca?: string;
  /** TLS protocol bounds, e.g. to test a TLS 1.2 client. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** A bearer token sent with every call (a call's own `token` wins). */
  token?: string;
}

function baseUrl(target: INestApplication | string): URL {
  if (typeof target === 'string') return new URL(target);
  const address = target.getHttpServer().address() as AddressInfo | null;
  if (address === null) throw new Error('callAs: the application is not listening; call app.listen(0, "127.0.0.1") first');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return new URL(`https://${host}:${address.port}`);
}

/**
 * Calls an HTTPS server (a listening Nest app, or a base URL) as `peer` — or with no client certificate when `peer`
 * is undefined. Rejects with Node's error when the TLS handshake or the connection fails.
 * @example
 * ```ts
 * const res = await callAs(app, orders).get('/stock/42');
 * expect(res.status).toBe(200);
 * ```
 */
export function callAs(
  target: INestApplication | string,
  peer: CallerCredentials | undefined,
  options: CallAsOptions = {},
): PeerCaller {
  const origin = baseUrl(target);
  const ca = options.ca ?? peer?.caPem;
  if (ca === undefined) throw new Error('callAs: pass options.ca to verify the server when calling without a peer');
  const send = (
    method: string,
    path: string,
    { headers = {}, body, token = options.token }: PeerRequestOptions = {},
  ): Promise<PeerResponse> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        {
          protocol: 'https:',
          hostname: origin.hostname.replace(/^\[|\]$/g, ''),
          port: origin.port,
          path,
          method,
          agent: false,
          ca,
          ...(peer ? { cert: peer.chainPem, key: peer.keyPem } : {}),
          ...(options.minVersion ? { minVersion: options.minVersion } : {}),
          ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
          headers: {
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
            ...headers,
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return {
    get: (path, opts) => send('GET', path, opts),
    post: (path, body, opts) => send('POST', path, { ...opts, body }),
    request: send,
  };
}
