import { MtlsConfigError } from '../errors/mtls.errors.js';
import type { HttpMethod } from './client.interfaces.js';
import { describeValue } from '../format/describe-value.js';
import { tokenSourceProblem } from './bearer-token.js';

/** The methods the client sends; HTTP methods are case-sensitive. */
const METHODS: ReadonlySet<string> = new Set<HttpMethod>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Longest delay Node's timers honour: a longer one fires at once (with a TimeoutOverflowWarning). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** RFC 9110 token: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Anything outside HTAB, visible ASCII and obs-text: CR and LF would let a value smuggle headers. */
const NOT_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** A request target is visible ASCII (RFC 9112 §3.2): spaces, controls and other characters go percent-encoded. */
const NOT_REQUEST_TARGET = /[^\x21-\x7e]/;

/** A bad argument to a client call, refused before anything was sent; `call` names it (`GET /stock to upstream …`). */
export function invalidArgument(call: string, reason: string, cause?: unknown): MtlsConfigError {
  return new MtlsConfigError(
    'ERR_MTLS_INVALID_ARGUMENT',
    `${call}: ${reason}; nothing was sent`,
    cause === undefined ? undefined : { cause },
  );
}

/** Why `method` cannot be sent, or undefined. */
export function methodProblem(method: unknown): string | undefined {
  if (typeof method === 'string' && METHODS.has(method)) return undefined;
  return `the method must be one of ${[...METHODS].join(', ')}; got ${describeValue(method)}`;
}

/** What went wrong with a URL argument. */
export interface UrlProblem {
  readonly problem: string;
}

/** The https:// URL that `url` designates, or why it cannot be called. */
export function toTarget(url: unknown): URL | UrlProblem {
  let target: URL;
  if (url instanceof URL) {
    target = url;
  } else if (typeof url === 'string') {
    try {
      target = new URL(url);
    } catch {
      return { problem: `url must be an absolute https:// URL; got ${JSON.stringify(redactUrl(url))}` };
    }
  } else {
    return { problem: `url must be a string or a URL; got ${describeValue(url)}` };
  }
  if (target.protocol === 'http:') {
    return {
      problem:
        `url must be https://, not http:// (${target.origin}): plain http can neither present the client ` +
        'certificate nor verify the server',
    };
  }
  if (target.protocol !== 'https:') {
    return { problem: `url must be https://; got ${target.protocol}` };
  }
  // The getters cost more than the search: a string without "@" has no user info.
  if ((typeof url !== 'string' || url.includes('@')) && (target.username !== '' || target.password !== '')) {
    // undici would drop them silently: the request would go out without the credentials the caller meant to send.
    return { problem: `url must not carry credentials (user:password@${target.host}); send them in a header` };
  }
  return target;
}

/** Why `path` cannot be sent to a named upstream, or undefined. */
export function pathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    const shown = typeof path === 'string' ? JSON.stringify(redactUrl(path)) : describeValue(path);
    return `the path must start with "/"; got ${shown}`;
  }
  if (path.includes('#')) return 'the path must not contain a fragment ("#")';
  if (NOT_REQUEST_TARGET.test(path)) {
    return 'the path contains a space, a control character or a non-ASCII character: percent-encode it';
  }
  return undefined;
}

/**
 * Why `options` of one call cannot be used, or undefined. Checks every field but the body (encoded when sent) and
 * the contents of `expectPeer` (compiled by the registry). `expectPeer` is refused on a named upstream's call:
 * its identity is configuration, and a per-call value would be silently ignored.
 */
