import { describe, expect, it } from 'vitest';
import { TestTokenIssuer } from '../../lib/testing/test-token-issuer.js';
import { importKeySet, type JwksKeySet } from '../../lib/tokens/jwks-key-set.js';
import { resolveTokenOptions } from '../../lib/tokens/token-config.js';
import { TokenVerifier, type KeySource, type TokenPeer, type TokenRequirement } from '../../lib/tokens/token-verifier.js';
import type { TokenIssuerOptions } from '../../lib/tokens/tokens.options.js';
import { reusableUntil } from '../../lib/tokens/verified-tokens.js';
import { TokenError } from '../../lib/errors/mtls.errors.js';

describe('reusableUntil: the second from which the time claims refuse a verified token (as jose counts)', () => {
  it.each([
    ['exp + tolerance', { exp: 1_000, iat: 900 }, 30, undefined, 1_030],
    ['no tolerance', { exp: 1_000, iat: 900 }, 0, undefined, 1_000],
    ['a maximum age that ends first', { exp: 1_000, iat: 900 }, 30, 60, 990],
    ['a maximum age that ends later', { exp: 1_000, iat: 900 }, 30, 600, 1_030],
  ])('%s', (_name, claims, tolerance, maxAge, until) => {
    expect(reusableUntil(claims, tolerance, maxAge)).toBe(until);
  });
});

/** The issuer's current key set, replaced the way a JWKS file or URL rotation replaces it (a new import). */
class SwappableKeys implements KeySource {
  constructor(public current: JwksKeySet) {}
  keys(): Promise<JwksKeySet> {
    return Promise.resolve(this.current);
  }
  refreshForUnknownKid(): Promise<JwksKeySet> {
    return Promise.resolve(this.current);
  }
}

const AUDIENCE = 'orders';
const NONE: TokenRequirement = { bind: 'none', scopes: [] };
const PEER: TokenPeer = { spiffeId: 'spiffe://shop.test/ns/web/sa/frontend', fingerprint256: 'AB:CD' };

async function setup(options: Partial<TokenIssuerOptions> = {}) {
  const minter = await TestTokenIssuer.create();
  const importJwks = () => importKeySet(JSON.stringify(minter.jwks()), 'test JWKS', undefined);
  const keys = new SwappableKeys(await importJwks());
  const issuer = resolveTokenOptions({
    issuers: { users: { issuer: minter.issuer, audience: AUDIENCE, jwks: '/unused/jwks.json', ...options } },
  }).issuers.get('users')!;
  return { minter, keys, importJwks, verifier: new TokenVerifier(issuer, keys) };
}

function claimsOf(result: unknown): object {
  if (result instanceof TokenError) throw new Error(`refused: ${result.message}`);
  return (result as { claims: object }).claims;
}

describe('a token presented again', () => {
  it('is not verified again: the second call returns the claims of the first verification', async () => {
    const { minter, verifier } = await setup();
    const token = await minter.mint({ sub: 'alice', aud: AUDIENCE });
    const first = claimsOf(await verifier.verify(token, PEER, NONE));
    expect(claimsOf(await verifier.verify(token, PEER, NONE))).toBe(first);
    // Another token with the same claims is another entry.
    const other = await minter.mint({ sub: 'alice', aud: AUDIENCE, jti: 'x' });
    expect(claimsOf(await verifier.verify(other, PEER, NONE))).not.toBe(first);
  });

  it('is refused once the key that verified it is removed from the issuer’s keys', async () => {
    const { minter, keys, importJwks, verifier } = await setup();
    const token = await minter.mint({ sub: 'alice', aud: AUDIENCE });
    claimsOf(await verifier.verify(token, PEER, NONE));
    const old = minter.currentKey.kid;
    await minter.rotate();
    minter.removeKey(old);
    keys.current = await importJwks();
    expect(await verifier.verify(token, PEER, NONE)).toMatchObject({ code: 'ERR_MTLS_TOKEN_INVALID', reason: 'unknown_kid' });
  });

  it('is refused once its kid names another key (an issuer that reuses a kid for a new key)', async () => {
    const { minter, keys, verifier } = await setup();
    const token = await minter.mint({ sub: 'alice', aud: AUDIENCE });
    claimsOf(await verifier.verify(token, PEER, NONE));
    const replacement = await TestTokenIssuer.newKey('ES256', minter.currentKey.kid);
    keys.current = await importKeySet(JSON.stringify({ keys: [replacement.publicJwk] }), 'test JWKS', undefined);
    expect(await verifier.verify(token, PEER, NONE)).toMatchObject({ code: 'ERR_MTLS_TOKEN_INVALID', reason: 'signature' });
  });

  it('is verified again, and accepted, when the key set is re-imported with the same key', async () => {
    const { minter, keys, importJwks, verifier } = await setup();
    const token = await minter.mint({ sub: 'alice', aud: AUDIENCE });
    const first = claimsOf(await verifier.verify(token, PEER, NONE));
    keys.current = await importJwks();
    const again = claimsOf(await verifier.verify(token, PEER, NONE));
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });

  it('is refused once it expires (tolerance 0), however recently it was verified', async () => {
    const { minter, verifier } = await setup({ clockToleranceSec: 0 });
    const token = await minter.mint({ sub: 'alice', aud: AUDIENCE }, { expiresInSec: 1 });
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    claimsOf(await verifier.verify(token, PEER, NONE));
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 50));
    expect(await verifier.verify(token, PEER, NONE)).toMatchObject({ code: 'ERR_MTLS_TOKEN_INVALID', reason: 'expired' });
  });

  it("is still checked against this request: the connection's certificate, the route's typ and scopes", async () => {
    const { minter, verifier } = await setup();
    const thumbprint = Buffer.from('ABCD', 'hex').toString('base64url').padEnd(43, 'A');
    const bound = await minter.mint({ sub: 'alice', aud: AUDIENCE, scope: 'orders:read', cnf: { 'x5t#S256': thumbprint } });
    const owner: TokenPeer = { ...PEER, fingerprint256: Buffer.from(thumbprint, 'base64url').toString('hex') };
    claimsOf(await verifier.verify(bound, owner, { bind: 'certificate', scopes: ['orders:read'] }));
    expect(await verifier.verify(bound, PEER, { bind: 'certificate', scopes: [] })).toMatchObject({
      code: 'ERR_MTLS_TOKEN_UNBOUND',
      reason: 'cnf_mismatch',
    });
    expect(await verifier.verify(bound, owner, { bind: 'certificate', scopes: ['orders:write'] })).toMatchObject({
      code: 'ERR_MTLS_TOKEN_SCOPE',
    });
    const atJwt = await minter.mint({ sub: PEER.spiffeId, aud: AUDIENCE }, { header: { typ: 'at+jwt' } });
    claimsOf(await verifier.verify(atJwt, PEER, NONE));
    expect(await verifier.verify(atJwt, PEER, { bind: 'peer-id', scopes: [] })).toMatchObject({ reason: 'typ' });
  });
});
