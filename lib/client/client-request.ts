import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { type MtlsError, UpstreamError } from '../errors/mtls.errors.js';
import type { MtlsRequestOptions, MtlsResponse, QueryValue } from './client.interfaces.js';
import type { UpstreamPool } from './client-generation.js';
import { invalidArgument } from './request-arguments.js';
import { describeValue } from '../format/describe-value.js';
import { toUpstreamError } from './upstream-errors.js';

const JSON_CONTENT_TYPE = /^application\/(?:[\w!#$&^.-]+\+)?json\s*(?:;|$)/i;
const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});

/** A client's defaults for the options a call may leave out. */
export interface RequestDefaults {
  /** Deadline of a whole call, in ms. */
  readonly timeoutMs: number;
  /** Largest response body accepted, in bytes. */
  readonly maxResponseBytes: number;
}

/**
 * Sends one request on `route` and collects the whole response. `path` starts with `/` and may carry a query;
 * `options` were checked by `optionsProblem`. Rejects with {@link UpstreamError}, or with MtlsConfigError for a
 * body that cannot be sent or a request undici refuses to build (nothing is sent then).
 */
export function sendRequest<T>(
  route: UpstreamPool,
  method: string,
  path: string,
  options: MtlsRequestOptions | undefined,
  body: unknown,
  defaults: RequestDefaults,
): Promise<MtlsResponse<T>> {
  let headers = options?.headers;
  let payload: string | Uint8Array | Readable | undefined;
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Uint8Array || body instanceof Readable) {
      payload = body;
    } else if (ArrayBuffer.isView(body)) {
      payload = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    } else if (body instanceof ArrayBuffer) {
      payload = new Uint8Array(body);
    } else if (body instanceof ReadableStream || body instanceof Blob) {
      // JSON.stringify would send "{}": the caller meant the bytes.
      const reason = `the body is ${describeValue(body)}; pass a string, bytes or a node:stream Readable (Readable.fromWeb)`;
      return Promise.reject(invalidArgument(describeCall(method, path, route), reason));
    } else {
      try {
        payload = JSON.stringify(body);
      } catch (error) {
        const reason = `the body cannot be encoded as JSON (${String(error)})`;
        return Promise.reject(invalidArgument(describeCall(method, path, route), reason, error));
      }
      if (payload === undefined) {
        const reason = `the body cannot be encoded as JSON (it is ${describeValue(body)})`;
        return Promise.reject(invalidArgument(describeCall(method, path, route), reason));
      }
      if (!hasContentType(headers)) headers = { ...headers, 'content-type': 'application/json' };
    }
  }
  if (options?.query !== undefined) path = withQuery(path, options.query);
  const signal = options?.signal;
  if (signal?.aborted) return Promise.reject(aborted(route, method, path, signal));

  const timeoutMs = options?.timeoutMs ?? defaults.timeoutMs;
  const collector = new ResponseCollector<T>(
    route,
    method,
    path,
    timeoutMs,
    options?.maxResponseBytes ?? defaults.maxResponseBytes,
    signal,
  );
  route.pool.dispatch(
    {
      method: method as Dispatcher.HttpMethod,
      path,
      headers: headers as Dispatcher.DispatchOptions['headers'],
      body: payload ?? null,
      // undici starts these when the request is written, after our deadline started: they only keep the pool's
      // defaults from cutting a call that was given a longer timeoutMs.
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    },
    collector,
  );
  return collector.promise;
}

/**
 * A dispatch handler that buffers the response, up to `maxResponseBytes`, and settles one promise. The deadline
 * covers the whole call, including the wait for a free connection; settling first and aborting after means a late
 * undici callback is a no-op.
 */
