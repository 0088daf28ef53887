import { ProxyHeaderError } from '../errors/mtls.errors.js';

/*
 * Envoy's `x-forwarded-client-cert` (XFCC), read strictly: elements separated by `,`, key=value pairs by `;`, values
 * double-quoted when they hold `,` `;` or `=`, a backslash inside quotes taking the next character literally. Quotes
 * are honoured everywhere, so a Subject cannot smuggle `;URI=` or `,Cert=` (client-certificate-auth #229/#230). The
 * whole header is checked before any element is used: a bad element anywhere refuses the request, never a partial
 * read. Errors name offsets and keys, never the header's content.
 */

/** The keys Envoy writes; matched without regard to case. */
export const XFCC_KEYS = ['By', 'Hash', 'Cert', 'Chain', 'Subject', 'URI', 'DNS'] as const;

/** One XFCC key, in Envoy's spelling. */
export type XfccKey = (typeof XFCC_KEYS)[number];

/** One element: what one proxy hop said about the client certificate it saw. Values are unquoted and unescaped. */
export interface XfccElement {
  /** `By`: the SAN (URI or DNS) of the proxy's own certificate. */
  readonly by: string | undefined;
  /** `Hash`: hex SHA-256 of the client certificate's DER. */
  readonly hash: string | undefined;
  /** `Cert`: the client certificate as URL-encoded PEM, as sent. */
  readonly cert: string | undefined;
  /** `Chain`: the client's whole chain (leaf first) as URL-encoded PEM, as sent. */
  readonly chain: string | undefined;
  /** `Subject`: the client certificate's subject (RFC 2253 text; `\,` and the like kept as written). */
  readonly subject: string | undefined;
  /** `URI`: the client certificate's URI SAN. */
  readonly uri: string | undefined;
  /** `DNS`: the client certificate's DNS SANs, in header order. */
  readonly dns: readonly string[];
}

/** Bounds on an XFCC header. */
export interface XfccLimits {
  /** Most characters (= bytes: Node reads header values as latin1). */
  readonly maxBytes: number;
  /** Most elements (proxy hops). */
  readonly maxElements: number;
}

/** Defaults: 64 KiB (Envoy's own request-header limit is 60 KiB) and 10 hops. */
export const XFCC_DEFAULT_LIMITS: XfccLimits = Object.freeze({ maxBytes: 65_536, maxElements: 10 });

const COMMA = 0x2c;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DNS_KEY = XFCC_KEYS.indexOf('DNS');
const LOWER_KEYS = XFCC_KEYS.map((key) => key.toLowerCase());

function malformed(message: string): ProxyHeaderError {
  return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_MALFORMED', `x-forwarded-client-cert: ${message}`);
}

function isKeyChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** A character of an unquoted value: visible ASCII except the separators, the quote and the backslash. */
function isPlainChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== COMMA && c !== SEMICOLON && c !== EQUALS && c !== QUOTE && c !== BACKSLASH;
}

/** A character inside quotes: space, visible ASCII, or a latin1 byte ≥ 0x80 (UTF-8 of a subject); no control. */
function isQuotedChar(c: number): boolean {
  return (c >= 0x20 && c < 0x7f) || (c >= 0x80 && c <= 0xff);
}

/** Index in {@link XFCC_KEYS} of header[start, end) compared without case, or -1. */
function keyIndex(header: string, start: number, end: number): number {
  const length = end - start;
  outer: for (let k = 0; k < LOWER_KEYS.length; k++) {
    const key = LOWER_KEYS[k]!;
    if (key.length !== length) continue;
    for (let i = 0; i < length; i++) {
      // Key characters are letters only, so `| 0x20` is an exact lower-casing here.
      if ((header.charCodeAt(start + i) | 0x20) !== key.charCodeAt(i)) continue outer;
    }
    return k;
  }
  return -1;
}

// The last pair read by readPair: module state, so that scanning a header allocates nothing per pair.
let pairKey = -1;
let valueStart = 0;
let valueEnd = 0;
let valueEscaped = false;

/** Reads one `key=value` starting at `i` (element `element`, for messages); returns the index just past it. */
function readPair(header: string, i: number, element: number): number {
  const n = header.length;
  const keyStart = i;
  while (i < n && isKeyChar(header.charCodeAt(i))) i++;
  if (i === keyStart) throw malformed(`element ${element}: expected a key at offset ${i}`);
  if (i >= n || header.charCodeAt(i) !== EQUALS)
    throw malformed(`element ${element}: expected "=" after the key at offset ${keyStart}`);
  pairKey = keyIndex(header, keyStart, i);
  if (pairKey < 0) {
    const name = i - keyStart <= 16 ? `"${header.slice(keyStart, i)}"` : 'a long key';
    throw malformed(`element ${element}: unknown key ${name} at offset ${keyStart}; known keys: ${XFCC_KEYS.join(', ')}`);
  }
  i++;
  valueEscaped = false;
  if (i < n && header.charCodeAt(i) === QUOTE) {
    const open = i++;
    valueStart = i;
    for (;;) {
      if (i >= n) throw malformed(`element ${element}: the quoted value opened at offset ${open} is not closed`);
      const c = header.charCodeAt(i);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        if (i + 1 >= n || !isQuotedChar(header.charCodeAt(i + 1))) {
          throw malformed(`element ${element}: a backslash at offset ${i} escapes nothing`);
        }
        valueEscaped = true;
        i += 2;
        continue;
      }
      if (!isQuotedChar(c)) throw malformed(`element ${element}: control character at offset ${i}`);
      i++;
    }
    valueEnd = i++;
  } else {
    valueStart = i;
    while (i < n && isPlainChar(header.charCodeAt(i))) i++;
    valueEnd = i;
  }
  return i;
}

