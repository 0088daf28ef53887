import type { IncomingHttpHeaders } from 'node:http';

/**
 * The identity an upstream server must prove: a named peer (`'inventory'`), a SPIFFE ID or pattern
 * (`'spiffe://shop.test/ns/shop/*'`), or `{ hostname }` for legacy servers whose certificates carry no SPIFFE ID.
 */
export type ExpectedPeer = string | { readonly hostname: string };

/** An HTTP method. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

/** One value of a query parameter; an array repeats the parameter. */
export type QueryValue = string | number | boolean;

/** Options of one outbound call. */
export interface MtlsRequestOptions {
  /**
   * The identity the server must present. @default the named upstream's `expectPeer` when the URL's origin is one;
   * required for any other origin (`{ hostname }` asks for a host-name check): without it the call is rejected with
   * `ERR_MTLS_CONFIG_INVALID` and nothing is sent
   */
  expectPeer?: ExpectedPeer;
  /** Request headers. */
  headers?: Record<string, string | readonly string[] | undefined>;
  /** Query parameters, appended to the URL's own. `undefined` values are skipped. */
  query?: Record<string, QueryValue | readonly QueryValue[] | undefined>;
  /**
   * Request body: a string, bytes (`Uint8Array`, any `ArrayBufferView`, `ArrayBuffer`) or a `node:stream` Readable is
   * sent as it is; anything else is sent as JSON (with `content-type: application/json` unless a content type is given).
   */
  body?: unknown;
  /** Deadline of the whole call (connection, headers and body), in ms. @default the module's `client.timeoutMs` */
  timeoutMs?: number;
  /**
   * Largest response body accepted, in bytes: a longer one fails the call with `ERR_MTLS_UPSTREAM_REQUEST` and
   * closes its connection. @default the module's `client.maxResponseBytes` (10 MiB)
   */
  maxResponseBytes?: number;
  /** Aborts the call; it then fails with `ERR_MTLS_UPSTREAM_ABORTED`. */
  signal?: AbortSignal;
  /**
   * A bearer token sent as `Authorization: Bearer …` on this request only, over the connection whose server identity
   * was verified; a function is called per request. Never sent on a redirect (the client follows none).
   * @default the named upstream's `token`
   */
  token?: string | (() => string | Promise<string>);
}

/** Options of the verbs that take the body as an argument. */
export type MtlsBodyRequestOptions = Omit<MtlsRequestOptions, 'body'>;

/** Options of a call through a named upstream, whose expected identity is fixed by configuration. */
export type MtlsUpstreamRequestOptions = Omit<MtlsRequestOptions, 'expectPeer'>;

/** Options of a call with a body through a named upstream. */
export type MtlsUpstreamBodyRequestOptions = Omit<MtlsRequestOptions, 'expectPeer' | 'body'>;

/** A response, whatever its status: a 4xx or 5xx is a response, not an error. */
export interface MtlsResponse<T = unknown> {
  readonly status: number;
  /** `status` is 2xx. */
  readonly ok: boolean;
  /** Header names are lower case; repeated headers are arrays. */
  readonly headers: IncomingHttpHeaders;
  /** The body parsed as JSON when the content type is JSON (undefined when empty), else the text; undefined for HEAD. */
  readonly body: T;
  /** The body as text (UTF-8). */
  readonly text: string;
}

/** Options of `MtlsHttpClient.dispatcher()` and `MtlsHttpClient.httpsAgent()`. */
export interface MtlsConnectionOptions {
  /**
   * The identity every server reached through it must present. @default per origin, the named upstream's; a request
   * to any other origin then fails with `ERR_MTLS_CONFIG_INVALID` before a connection is opened
   */
  expectPeer?: ExpectedPeer;
}