class ResponseCollector<T> implements Dispatcher.DispatchHandler {
  readonly promise: Promise<MtlsResponse<T>>;
  #resolve!: (response: MtlsResponse<T>) => void;
  #reject!: (error: MtlsError) => void;
  #settled = false;
  #failure: UpstreamError | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #headers: IncomingHttpHeaders = NO_HEADERS;
  #chunks: Buffer[] = [];
  #length = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly route: UpstreamPool,
    private readonly method: string,
    private readonly path: string,
    private readonly timeoutMs: number,
    private readonly maxResponseBytes: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#timer = setTimeout(ResponseCollector.#onTimeout, timeoutMs, this);
    signal?.addEventListener('abort', this);
  }

  static #onTimeout<U>(this: void, collector: ResponseCollector<U>): void {
    const { route, method, path, timeoutMs } = collector;
    collector.#fail(
      new UpstreamError(
        'ERR_MTLS_UPSTREAM_TIMEOUT',
        `${describeRequest(method, path)} to upstream ${route.upstream}: no complete response within ${timeoutMs} ms`,
        { upstream: route.upstream, expected: route.expected },
      ),
    );
  }

  /** The caller's AbortSignal fired. */
  handleEvent(): void {
    const { signal } = this;
    if (signal !== undefined) this.#fail(aborted(this.route, this.method, this.path, signal));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.#failure !== undefined) {
      // Timed out or aborted while queued for a connection: nothing has been written yet, and nothing will be.
      controller.abort(this.#failure);
      return;
    }
    this.#controller = controller;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.#status = statusCode;
    this.#headers = headers;
    // A declared length over the limit fails now, before a byte of the body is read. HEAD, 204 and 304 answers
    // declare a length without sending a body.
    const declared = headers['content-length'];
    if (
      typeof declared === 'string' &&
      Number(declared) > this.maxResponseBytes &&
      this.method !== 'HEAD' &&
      statusCode !== 204 &&
      statusCode !== 304
    ) {
      this.#fail(this.#tooLarge(declared));
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    this.#length += chunk.length;
    if (this.#length > this.maxResponseBytes) {
      this.#chunks = [];
      this.#fail(this.#tooLarge(undefined));
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    this.#settle();
    const chunks = this.#chunks;
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#length);
    let text = bytes.toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const status = this.#status;
    const headers = this.#headers;
    const contentType = headers['content-type'];
    let body: unknown = text;
    if (this.method === 'HEAD') {
      body = undefined;
    } else if (typeof contentType === 'string' && JSON_CONTENT_TYPE.test(contentType)) {
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch (error) {
        const { upstream, expected } = this.route;
        const message =
          `${describeRequest(this.method, this.path)} to upstream ${upstream}: ` +
          `the response (status ${status}) says ${contentType} but its body is not valid JSON`;
        this.#reject(new UpstreamError('ERR_MTLS_UPSTREAM_REQUEST', message, { upstream, expected }, { cause: error }));
        return;
      }
    }
    this.#resolve({ status, ok: status >= 200 && status < 300, headers, body: body as T, text });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.#settled) return;
    this.#settle();
    const { upstream, expected } = this.route;
    const request = describeRequest(this.method, this.path);
    const code = (error as { code?: unknown }).code;
    if (this.#controller === undefined && (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED')) {
      // undici refused to build the request (a header it does not allow, say): the caller's mistake, not the network's.
      const reason = `undici refused the request: ${error.message}`;
      this.#reject(invalidArgument(`${request} to upstream ${upstream}`, reason, error));
      return;
    }
    this.#reject(toUpstreamError(error, { upstream, expected, request }));
  }

  /** The body is over the limit: the call fails and its connection is closed, as reading on would be unbounded. */
  #tooLarge(declared: string | undefined): UpstreamError {
    const { route, method, path, maxResponseBytes } = this;
    const what = declared === undefined ? `status ${this.#status}` : `status ${this.#status}, content-length ${declared}`;
    return new UpstreamError(
      'ERR_MTLS_UPSTREAM_REQUEST',
      `${describeRequest(method, path)} to upstream ${route.upstream}: the response body (${what}) exceeds ` +
        `maxResponseBytes (${maxResponseBytes} bytes); its connection was closed`,
      { upstream: route.upstream, expected: route.expected },
    );
  }

  #fail(error: UpstreamError): void {
    if (this.#settled) return;
    this.#settle();
    this.#failure = error;
    this.#reject(error);
    this.#controller?.abort(error);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.signal?.removeEventListener('abort', this);
  }
}

function aborted(route: UpstreamPool, method: string, path: string, signal: AbortSignal): UpstreamError {
  return new UpstreamError(
    'ERR_MTLS_UPSTREAM_ABORTED',
    `${describeRequest(method, path)} to upstream ${route.upstream}: aborted by the caller`,
    { upstream: route.upstream, expected: route.expected },
    { cause: signal.reason },
  );
}

/** How a call is named in errors: `GET /stock/42 to upstream inventory`. */
function describeCall(method: string, path: string, route: UpstreamPool): string {
  return `${describeRequest(method, path)} to upstream ${route.upstream}`;
}

/** A call refused before anything was sent because the client is closed. */
export function notSent(
  method: string,
  path: string,
  upstream: string,
  reason: string,
  expected?: string,
  cause?: unknown,
): UpstreamError {
  return new UpstreamError(
    'ERR_MTLS_UPSTREAM_REQUEST',
    `${describeRequest(method, path)} to upstream ${upstream}: ${reason}; nothing was sent`,
    { upstream, expected },
    cause === undefined ? undefined : { cause },
  );
}

/** `GET /stock/42` — without the query string, which may carry secrets. */
export function describeRequest(method: string, path: string): string {
  if (path === '') return method;
  const query = path.indexOf('?');
  return `${method} ${query === -1 ? path : path.slice(0, query)}`;
}

function hasContentType(headers: MtlsRequestOptions['headers']): boolean {
  if (headers === undefined) return false;
  for (const name of Object.keys(headers)) {
    if (name.length === 12 && name.toLowerCase() === 'content-type' && headers[name] !== undefined) return true;
  }
  return false;
}

/** Appends `query` to `path` (after the path's own query, if any); `undefined` values are skipped. */
export function withQuery(path: string, query: NonNullable<MtlsRequestOptions['query']>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value as readonly QueryValue[]) params.append(name, String(item));
    } else {
      params.append(name, String(value));
    }
  }
  const search = params.toString();
  if (search === '') return path;
  return `${path}${path.includes('?') ? '&' : '?'}${search}`;
}
