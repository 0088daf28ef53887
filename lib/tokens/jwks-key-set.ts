import { createHash } from 'node:crypto';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { ASYMMETRIC_ALGORITHMS } from './token-config.js';
import type { TokenAlgorithm } from './tokens.options.js';

/** Largest JWKS or SPIFFE bundle document read, in bytes. */
export const MAX_JWKS_BYTES = 1024 * 1024;
/** Most keys one document may hold. */
export const MAX_JWKS_KEYS = 256;

/** One imported public key, usable with one algorithm. */
interface KeyEntry {
  readonly kid: string | undefined;
  readonly alg: TokenAlgorithm;
  readonly key: CryptoKey;
}

/** Why a key could not be chosen for a token's header. */
export type KeyLookupProblem = 'unknown_kid' | 'ambiguous_key';

/**
 * An issuer's public keys, each imported once per document version for each algorithm it may verify: requests only
 * look keys up. Built by {@link importKeySet}; immutable.
 */
export class JwksKeySet {
  readonly #byKid = new Map<string, KeyEntry[]>();
  readonly #all: readonly KeyEntry[];

  /** @internal */
  constructor(
    entries: readonly KeyEntry[],
    /** SHA-256 of the document, hex: the same bytes are never imported twice. */
    readonly digest: string,
    /** The `kid`s present, for logs. */
    readonly kids: readonly string[],
  ) {
    this.#all = entries;
    for (const entry of entries) {
      if (entry.kid === undefined) continue;
      let list = this.#byKid.get(entry.kid);
      if (list === undefined) this.#byKid.set(entry.kid, (list = []));
      list.push(entry);
    }
  }

