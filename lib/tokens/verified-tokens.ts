import { createHash } from 'node:crypto';
import type { CryptoKey, JWTHeaderParameters, JWTPayload } from 'jose';
import { LruMap } from '../client/lru-map.js';

/**
 * Tokens whose signature and claims were verified, so that a token presented again (a relayed user token on every
 * request of a session, a JWT-SVID until it rotates) costs a lookup instead of a signature check: ~240 µs of CPU per
 * ES256 token through jose and WebCrypto on this project's machine. What a later use must still check is kept with
 * each entry and checked on every use: the time claims (by the clock), the key (the issuer's keys must still resolve
 * the token's `kid` and `alg` to the very key object that verified it, so a rotated or removed key sends the token
 * through a full verification again), then everything about this request (`typ` for the route, the binding to this
 * connection, the scopes), which the verifier checks on every request anyway.
 */

/** Tokens kept per issuer, least recently used dropped first. Entries hold a digest, claims and references, not the token. */
export const VERIFIED_TOKENS_PER_ISSUER = 1_000;

/** One verified token. */
export interface VerifiedTokenEntry {
  readonly claims: JWTPayload;
  readonly header: JWTHeaderParameters;
  /** The key that verified the signature. */
  readonly key: CryptoKey;
  /** Epoch seconds from which the time claims refuse the token (see {@link reusableUntil}). */
  readonly until: number;
}

/**
 * Epoch seconds from which a token verified now may no longer be reused: jose refuses it once `exp <= now − tolerance`,
 * and with a maximum age once `now − iat − tolerance > maxAge`. Reuse stops at `exp + tolerance` and at
 * `iat + maxAge + tolerance`, whichever comes first (the second a second early: a full verification then decides).
 * `nbf` and an `iat` in the future need nothing: they were met at verification, and time only moves forward.
 */
export function reusableUntil(claims: JWTPayload, toleranceSec: number, maxTokenAgeSec: number | undefined): number {
  // exp is required and was checked to be a number; iat too when a maximum age is set.
  let until = (claims.exp as number) + toleranceSec;
  if (maxTokenAgeSec !== undefined) until = Math.min(until, (claims.iat as number) + maxTokenAgeSec + toleranceSec);
  return until;
}

/** The verified tokens of one issuer, by the SHA-256 of the token: memory stays bounded whatever the tokens' size. */
export class VerifiedTokens {
  readonly #entries: LruMap<string, VerifiedTokenEntry>;

  constructor(capacity: number = VERIFIED_TOKENS_PER_ISSUER) {
    this.#entries = new LruMap(capacity);
  }

  /** The cache key of `token`. */
  static digest(token: string): string {
    return createHash('sha256').update(token).digest('base64url');
  }

  /** The entry of `digest` while its time claims allow reuse at `nowSec` (epoch seconds, whole as jose counts them). */
  get(digest: string, nowSec: number): VerifiedTokenEntry | undefined {
    const entry = this.#entries.get(digest);
    return entry !== undefined && nowSec < entry.until ? entry : undefined;
  }

  set(digest: string, entry: VerifiedTokenEntry): void {
    this.#entries.set(digest, entry);
  }
}
