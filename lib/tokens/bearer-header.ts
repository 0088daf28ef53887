/** Largest `Authorization` header value read, in bytes: longer ones are refused unread. */
export const MAX_AUTHORIZATION_BYTES = 16 * 1024;

/** Why no bearer token could be taken from a request; each is a stable metric reason. */
export type BearerProblem = 'missing' | 'scheme' | 'duplicate_header' | 'too_large' | 'malformed';

/** The outcome of reading a request's `Authorization` header. */
export type BearerResult = { readonly token: string } | { readonly problem: BearerProblem };

/** What {@link bearerToken} reads of a request: Node's raw header list and, as a fallback, the parsed headers. */
export interface HeaderSource {
  readonly rawHeaders?: readonly string[] | undefined;
  readonly headers?: Readonly<Record<string, string | string[] | undefined>> | undefined;
}

// The credentials of RFC 6750 §2.1 as a JWS compact serialisation: three non-empty base64url parts.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const BEARER = /^bearer(?=[ \t])/i;

/**
 * The bearer token of a request, or why there is none. Reads `rawHeaders` because Node keeps only the first of two
 * `Authorization` headers in `headers`: a second one would otherwise go unseen. The scheme is case-insensitive
 * (RFC 9110 §11.1); the token must be a compact JWS. Never throws, whatever the header holds.
 */
export function bearerToken(request: HeaderSource): BearerResult {
  let value: string | undefined;
  const raw = request.rawHeaders;
  if (Array.isArray(raw)) {
    let count = 0;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i];
      if (typeof name === 'string' && name.length === 13 && name.toLowerCase() === 'authorization') {
        count++;
        value = raw[i + 1];
      }
    }
    if (count > 1) return { problem: 'duplicate_header' };
  } else {
    const header = request.headers?.authorization;
    if (Array.isArray(header)) {
      if (header.length > 1) return { problem: 'duplicate_header' };
      value = header[0];
    } else {
      value = header;
    }
  }
  if (typeof value !== 'string' || value.trim() === '') return { problem: 'missing' };
  // Characters, not bytes, are counted first: a value this long in characters is too long in bytes too.
  if (value.length > MAX_AUTHORIZATION_BYTES || Buffer.byteLength(value) > MAX_AUTHORIZATION_BYTES) {
    return { problem: 'too_large' };
  }
  if (!BEARER.test(value)) return { problem: 'scheme' };
  const token = value.slice(6).trim();
  if (!COMPACT_JWS.test(token)) return { problem: 'malformed' };
  return { token };
}