  /** The algorithms some key of the set can verify. */
  get algorithms(): ReadonlySet<TokenAlgorithm> {
    return new Set(this.#all.map((entry) => entry.alg));
  }

  /** The key for a token header's `kid` and `alg`, or why there is none. Without `kid`, only a single candidate. */
  find(kid: string | undefined, alg: string): CryptoKey | KeyLookupProblem {
    const candidates = (kid === undefined ? this.#all : (this.#byKid.get(kid) ?? [])).filter((entry) => entry.alg === alg);
    if (candidates.length === 0) return 'unknown_kid';
    if (candidates.length > 1) return 'ambiguous_key';
    return candidates[0]!.key;
  }
}

/** Curve → the one algorithm it verifies. A Map: a `crv` such as `constructor` must not find an inherited member. */
const CURVE_ALGORITHMS: ReadonlyMap<string, TokenAlgorithm> = new Map([
  ['P-256', 'ES256'],
  ['P-384', 'ES384'],
  ['P-521', 'ES512'],
  ['Ed25519', 'EdDSA'],
]);
const RSA_ALGORITHMS: readonly TokenAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const MIN_RSA_MODULUS_BITS = 2048;

/**
 * The bit length of a JWK's base64url `n`, leading zero octets and bits not counted: the importer accepts a padded
 * `n` as the same, smaller, modulus, so its octet count says nothing about the key's strength. 0 when not a string.
 */
function modulusBits(n: unknown): number {
  if (typeof n !== 'string') return 0;
  const octets = Buffer.from(n, 'base64url');
  let first = 0;
  while (first < octets.length && octets[first] === 0) first++;
  if (first === octets.length) return 0;
  return (octets.length - first - 1) * 8 + (32 - Math.clz32(octets[first]!));
}

function invalid(source: string, problem: string, fix: string): MtlsConfigError {
  return new MtlsConfigError('ERR_MTLS_JWKS_INVALID', `${source}: ${problem}. Fix: ${fix}`);
}

/** The algorithms a public JWK can verify, before pinning; throws for a key that must never be trusted. */
function algorithmsOfKey(jwk: Record<string, unknown>, index: number, source: string): readonly TokenAlgorithm[] {
  const where = `keys[${index}]`;
  if (jwk.kty === 'oct') {
    throw invalid(
      source,
      `${where} is a symmetric ("oct") key`,
      'publish only public keys of an asymmetric algorithm (RS/PS/ES/EdDSA)',
    );
  }
  if (jwk.d !== undefined || jwk.p !== undefined || jwk.priv !== undefined) {
    throw invalid(
      source,
      `${where} holds private key material`,
      'publish the public key only, and rotate this key: it has leaked',
    );
  }
  if (jwk.alg !== undefined) {
    if (typeof jwk.alg !== 'string' || !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(jwk.alg)) {
      throw invalid(source, `${where} has "alg" ${JSON.stringify(jwk.alg)}`, `use one of ${ASYMMETRIC_ALGORITHMS.join(', ')}`);
    }
  }
  let possible: readonly TokenAlgorithm[];
  if (jwk.kty === 'RSA') {
    if (modulusBits(jwk.n) < MIN_RSA_MODULUS_BITS)
      throw invalid(source, `${where} is an RSA key shorter than 2048 bits`, 'use RSA keys of 2048 bits or more');
    possible = RSA_ALGORITHMS;
  } else if ((jwk.kty === 'EC' || jwk.kty === 'OKP') && typeof jwk.crv === 'string' && CURVE_ALGORITHMS.has(jwk.crv)) {
    possible = [CURVE_ALGORITHMS.get(jwk.crv)!];
  } else {
    // Key types this verifier cannot use (Ed448, ML-DSA, …): not trusted, not an error either.
    return [];
  }
  if (jwk.alg !== undefined) return possible.includes(jwk.alg as TokenAlgorithm) ? [jwk.alg as TokenAlgorithm] : [];
  return possible;
}

/**
 * Parses a JWKS or a SPIFFE trust bundle (RFC 7517 document whose keys carry `use: "x509-svid"` or `"jwt-svid"`) and
 * imports every signing key for every algorithm it may verify among `pinned`. `jwt-svid` keys are normalised to plain
 * signing keys (jose's JWKS helper skips any `use` but `sig`); `x509-svid` and `enc` keys are left out. A symmetric or
 * private key anywhere refuses the whole document, as does one without any usable key. `source` names it in errors.
 */
export async function importKeySet(
  text: string | Uint8Array,
  source: string,
  pinned: readonly TokenAlgorithm[] | undefined,
): Promise<JwksKeySet> {
  const bytes = typeof text === 'string' ? Buffer.from(text) : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  if (bytes.length > MAX_JWKS_BYTES)
    throw invalid(source, `the document is larger than ${MAX_JWKS_BYTES} bytes`, 'publish only the current keys');
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw invalid(source, `not JSON (${(error as Error).message})`, 'write a JWKS: {"keys":[…]}');
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (typeof document !== 'object' || document === null || !Array.isArray(keys)) {
    throw invalid(source, 'not a JWKS or SPIFFE bundle: no "keys" array', 'write {"keys":[…]}');
  }
  if (keys.length > MAX_JWKS_KEYS)
    throw invalid(source, `${keys.length} keys (at most ${MAX_JWKS_KEYS})`, 'publish only the current keys');
  const entries: KeyEntry[] = [];
  const kids = new Set<string>();
  for (const [index, value] of keys.entries()) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw invalid(source, `keys[${index}] is not a JWK object`, 'write each key as a JSON object');
    }
    const jwk = value as Record<string, unknown>;
    const algorithms = algorithmsOfKey(jwk, index, source);
    if (jwk.use !== undefined && jwk.use !== 'sig' && jwk.use !== 'jwt-svid') continue;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string')
      throw invalid(source, `keys[${index}].kid is not a string`, 'use a string "kid"');
    const kid = jwk.kid as string | undefined;
    // A SPIFFE bundle's `use: "jwt-svid"` is this key's purpose, not a JWS `use`: the imported key is a plain signing key.
    const { use: _use, key_ops: _ops, alg: _alg, ...publicJwk } = jwk;
    for (const alg of algorithms) {
      if (pinned !== undefined && !pinned.includes(alg)) continue;
      let key: CryptoKey;
      try {
        key = (await importJWK(publicJwk as JWK, alg)) as CryptoKey;
      } catch (error) {
        throw invalid(
          source,
          `keys[${index}]${kid === undefined ? '' : ` (kid ${JSON.stringify(kid)})`} cannot be imported for ${alg}: ${(error as Error).message}`,
          'publish a valid public JWK',
        );
      }
      entries.push({ kid, alg, key });
      if (kid !== undefined) kids.add(kid);
    }
  }
  if (entries.length === 0) {
    throw invalid(
      source,
      `no signing key usable${pinned === undefined ? '' : ` with ${pinned.join(', ')}`}`,
      'publish at least one public RSA (2048+), EC (P-256/384/521) or Ed25519 key with "use" absent, "sig" or "jwt-svid"',
    );
  }
  return new JwksKeySet(entries, createHash('sha256').update(bytes).digest('hex'), [...kids]);
}
