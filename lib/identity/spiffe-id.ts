import { SpiffeIdError } from '../errors/mtls.errors.js';

/*
 * A port of go-spiffe v2.8.1 `spiffeid` (id.go, path.go, trustdomain.go, errors.go): same grammar, same error
 * text, same order of checks. One addition: the length caps of SPIFFE-ID.md §2.3, which go-spiffe does not enforce.
 * Hand-written scanners over char tables, no `new URL()`: WHATWG URL normalises `..`, case and ports away.
 */

/** Longest SPIFFE ID accepted, in bytes (SPIFFE-ID.md §2.3: implementations MUST support 2048). */
export const SPIFFE_ID_MAX_BYTES = 2048;

/** Longest trust domain name accepted, in bytes (SPIFFE-ID.md §2.3). */
export const TRUST_DOMAIN_MAX_BYTES = 255;

const SCHEME_PREFIX = 'spiffe://';
const SCHEME_PREFIX_LENGTH = SCHEME_PREFIX.length;
const SLASH = 0x2f;
const DOT = 0x2e;

const ERR_EMPTY = 'cannot be empty';
const ERR_WRONG_SCHEME = 'scheme is missing or invalid';
const ERR_MISSING_TRUST_DOMAIN = 'trust domain is missing';
const ERR_BAD_TRUST_DOMAIN_CHAR =
  'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
const ERR_BAD_PATH_SEGMENT_CHAR = 'path segment characters are limited to letters, numbers, dots, dashes, and underscores';
const ERR_NO_LEADING_SLASH = 'path must have a leading slash';
const ERR_EMPTY_SEGMENT = 'path cannot contain empty segments';
const ERR_DOT_SEGMENT = 'path cannot contain dot segments';
const ERR_TRAILING_SLASH = 'path cannot have a trailing slash';
const ERR_ID_TOO_LONG = `cannot be longer than ${SPIFFE_ID_MAX_BYTES} bytes`;
const ERR_TRUST_DOMAIN_TOO_LONG = `trust domain cannot be longer than ${TRUST_DOMAIN_MAX_BYTES} bytes`;

/** 1 for `[a-z0-9._-]`, indexed by char code < 128. */
const TRUST_DOMAIN_CHARS = charTable('abcdefghijklmnopqrstuvwxyz0123456789.-_');
/** 1 for `[a-zA-Z0-9._-]`, indexed by char code < 128. */
const PATH_SEGMENT_CHARS = charTable('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_');

function charTable(chars: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
}

// Every allowed char is ASCII, so a string whose UTF-16 length is within a cap and that passes the char checks is
// within the cap in UTF-8 bytes too; a longer UTF-16 length always means more bytes. Checking `.length` is exact.

function isTrustDomainChar(c: number): boolean {
  return c < 128 && TRUST_DOMAIN_CHARS[c] === 1;
}

function isPathSegmentChar(c: number): boolean {
  return c < 128 && PATH_SEGMENT_CHARS[c] === 1;
}

/** A parsed, valid SPIFFE ID (SPIFFE-ID.md §2). Immutable; compare with `equals` or by `toString()`. */
export class SpiffeId {
  private constructor(
    /** Trust domain name, e.g. `shop.test`. */
    readonly trustDomain: string,
    /** Path including the leading slash, or `''` for the trust domain's own ID. */
    readonly path: string,
  ) {
    Object.freeze(this);
  }

  /** @internal Built only by the parsing functions below, after validation. */
  static unsafeCreate(trustDomain: string, path: string): SpiffeId {
    return new SpiffeId(trustDomain, path);
  }

  /** `spiffe://<trustDomain><path>` */
  toString(): string {
    return `${SCHEME_PREFIX}${this.trustDomain}${this.path}`;
  }

  /** The string form, so IDs serialise as plain strings. */
  toJSON(): string {
    return this.toString();
  }

  /** True when both IDs are the same (SPIFFE IDs compare exactly, byte for byte). */
  equals(other: SpiffeId): boolean {
    return this.trustDomain === other.trustDomain && this.path === other.path;
  }

  /** True when this ID belongs to the given trust domain name. */
  memberOf(trustDomain: string): boolean {
    return this.trustDomain === trustDomain;
  }
}

/**
 * Scans a SPIFFE ID (`spiffeid.FromString`). Returns the index where the path starts (the end of the trust domain),
 * or go-spiffe's error text. No exception on the way, so callers that only need a yes/no stay cheap.
 */
function scanSpiffeId(id: string): number | string {
  if (id === '') return ERR_EMPTY;
  if (!id.startsWith(SCHEME_PREFIX)) return ERR_WRONG_SCHEME;
  if (id.length > SPIFFE_ID_MAX_BYTES) return ERR_ID_TOO_LONG;

  let pathStart = SCHEME_PREFIX_LENGTH;
  for (; pathStart < id.length; pathStart++) {
    const c = id.charCodeAt(pathStart);
    if (c === SLASH) break;
    if (!isTrustDomainChar(c)) return ERR_BAD_TRUST_DOMAIN_CHAR;
  }
  if (pathStart === SCHEME_PREFIX_LENGTH) return ERR_MISSING_TRUST_DOMAIN;
  if (pathStart - SCHEME_PREFIX_LENGTH > TRUST_DOMAIN_MAX_BYTES) return ERR_TRUST_DOMAIN_TOO_LONG;

  return pathError(id, pathStart) ?? pathStart;
}

/**
 * Validates `s.slice(start)` as a SPIFFE ID path (`spiffeid.ValidatePath`), without slicing. A bad char is reported as
 * soon as it is reached; an empty or dot segment when the `/` that ends it is reached, as in go-spiffe.
 */
