import { describe, expect, it } from 'vitest';
import {
  invalidArgument,
  MAX_TIMEOUT_MS,
  methodProblem,
  optionsProblem,
  pathProblem,
  toTarget,
} from '../../lib/client/request-arguments.js';
import { MtlsConfigError } from '../../lib/errors/mtls.errors.js';

describe('toTarget', () => {
  it.each([
    ['https://inventory:8443/stock/42?x=1', 'https://inventory:8443', '/stock/42', '?x=1'],
    [new URL('https://[::1]:8443/a'), 'https://[::1]:8443', '/a', ''],
    ['https://INVENTORY/', 'https://inventory', '/', ''],
  ])('accepts %s', (url, origin, pathname, search) => {
    const target = toTarget(url);

    expect(target).toBeInstanceOf(URL);
    expect(target).toMatchObject({ origin, pathname, search });
  });

  it.each([
    [42, 'url must be a string or a URL; got 42'],
    [null, 'url must be a string or a URL; got null'],
    [undefined, 'url must be a string or a URL; got undefined'],
    [{ href: 'https://inventory' }, 'url must be a string or a URL; got an object'],
    ['/stock/42', 'url must be an absolute https:// URL; got "/stock/42"'],
    // The query, the fragment and the user info may be secret: never in a message.
    ['//user:pw@inventory/stock?token=secret#frag', 'url must be an absolute https:// URL; got "//…@inventory/stock"'],
    [
      'http://127.0.0.1:8080/stock',
      'url must be https://, not http:// (http://127.0.0.1:8080): plain http can neither present the client certificate nor verify the server',
    ],
    ['ftp://inventory/stock', 'url must be https://; got ftp:'],
    ['inventory:8443/stock', 'url must be https://; got inventory:'],
    ['https://user:pw@inventory/stock', 'url must not carry credentials (user:password@inventory); send them in a header'],
  ])('refuses %j: %s', (url, problem) => {
    expect(toTarget(url)).toEqual({ problem });
  });
});

describe('pathProblem', () => {
  it.each(['/', '/stock/42', '/stock?sku=42&x=%20', "/a-._~!$&'()*+,;=:@/%C3%A9"])('accepts %j', (path) => {
    expect(pathProblem(path)).toBeUndefined();
  });

  it.each([
    ['stock/42', 'the path must start with "/"; got "stock/42"'],
    ['', 'the path must start with "/"; got ""'],
    [42, 'the path must start with "/"; got 42'],
    [undefined, 'the path must start with "/"; got undefined'],
    ['stock?token=secret', 'the path must start with "/"; got "stock"'],
    ['/stock#top', 'the path must not contain a fragment ("#")'],
    ['/stock 42', 'the path contains a space, a control character or a non-ASCII character: percent-encode it'],
    ['/stock\r\nx-injected: 1', 'the path contains a space, a control character or a non-ASCII character: percent-encode it'],
    ['/café', 'the path contains a space, a control character or a non-ASCII character: percent-encode it'],
  ])('refuses %j: %s', (path, problem) => {
    expect(pathProblem(path)).toBe(problem);
  });
});