/** The value of the last pair read, quotes removed; `\"` and `\\` unescaped, other `\x` (RFC 2253's) kept. */
function pairValue(header: string): string {
  if (!valueEscaped) return header.slice(valueStart, valueEnd);
  let value = '';
  let from = valueStart;
  for (let i = valueStart; i < valueEnd; i++) {
    if (header.charCodeAt(i) !== BACKSLASH) continue;
    const next = header.charCodeAt(i + 1);
    if (next === QUOTE || next === BACKSLASH) {
      value += header.slice(from, i);
      from = i + 1;
    }
    i++;
  }
  return value + header.slice(from, valueEnd);
}

/**
 * Checks the whole header and returns each element's `[start, end)` offsets, flattened. Throws
 * {@link ProxyHeaderError}: `ERR_MTLS_PROXY_HEADER_TOO_LARGE` beyond `maxBytes`, `ERR_MTLS_PROXY_HEADER_MALFORMED` for
 * anything else (empty header or element, unknown key, a key other than `DNS` twice in an element, stray character,
 * unclosed quote, more than `maxElements` elements).
 */
export function scanXfcc(header: string, limits: XfccLimits = XFCC_DEFAULT_LIMITS): number[] {
  if (header.length > limits.maxBytes) {
    throw new ProxyHeaderError(
      'ERR_MTLS_PROXY_HEADER_TOO_LARGE',
      `x-forwarded-client-cert: ${header.length} bytes, more than the ${limits.maxBytes} allowed (option proxy.maxHeaderBytes)`,
    );
  }
  if (header.length === 0) throw malformed('the header is empty');
  const bounds: number[] = [];
  const n = header.length;
  let i = 0;
  for (let element = 1; ; element++) {
    if (element > limits.maxElements) throw malformed(`more than ${limits.maxElements} elements`);
    const start = i;
    let seen = 0;
    for (;;) {
      i = readPair(header, i, element);
      if (pairKey !== DNS_KEY) {
        const bit = 1 << pairKey;
        if ((seen & bit) !== 0) throw malformed(`element ${element}: key ${XFCC_KEYS[pairKey]} appears twice`);
        seen |= bit;
      }
      if (i >= n) {
        bounds.push(start, n);
        return bounds;
      }
      const c = header.charCodeAt(i);
      if (c === SEMICOLON) {
        i++;
        continue;
      }
      if (c === COMMA) {
        bounds.push(start, i);
        i++;
        break;
      }
      throw malformed(`element ${element}: unexpected character at offset ${i} (a value holding , ; = or " must be quoted)`);
    }
  }
}

/** Reads the element at `[start, end)` of a header {@link scanXfcc} accepted. */
export function readXfccElement(header: string, start: number, end: number): XfccElement {
  let by: string | undefined;
  let hash: string | undefined;
  let cert: string | undefined;
  let chain: string | undefined;
  let subject: string | undefined;
  let uri: string | undefined;
  const dns: string[] = [];
  const scoped = start === 0 && end === header.length ? header : header.slice(start, end);
  let i = 0;
  while (i < scoped.length) {
    i = readPair(scoped, i, 1);
    const value = pairValue(scoped);
    switch (XFCC_KEYS[pairKey]) {
      case 'By':
        by = value;
        break;
      case 'Hash':
        hash = value;
        break;
      case 'Cert':
        cert = value;
        break;
      case 'Chain':
        chain = value;
        break;
      case 'Subject':
        subject = value;
        break;
      case 'URI':
        uri = value;
        break;
      case 'DNS':
        dns.push(value);
        break;
    }
    i++; // the ';' (or past the end)
  }
  return Object.freeze({ by, hash, cert, chain, subject, uri, dns: Object.freeze(dns) });
}

/** Parses a whole XFCC header into its elements, first to last; throws {@link ProxyHeaderError} as {@link scanXfcc}. */
export function parseXfcc(header: string, limits: XfccLimits = XFCC_DEFAULT_LIMITS): XfccElement[] {
  const bounds = scanXfcc(header, limits);
  const elements: XfccElement[] = [];
  for (let k = 0; k < bounds.length; k += 2) elements.push(readXfccElement(header, bounds[k]!, bounds[k + 1]!));
  return elements;
}