export function optionsProblem(options: unknown, namedUpstream: boolean): string | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    return `options must be an object; got ${describeValue(options)}`;
  }
  const { expectPeer, headers, query, timeoutMs, maxResponseBytes, signal } = options as Record<string, unknown>;
  if (expectPeer !== undefined && namedUpstream) {
    return 'options.expectPeer cannot be set on a named upstream: its identity is configured in "client.upstreams"';
  }
  if (headers !== undefined) {
    const problem = headersProblem(headers);
    if (problem !== undefined) return problem;
  }
  if (query !== undefined) {
    const problem = queryProblem(query);
    if (problem !== undefined) return problem;
  }
  if (timeoutMs !== undefined && !isWholeNumber(timeoutMs, 1, MAX_TIMEOUT_MS)) {
    return `options.timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}; got ${describeValue(timeoutMs)}`;
  }
  if (maxResponseBytes !== undefined && !isWholeNumber(maxResponseBytes, 0, Number.MAX_SAFE_INTEGER)) {
    return `options.maxResponseBytes must be a whole number of bytes ≥ 0; got ${describeValue(maxResponseBytes)}`;
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    return `options.signal must be an AbortSignal; got ${describeValue(signal)}`;
  }
  return tokenSourceProblem((options as Record<string, unknown>).token);
}

/** Why `headers` cannot be sent, or undefined. Values are never quoted: they may be credentials. */
function headersProblem(headers: unknown): string | undefined {
  if (!isPlainObject(headers)) {
    return `options.headers must be a plain object of name → value; got ${describeValue(headers)}`;
  }
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = headers[name];
    if (!TOKEN.test(name)) return `options.headers has an invalid header name ${JSON.stringify(name)}`;
    if (value === undefined) continue;
    const problem = Array.isArray(value) ? headerValuesProblem(value as unknown[]) : headerValueProblem(value, 'got');
    // The field is named only on failure: building it for every header would cost each call an allocation.
    if (problem !== undefined) return `options.headers[${JSON.stringify(name)}] ${problem}`;
  }
  return undefined;
}

function headerValuesProblem(values: readonly unknown[]): string | undefined {
  for (const value of values) {
    const problem = headerValueProblem(value, 'it holds');
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function headerValueProblem(value: unknown, shown: 'got' | 'it holds'): string | undefined {
  if (typeof value !== 'string') return `must be a string or an array of strings; ${shown} ${describeValue(value)}`;
  if (NOT_HEADER_VALUE.test(value)) return 'contains a character not allowed in a header value (CR, LF, NUL…)';
  return undefined;
}

/** Why `query` cannot be encoded, or undefined. Values are never quoted: they may be secrets. */
function queryProblem(query: unknown): string | undefined {
  if (!isPlainObject(query)) {
    return `options.query must be a plain object of name → value; got ${describeValue(query)}`;
  }
  for (const name in query) {
    if (!Object.hasOwn(query, name)) continue;
    const value = query[name];
    if (value === undefined || isQueryValue(value)) continue;
    if (!Array.isArray(value)) {
      const kinds = 'a string, a finite number, a boolean or an array of them';
      return `options.query[${JSON.stringify(name)}] must be ${kinds}; got ${describeValue(value)}`;
    }
    for (const item of value as unknown[]) {
      if (isQueryValue(item)) continue;
      const kinds = 'strings, finite numbers or booleans';
      return `options.query[${JSON.stringify(name)}] must hold ${kinds}; it holds ${describeValue(item)}`;
    }
  }
  return undefined;
}

function isQueryValue(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

function isWholeNumber(value: unknown, min: number, max: number): boolean {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function isAbortSignal(value: unknown): value is AbortSignal {
  // Duck-typed: a polyfilled signal from another library is as good as Node's own.
  const signal = value as Partial<AbortSignal> | null;
  return (
    typeof signal === 'object' &&
    signal !== null &&
    typeof signal.aborted === 'boolean' &&
    typeof signal.addEventListener === 'function' &&
    typeof signal.removeEventListener === 'function'
  );
}

/** A URL-ish string without what may be secret: the query, the fragment and any user info. Capped at 200 characters. */
function redactUrl(url: string): string {
  const end = url.search(/[?#]/);
  const bare = (end === -1 ? url : url.slice(0, end)).replace(/\/\/[^/@]*@/, '//…@');
  return bare.length > 200 ? `${bare.slice(0, 200)}…` : bare;
}