function pathError(s: string, start: number): string | undefined {
  const end = s.length;
  if (start === end) return undefined;
  if (s.charCodeAt(start) !== SLASH) return ERR_NO_LEADING_SLASH;

  let segmentStart = start;
  for (let i = start + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === SLASH) {
      if (i - segmentStart === 1) return ERR_EMPTY_SEGMENT;
      if (isDotSegment(s, segmentStart, i)) return ERR_DOT_SEGMENT;
      segmentStart = i;
    } else if (!isPathSegmentChar(c)) {
      return ERR_BAD_PATH_SEGMENT_CHAR;
    }
  }
  if (end - segmentStart === 1) return ERR_TRAILING_SLASH;
  if (isDotSegment(s, segmentStart, end)) return ERR_DOT_SEGMENT;
  return undefined;
}

/** True when `s[from, to)` is `/.` or `/..`. */
function isDotSegment(s: string, from: number, to: number): boolean {
  const length = to - from;
  return (
    (length === 2 && s.charCodeAt(from + 1) === DOT) ||
    (length === 3 && s.charCodeAt(from + 1) === DOT && s.charCodeAt(from + 2) === DOT)
  );
}

function segmentError(segment: string): string | undefined {
  if (segment === '') return ERR_EMPTY_SEGMENT;
  if (segment === '.' || segment === '..') return ERR_DOT_SEGMENT;
  for (let i = 0; i < segment.length; i++) {
    if (!isPathSegmentChar(segment.charCodeAt(i))) return ERR_BAD_PATH_SEGMENT_CHAR;
  }
  return undefined;
}

function trustDomainNameError(name: string): string | undefined {
  if (name === '') return ERR_MISSING_TRUST_DOMAIN;
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) return ERR_BAD_TRUST_DOMAIN_CHAR;
  }
  if (name.length > TRUST_DOMAIN_MAX_BYTES) return ERR_TRUST_DOMAIN_TOO_LONG;
  return undefined;
}

/** Builds the ID of an already validated trust domain name and path, enforcing the overall length cap. */
function makeId(trustDomain: string, path: string): SpiffeId {
  if (SCHEME_PREFIX_LENGTH + trustDomain.length + path.length > SPIFFE_ID_MAX_BYTES) {
    throw new SpiffeIdError(ERR_ID_TOO_LONG);
  }
  return SpiffeId.unsafeCreate(trustDomain, path);
}

function throwIf(error: string | undefined): void {
  if (error !== undefined) throw new SpiffeIdError(error);
}

/** Parses a SPIFFE ID with go-spiffe's rules (`spiffeid.FromString`); throws {@link SpiffeIdError} with go-spiffe's message. */
export function parseSpiffeId(input: string): SpiffeId {
  const pathStart = scanSpiffeId(input);
  if (typeof pathStart === 'string') throw new SpiffeIdError(pathStart);
  return SpiffeId.unsafeCreate(input.slice(SCHEME_PREFIX_LENGTH, pathStart), input.slice(pathStart));
}

/**
 * Returns go-spiffe's error text for `input`, or `undefined` when it is a valid SPIFFE ID.
 * For hot paths that branch on validity without paying for an exception.
 */
export function spiffeIdError(input: string): string | undefined {
  const pathStart = scanSpiffeId(input);
  return typeof pathStart === 'string' ? pathStart : undefined;
}

/** True when `input` is a valid SPIFFE ID (`parseSpiffeId` would succeed). */
export function isValidSpiffeId(input: string): boolean {
  return typeof scanSpiffeId(input) === 'number';
}

/**
 * Parses a trust domain name, or the trust domain of a SPIFFE ID (`spiffeid.TrustDomainFromString`).
 * Input containing `:/` is parsed as a whole SPIFFE ID, so `spiffe:/x` reports the bad scheme, not a bad char.
 */
export function parseTrustDomain(input: string): string {
  if (input.includes(':/')) return parseSpiffeId(input).trustDomain;
  throwIf(trustDomainNameError(input));
  return input;
}

/** Validates a SPIFFE ID path (`spiffeid.ValidatePath`); `''` (no path) is valid. Throws {@link SpiffeIdError}. */
export function validateSpiffePath(path: string): void {
  throwIf(pathError(path, 0));
}

/** Validates one path segment, without slashes (`spiffeid.ValidatePathSegment`). Throws {@link SpiffeIdError}. */
export function validateSpiffePathSegment(segment: string): void {
  throwIf(segmentError(segment));
}

/** Joins validated segments into a path, e.g. `('ns', 'shop')` → `/ns/shop` (`spiffeid.JoinPathSegments`). */
export function joinSpiffePathSegments(...segments: string[]): string {
  for (const segment of segments) throwIf(segmentError(segment));
  return segments.length === 0 ? '' : `/${segments.join('/')}`;
}

/**
 * Builds an ID from a trust domain name and path segments (`spiffeid.FromSegments`). Throws {@link SpiffeIdError};
 * like go-spiffe, the segments are checked before the trust domain.
 */
export function spiffeIdFromSegments(trustDomain: string, ...segments: string[]): SpiffeId {
  const path = joinSpiffePathSegments(...segments);
  throwIf(trustDomainNameError(trustDomain));
  return makeId(trustDomain, path);
}

/** Builds an ID from a trust domain name and a path such as `/ns/shop` (`spiffeid.FromPath`). Throws {@link SpiffeIdError}. */
export function spiffeIdFromPath(trustDomain: string, path: string): SpiffeId {
  throwIf(pathError(path, 0));
  throwIf(trustDomainNameError(trustDomain));
  return makeId(trustDomain, path);
}
