import { timingSafeEqual } from 'node:crypto';
import {
  decodeProtectedHeader,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JWTHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import { clipped } from '../format/describe-value.js';
import { TokenError, type TokenErrorCode } from '../errors/mtls.errors.js';
import { parseSpiffeId, spiffeIdError } from '../identity/spiffe-id.js';
import type { JwksKeySet } from './jwks-key-set.js';
import { ASYMMETRIC_ALGORITHMS, type ResolvedTokenIssuer } from './token-config.js';
import type { TokenBinding } from './tokens.options.js';
import { reusableUntil, VerifiedTokens, type VerifiedTokenEntry } from './verified-tokens.js';

/** What an issuer's keys come from: the current set, and a refresh when a token names an unknown key. */
export interface KeySource {
  /** The key set to verify with; rejects when none is available (a remote source that never answered). */
  keys(): Promise<JwksKeySet>;
  /** A fresher key set after a token named an unknown `kid`; rate-limited by the source, so possibly the same one. */
  refreshForUnknownKid(): Promise<JwksKeySet>;
}

/** Why a trust domain has no key set to verify with: no bundles received yet, or none (or no usable key) for it. */
export type BundleProblem = 'jwks_unavailable' | 'no_bundle';

/** Keys by trust domain (SPIFFE JWT bundles): a JWT-SVID is verified with the bundle of one trust domain. */
export interface TrustDomainKeySource {
  /** The key set of `trustDomain`'s JWT bundle (a validated name), or why there is none. Never rejects. */
  keysFor(trustDomain: string): Promise<JwksKeySet | BundleProblem>;
}

/** What the connection proves about the caller, read once per connection. */
export interface TokenPeer {
  /** The peer's SPIFFE ID, if it has one. */
  readonly spiffeId: string | undefined;
  /** SHA-256 of the peer's leaf certificate DER, as `AB:CD:…` hex. */
  readonly fingerprint256: string;
}

/** A route's token requirement, compiled at startup. */
export interface TokenRequirement {
  readonly bind: TokenBinding;
  readonly scopes: readonly string[];
}

/** A token that passed every check; handed to handlers by `@Token()`. */
export interface VerifiedToken {
  /** The configured issuer name. */
  readonly issuerName: string;
  /** The verified claims. */
  readonly claims: Readonly<JWTPayload>;
  /** The compact token, to relay it (e.g. `MtlsHttpClient` option `token`). Never log it. */
  readonly token: string;
}

type KeyLookupReason = 'unknown_kid' | 'ambiguous_key' | 'jwks_unavailable' | 'kid_missing' | 'sub_invalid' | 'no_bundle';

/** Thrown from the key resolver; carried through jose and mapped to a reason. */
class KeyLookupFailure extends Error {
  constructor(
    readonly reason: KeyLookupReason,
    /** The trust domain whose JWT bundle was looked up (a validated name). */
    readonly trustDomain?: string,
  ) {
    super(reason);
  }
}

/** The trust domain of a SPIFFE ID, or undefined when `value` is not one. */
export function trustDomainOfSpiffeId(value: unknown): string | undefined {
  // Checked first: a token's claim is untrusted input, and a refusal should not cost an exception.
  if (typeof value !== 'string' || spiffeIdError(value) !== undefined) return undefined;
  return parseSpiffeId(value).trustDomain;
}

/**
 * The trust domain of an unverified JWT payload's `sub`, to choose the bundle its signature is checked with (as
 * go-spiffe's `jwtsvid.ParseAndValidate` does); the verified `sub` is checked again after the signature.
 */
function subTrustDomain(payload: string | Uint8Array): string {
  let claims: unknown;
  try {
    // A compact JWT's payload is base64url text (jwtVerify refuses unencoded payloads after this lookup).
    if (typeof payload !== 'string') throw new TypeError('unencoded payload');
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new KeyLookupFailure('sub_invalid');
  }
  const trustDomain = trustDomainOfSpiffeId((claims as { sub?: unknown } | null)?.sub);
  if (trustDomain === undefined) throw new KeyLookupFailure('sub_invalid');
  return trustDomain;
}

const MAX_LOGGED_CHARS = 128;

/** A value from a token made safe for one log line: printable ASCII, bounded, quoted. */
export function loggable(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return JSON.stringify(clipped(value, MAX_LOGGED_CHARS)).replace(/[^\x20-\x7e]/g, '?');
}

/** `AB:CD:…` → the 32 bytes, cached: a peer identity is shared by every request of its connections. */
const thumbprints = new WeakMap<TokenPeer, Buffer>();
function thumbprintOf(peer: TokenPeer): Buffer {
  let bytes = thumbprints.get(peer);
  if (bytes === undefined) {
    bytes = Buffer.from(peer.fingerprint256.replace(/:/g, ''), 'hex');
    thumbprints.set(peer, bytes);
  }
  return bytes;
}

const X5T_S256 = /^[A-Za-z0-9_-]{43}$/;

/**
 * Verifies tokens of one issuer: signature with the issuer's public keys (algorithms pinned), `iss`, `aud`, `exp`
 * (always required), `nbf`, `iat` age, `typ`, then the binding to this connection and the route's scopes. Built once
 * per issuer; each call looks keys up, never imports them. A token verified before is not verified again while its
 * time claims allow and its key is still the issuer's ({@link VerifiedTokens}); `typ`, the binding and the scopes are
 * checked on every call. Never throws: a failure is a {@link TokenError}.
 */
export class TokenVerifier {
  readonly #options: JWTVerifyOptions;
  readonly #issuer: ResolvedTokenIssuer;
  readonly #getKey: (header: JWTHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;
  /** With JWT bundles: the configured trust domain, or undefined for the trust domain of each token's `sub`. */
  readonly #trustDomain: string | undefined;
  readonly #jwtSvid: boolean;
  readonly #verified = new VerifiedTokens();

  /** `source` is a {@link TrustDomainKeySource} exactly when the issuer's keys come from `jwks: { workloadApi }`. */
  constructor(issuer: ResolvedTokenIssuer, source: KeySource | TrustDomainKeySource) {
    this.#issuer = issuer;
    this.#jwtSvid = issuer.jwks.kind === 'workloadApi';
    this.#trustDomain = issuer.jwks.kind === 'workloadApi' ? issuer.jwks.trustDomain : undefined;
    this.#options = {
      ...(issuer.issuer === undefined ? {} : { issuer: issuer.issuer }),
      audience: [...issuer.audience],
      algorithms: [...(issuer.algorithms ?? ASYMMETRIC_ALGORITHMS)],
      clockTolerance: issuer.clockToleranceSec,
      requiredClaims: ['exp', 'aud', ...(issuer.issuer === undefined ? [] : ['iss']), ...(this.#jwtSvid ? ['sub'] : [])],
      ...(issuer.maxTokenAgeSec === undefined ? {} : { maxTokenAge: issuer.maxTokenAgeSec }),
    };
    if ('keysFor' in source) {
      const bundles = source;
      this.#getKey = (header, token) => this.#bundleKey(bundles, header.kid, header.alg ?? '', token.payload);
    } else {
      const keys = source;
      this.#getKey = (header) => this.#key(keys, header.kid, header.alg ?? '');
    }
  }

  /** The issuer this verifier checks. */
  get issuer(): ResolvedTokenIssuer {
    return this.#issuer;
  }

  /** Verifies `token` for a request that arrived from `peer` on a route requiring `requirement`. */
  async verify(token: string, peer: TokenPeer, requirement: TokenRequirement): Promise<VerifiedToken | TokenError> {
    const digest = VerifiedTokens.digest(token);
    let verified = await this.#reusable(digest, token);
    if (verified === undefined) {
      try {
        const result = await jwtVerify(token, this.#getKey, this.#options);
        verified = {
          claims: result.payload,
          header: result.protectedHeader,
          key: result.key,
          until: reusableUntil(result.payload, this.#issuer.clockToleranceSec, this.#issuer.maxTokenAgeSec),
        };
      } catch (error) {
        return this.#failure(token, error);
      }
      this.#verified.set(digest, verified);
    }
    const { claims } = verified;
    const typ = verified.header.typ;
    const sub = loggable(claims.sub);
    const refuse = (code: TokenErrorCode, reason: string, message: string, scope?: string): TokenError =>
      new TokenError(code, message, { issuer: this.#issuer.name, reason, kid: kidOf(token), sub, scope });
    const typProblem = this.#typProblem(typ, requirement.bind);
    if (typProblem !== undefined) return refuse('ERR_MTLS_TOKEN_INVALID', 'typ', typProblem);
    if (this.#jwtSvid) {
      const trustDomain = trustDomainOfSpiffeId(claims.sub);
      if (trustDomain === undefined)
        return refuse('ERR_MTLS_TOKEN_INVALID', 'sub_invalid', 'a JWT-SVID "sub" must be a SPIFFE ID');
      if (this.#trustDomain !== undefined && trustDomain !== this.#trustDomain) {
        return refuse(
          'ERR_MTLS_TOKEN_UNBOUND',
          'sub_trust_domain',
          `JWT-SVID "sub" is not in trust domain ${this.#trustDomain}, whose keys verified it`,
        );
      }
    }
    if (requirement.bind === 'certificate') {
      const cnf = claims.cnf as Record<string, unknown> | undefined;
      const x5t = typeof cnf === 'object' && cnf !== null ? cnf['x5t#S256'] : undefined;
      if (typeof x5t !== 'string')
        return refuse('ERR_MTLS_TOKEN_UNBOUND', 'cnf_missing', 'token has no cnf["x5t#S256"] (RFC 8705)');
      const expected = thumbprintOf(peer);
      const presented = X5T_S256.test(x5t) ? Buffer.from(x5t, 'base64url') : undefined;
      // Length first (no secret in it), then constant time: the thumbprint is compared like a MAC.
      if (presented === undefined || presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
        return refuse('ERR_MTLS_TOKEN_UNBOUND', 'cnf_mismatch', "token is bound to another certificate than this connection's");
      }
    } else if (requirement.bind === 'peer-id') {
      if (peer.spiffeId === undefined) {
        return refuse('ERR_MTLS_TOKEN_UNBOUND', 'sub_mismatch', 'peer has no SPIFFE ID to match the JWT-SVID "sub"');
      }
      if (claims.sub !== peer.spiffeId) {
        return refuse('ERR_MTLS_TOKEN_UNBOUND', 'sub_mismatch', `JWT-SVID "sub" is not the peer's SPIFFE ID ${peer.spiffeId}`);
      }
    }
    if (requirement.scopes.length > 0) {
      const granted = scopesOf(claims);
      if (!requirement.scopes.every((scope) => granted.has(scope))) {
        return refuse(
          'ERR_MTLS_TOKEN_SCOPE',
          'insufficient_scope',
          `token lacks a required scope (${requirement.scopes.join(' ')})`,
          requirement.scopes.join(' '),
        );
      }
    }
    return { issuerName: this.#issuer.name, claims, token };
  }

  /**
   * The earlier verification of the same token, while its time claims allow and the issuer's keys still resolve its
   * `kid` and `alg` to the key that verified it; else undefined, and the token is verified in full.
   */
  async #reusable(digest: string, token: string): Promise<VerifiedTokenEntry | undefined> {
    const entry = this.#verified.get(digest, Math.floor(Date.now() / 1000));
    if (entry === undefined) return undefined;
    // What the key lookup reads of a token: the header, and for JWT bundles the payload (its sub's trust domain).
    const [, payload = ''] = token.split('.', 2);
    try {
      const key = await this.#getKey(entry.header, { payload, signature: '' });
      return key === entry.key ? entry : undefined;
    } catch {
      return undefined;
    }
  }

  /** A JWT-SVID's key: by `kid` (required), in the JWT bundle of the configured trust domain or of `sub`'s. */
  async #bundleKey(
    source: TrustDomainKeySource,
    kid: string | undefined,
    alg: string,
    payload: string | Uint8Array,
  ): Promise<CryptoKey> {
    if (kid === undefined || kid === '') throw new KeyLookupFailure('kid_missing');
    const trustDomain = this.#trustDomain ?? subTrustDomain(payload);
    const keys = await source.keysFor(trustDomain);
    if (typeof keys === 'string') throw new KeyLookupFailure(keys, trustDomain);
    const found = keys.find(kid, alg);
    if (typeof found === 'string') throw new KeyLookupFailure(found, trustDomain);
    return found;
  }

  async #key(source: KeySource, kid: string | undefined, alg: string): Promise<CryptoKey> {
    let keys: JwksKeySet;
    try {
      keys = await source.keys();
    } catch {
      throw new KeyLookupFailure('jwks_unavailable');
    }
    let found = keys.find(kid, alg);
    if (found === 'unknown_kid') {
      try {
        found = (await source.refreshForUnknownKid()).find(kid, alg);
      } catch {
        throw new KeyLookupFailure('jwks_unavailable');
      }
    }
    if (typeof found === 'string') throw new KeyLookupFailure(found);
    return found;
  }

  #typProblem(typ: string | undefined, bind: TokenBinding): string | undefined {
    const normalized = typ === undefined ? undefined : typ.toLowerCase().replace(/^application\//, '');
    if (this.#issuer.typ !== undefined) {
      const expected = this.#issuer.typ.toLowerCase().replace(/^application\//, '');
      return normalized === expected ? undefined : `token "typ" is not ${JSON.stringify(this.#issuer.typ)}`;
    }
    if (bind === 'peer-id' && normalized !== undefined && normalized !== 'jwt' && normalized !== 'jose') {
      return 'a JWT-SVID "typ" must be absent, JWT or JOSE';
    }
    return undefined;
  }

  #failure(token: string, error: unknown): TokenError {
    const [reason, message] = describeFailure(error);
    // `sub` only from a payload whose signature jose verified (claim failures come after the signature check).
    const payload = (error as { payload?: JWTPayload } | null)?.payload;
    return new TokenError('ERR_MTLS_TOKEN_INVALID', message, {
      issuer: this.#issuer.name,
      reason,
      kid: kidOf(token),
      sub: reason === 'signature' ? undefined : loggable(payload?.sub),
    });
  }
}

function kidOf(token: string): string | undefined {
  try {
    return loggable(decodeProtectedHeader(token).kid);
  } catch {
    return undefined;
  }
}

/** The stable reason and a fixed message for a jose or key lookup failure; jose's own texts name claims, never values. */
function describeFailure(error: unknown): readonly [reason: string, message: string] {
  if (error instanceof KeyLookupFailure) {
    const messages: Readonly<Record<KeyLookupReason, string>> = {
      unknown_kid: 'no key of the issuer matches the token\'s "kid" and "alg"',
      ambiguous_key: 'several keys of the issuer match a token without "kid"',
      jwks_unavailable: "the issuer's keys are not available",
      kid_missing: 'a JWT-SVID must name its key ("kid")',
      sub_invalid: 'a JWT-SVID "sub" must be a SPIFFE ID',
      no_bundle: 'no JWT bundle with a usable key for the trust domain',
    };
    const { reason, trustDomain } = error;
    if (trustDomain === undefined) return [reason, messages[reason]];
    return [reason, `${messages[reason]}${reason === 'no_bundle' ? ` ${trustDomain}` : ` (JWT bundle of ${trustDomain})`}`];
  }
  const { code, claim } = (error ?? {}) as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return ['expired', 'token has expired'];
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'nbf') return ['not_yet_valid', 'token is not valid yet ("nbf")'];
      if (claim === 'iss') return ['issuer', 'token "iss" is not the configured issuer'];
      if (claim === 'aud') return ['audience', 'token "aud" does not name this service'];
      if (claim === 'iat') return ['too_old', 'token "iat" is missing, in the future or too old'];
      return ['claims', `token claim ${JSON.stringify(String(claim)).slice(0, 40)} is missing or invalid`];
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return ['algorithm', 'token "alg" is not an accepted algorithm of the issuer'];
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return ['signature', 'token signature does not verify'];
    default:
      return ['malformed', 'token is not a well-formed signed JWT'];
  }
}

function scopesOf(claims: JWTPayload): ReadonlySet<string> {
  const scopes = new Set<string>();
  if (typeof claims.scope === 'string') for (const scope of claims.scope.split(' ')) if (scope !== '') scopes.add(scope);
  if (Array.isArray(claims.scp)) for (const scope of claims.scp) if (typeof scope === 'string') scopes.add(scope);
  return scopes;
}