describe('methodProblem', () => {
  it.each(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('accepts %s', (method) => {
    expect(methodProblem(method)).toBeUndefined();
  });

  it.each([
    ['get', '"get"'],
    ['CONNECT', '"CONNECT"'],
    ['G ET', '"G ET"'],
    [undefined, 'undefined'],
  ])('refuses %j', (method, shown) => {
    expect(methodProblem(method)).toBe(`the method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; got ${shown}`);
  });
});

describe('optionsProblem', () => {
  const signal = new AbortController().signal;

  it.each([
    ['no options', undefined],
    ['empty options', {}],
    [
      'everything',
      {
        expectPeer: 'inventory',
        headers: { 'x-id': 'r1', accept: ['a', 'b'], skipped: undefined },
        query: { q: 'x', n: 1, f: false, tags: ['a', 2, true], skipped: undefined },
        timeoutMs: MAX_TIMEOUT_MS,
        maxResponseBytes: 0,
        signal,
      },
    ],
    ['a null-prototype query', { query: Object.assign(Object.create(null) as object, { q: 'x' }) }],
    ['an empty header value', { headers: { 'x-empty': '' } }],
    ['obs-text in a header value', { headers: { 'x-latin': 'caf\u00e9' } }],
  ])('accepts %s', (_case, options) => {
    expect(optionsProblem(options, false)).toBeUndefined();
  });

  it.each([
    [null, 'options must be an object; got null'],
    ['fast', 'options must be an object; got "fast"'],
    [[], 'options must be an object; got an array'],
    // query
    [{ query: null }, 'options.query must be a plain object of name → value; got null'],
    [{ query: 'a=1' }, 'options.query must be a plain object of name → value; got "a=1"'],
    [
      { query: new URLSearchParams('a=1') },
      'options.query must be a plain object of name → value; got an instance of URLSearchParams',
    ],
    [{ query: new Map([['a', '1']]) }, 'options.query must be a plain object of name → value; got an instance of Map'],
    [{ query: { a: null } }, 'options.query["a"] must be a string, a finite number, a boolean or an array of them; got null'],
    [
      { query: { a: Number.NaN } },
      'options.query["a"] must be a string, a finite number, a boolean or an array of them; got NaN',
    ],
    [
      { query: { a: Infinity } },
      'options.query["a"] must be a string, a finite number, a boolean or an array of them; got Infinity',
    ],
    [{ query: { a: 1n } }, 'options.query["a"] must be a string, a finite number, a boolean or an array of them; got 1n'],
    [
      { query: { a: { b: 1 } } },
      'options.query["a"] must be a string, a finite number, a boolean or an array of them; got an object',
    ],
    [
      { query: { a: new Date(0) } },
      'options.query["a"] must be a string, a finite number, a boolean or an array of them; got an instance of Date',
    ],
    [{ query: { a: ['x', undefined] } }, 'options.query["a"] must hold strings, finite numbers or booleans; it holds undefined'],
    [{ query: { a: [['x']] } }, 'options.query["a"] must hold strings, finite numbers or booleans; it holds an array'],
    // headers (values never shown: they may be credentials)
    [{ headers: null }, 'options.headers must be a plain object of name → value; got null'],
    [{ headers: new Headers({ a: '1' }) }, 'options.headers must be a plain object of name → value; got an instance of Headers'],
    [{ headers: [['a', '1']] }, 'options.headers must be a plain object of name → value; got an array'],
    [{ headers: { 'bad name': 'x' } }, 'options.headers has an invalid header name "bad name"'],
    [{ headers: { '': 'x' } }, 'options.headers has an invalid header name ""'],
    [{ headers: { 'x-n': 42 } }, 'options.headers["x-n"] must be a string or an array of strings; got 42'],
    [{ headers: { 'x-n': null } }, 'options.headers["x-n"] must be a string or an array of strings; got null'],
    [{ headers: { 'x-n': ['a', 1] } }, 'options.headers["x-n"] must be a string or an array of strings; it holds 1'],
    [
      { headers: { authorization: 'Bearer t\r\nx-injected: 1' } },
      'options.headers["authorization"] contains a character not allowed in a header value (CR, LF, NUL…)',
    ],
    [
      { headers: { 'x-n': ['ok', 'a\u0000b'] } },
      'options.headers["x-n"] contains a character not allowed in a header value (CR, LF, NUL…)',
    ],
    [
      { headers: { 'x-n': 'snow ☃' } },
      'options.headers["x-n"] contains a character not allowed in a header value (CR, LF, NUL…)',
    ],
    // numbers
    [{ timeoutMs: 0 }, `options.timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}; got 0`],
    [{ timeoutMs: 1.5 }, `options.timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}; got 1.5`],
    [{ timeoutMs: '100' }, `options.timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}; got "100"`],
    [{ timeoutMs: 2 ** 31 }, `options.timeoutMs must be a whole number of ms from 1 to ${MAX_TIMEOUT_MS}; got 2147483648`],
    [{ maxResponseBytes: -1 }, 'options.maxResponseBytes must be a whole number of bytes ≥ 0; got -1'],
    [{ maxResponseBytes: Infinity }, 'options.maxResponseBytes must be a whole number of bytes ≥ 0; got Infinity'],
    [{ maxResponseBytes: null }, 'options.maxResponseBytes must be a whole number of bytes ≥ 0; got null'],
    // signal
    [{ signal: {} }, 'options.signal must be an AbortSignal; got an object'],
    [{ signal: new AbortController() }, 'options.signal must be an AbortSignal; got an instance of AbortController'],
  ])('refuses %o', (options, problem) => {
    expect(optionsProblem(options, false)).toBe(problem);
  });

  it('refuses a per-call expectPeer on a named upstream, whose identity is configuration', () => {
    expect(optionsProblem({ expectPeer: 'inventory' }, true)).toBe(
      'options.expectPeer cannot be set on a named upstream: its identity is configured in "client.upstreams"',
    );
    expect(optionsProblem({ expectPeer: 'inventory' }, false)).toBeUndefined();
  });
});

describe('invalidArgument', () => {
  it('is an MtlsConfigError that names the call, the reason, and that nothing was sent', () => {
    const cause = new Error('x');
    const error = invalidArgument('GET /stock to upstream inventory', 'options.timeoutMs must be …', cause);

    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error.code).toBe('ERR_MTLS_INVALID_ARGUMENT');
    expect(error.message).toBe('GET /stock to upstream inventory: options.timeoutMs must be …; nothing was sent');
    expect(error.cause).toBe(cause);
  });
});
