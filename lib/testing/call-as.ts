import type { INestApplication } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as connectHttp2, constants as http2Constants, type IncomingHttpHeaders as Http2Headers } from 'node:http2';
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
  /** Speak HTTP/2 (ALPN `h2` only): one new session per call, like the HTTP/1.1 calls' one connection each. */
  http2?: boolean;
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
  const send1 = (
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
  const send2 = (
    method: string,
    path: string,
    { headers = {}, body, token = options.token }: PeerRequestOptions = {},
  ): Promise<PeerResponse> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const session = connectHttp2(origin.origin, {
        ca,
        ...(peer ? { cert: peer.chainPem, key: peer.keyPem } : {}),
        ...(options.minVersion ? { minVersion: options.minVersion } : {}),
        ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
        ALPNProtocols: ['h2'],
      });
      let sessionError: Error | undefined;
      const fail = (error: Error) => {
        session.destroy();
        reject(error);
      };
      // A server that closes the session (revocation, a refused peer) before answering fails the call, with the
      // session's error when it has one (it may surface just after its streams end).
      const closedEarly = () =>
        setImmediate(() =>
          fail(
            sessionError ??
              Object.assign(new Error('the server closed the HTTP/2 session before answering'), {
                code: 'ERR_HTTP2_NO_RESPONSE',
              }),
          ),
        );
      session.on('error', (error: Error) => {
        sessionError = error;
        fail(error);
      });
      session.on('close', closedEarly);
      const stream = session.request({
        ...headers,
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        [http2Constants.HTTP2_HEADER_METHOD]: method,
        [http2Constants.HTTP2_HEADER_PATH]: path,
      });
      let responseHeaders: Http2Headers = {};
      const chunks: Buffer[] = [];
      stream.on('response', (received) => (responseHeaders = received));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', fail);
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const { [http2Constants.HTTP2_HEADER_STATUS]: status, ...rest } = responseHeaders;
        if (status === undefined) {
          closedEarly();
          return;
        }
        resolve({ status: Number(status ?? 0), headers: rest as IncomingHttpHeaders, body: text, json: () => JSON.parse(text) });
        session.close();
      });
      stream.end(payload);
    });
  const send = options.http2 === true ? send2 : send1;
  return {
    get: (path, opts) => send('GET', path, opts),
    post: (path, body, opts) => send('POST', path, { ...opts, body }),
    request: send,
  };
}
