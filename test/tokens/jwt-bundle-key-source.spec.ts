import { beforeAll, describe, expect, it } from 'vitest';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { TestTokenIssuer, type TestSigningKey } from '../../lib/testing/test-token-issuer.js';
import { JwtBundleKeySource, type JwtBundleDocument, type JwtBundleFeed } from '../../lib/tokens/jwt-bundle-key-source.js';
import { resolveTokenOptions } from '../../lib/tokens/token-config.js';
import { TokenVerifier, trustDomainOfSpiffeId, type TokenPeer } from '../../lib/tokens/token-verifier.js';
import type { MtlsTokensOptions } from '../../lib/tokens/tokens.options.js';

/*
 * The pure parts of JWT-SVID verification with Workload API JWT bundles: options, the trust domain of a `sub`, and
 * the verifier over a key source whose bundles are set in memory (the gRPC stream is tested in
 * workload-api-jwt-bundles.e2e.spec.ts). Keys and signatures are real.
 */

const FRONTEND = 'spiffe://shop.test/ns/web/sa/frontend';
const PARTNER = 'spiffe://partner.test/ns/web/sa/frontend';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const silent = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe('trustDomainOfSpiffeId', () => {
  it.each([
    [FRONTEND, 'shop.test'],
    ['spiffe://shop.test', 'shop.test'],
    ['spiffe://partner.test/a/b', 'partner.test'],
    ['SPIFFE://shop.test/a', undefined],
    ['spiffe://Shop.test/a', undefined],
    ['spiffe://shop.test/a/', undefined],
    ['https://shop.test/a', undefined],
    ['', undefined],
    [42, undefined],
    [undefined, undefined],
  ])('%j → %j', (value, expected) => {
    expect(trustDomainOfSpiffeId(value)).toBe(expected);
  });
});

describe('tokens.issuers.<name>.jwks.workloadApi options', () => {
  const withIssuer = (issuer: Record<string, unknown>) =>
    ({ issuers: { svid: { audience: ORDERS, ...issuer } } }) as unknown as MtlsTokensOptions;

  it.each([
    [{ workloadApi: {} }, { kind: 'workloadApi', trustDomain: undefined, socket: undefined }],
    [{ workloadApi: { trustDomain: 'shop.test' } }, { kind: 'workloadApi', trustDomain: 'shop.test', socket: undefined }],
    [
      { workloadApi: { trustDomain: 'spiffe://shop.test' } },
      { kind: 'workloadApi', trustDomain: 'shop.test', socket: undefined },
    ],
    [
      { workloadApi: { socket: 'unix:///run/agent.sock' } },
      { kind: 'workloadApi', trustDomain: undefined, socket: 'unix:///run/agent.sock' },
    ],
  ])('reads %j, with "issuer" optional', (jwks, expected) => {
    const svid = resolveTokenOptions(withIssuer({ jwks })).issuers.get('svid')!;
    expect(svid.jwks).toEqual(expected);
    expect(svid.issuer).toBeUndefined();
  });

  it.each([
    [
      { jwks: { workloadApi: { trustDomain: 'Shop.Test' } } },
      '"tokens.issuers.svid.jwks.workloadApi.trustDomain" is not a trust domain',
    ],
    [
      { jwks: { workloadApi: { trustDomain: '' } } },
      '"tokens.issuers.svid.jwks.workloadApi.trustDomain" must be a non-empty string',
    ],
    [{ jwks: { workloadApi: { socket: 7 } } }, '"tokens.issuers.svid.jwks.workloadApi.socket" must be a non-empty string'],
    [{ jwks: { workloadApi: { trustDomains: 'x' } } }, '"tokens.issuers.svid.jwks.workloadApi.trustDomains" is not an option'],
    [{ jwks: { workloadApi: 'unix:///run/agent.sock' } }, '"tokens.issuers.svid.jwks.workloadApi" must be an object'],
    [{ jwks: { workloadApi: {}, file: '/x' } }, '"tokens.issuers.svid.jwks.workloadApi" is not an option'],
    [{ jwks: { workloadApi: {} }, issuer: '' }, '"tokens.issuers.svid.issuer" must be a non-empty string'],
    [{ jwks: '/etc/jwks.json' }, '"tokens.issuers.svid.issuer" is missing'],
    [{ jwks: { file: '/etc/jwks.json' } }, '"tokens.issuers.svid.issuer" is missing'],
    [{ jwks: 'https://idp.test/jwks' }, '"tokens.issuers.svid.issuer" is missing'],
    [{ jwks: { url: 'https://idp.test/jwks' } }, '"tokens.issuers.svid.issuer" is missing'],
  ])('refuses %j, naming the option', (issuer, message) => {
    expect(() => resolveTokenOptions(withIssuer(issuer))).toThrow(
      expect.objectContaining({ code: 'ERR_MTLS_CONFIG_INVALID', message: expect.stringContaining(message) }),
    );
  });

  it('resolves the socket from SPIFFE_ENDPOINT_SOCKET in the module options, or names the option when neither is set', () => {
    const options = { credentials: { dir: '/tls' }, tokens: withIssuer({ jwks: { workloadApi: {} } }) };
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    try {
      process.env.SPIFFE_ENDPOINT_SOCKET = 'unix:///run/spire/agent.sock';
      expect(resolveMtlsOptions(options).tokens.issuers.get('svid')!.jwks).toMatchObject({
        socket: 'unix:///run/spire/agent.sock',
      });
      delete process.env.SPIFFE_ENDPOINT_SOCKET;
      expect(() => resolveMtlsOptions(options)).toThrow(/"tokens\.issuers\.svid\.jwks\.workloadApi" has no socket/);
      expect(() =>
        resolveMtlsOptions({ ...options, tokens: withIssuer({ jwks: { workloadApi: { socket: 'tcp://agent.local:1' } } }) }),
      ).toThrow(/"tokens\.issuers\.svid\.jwks\.workloadApi\.socket" .* must name an IP address/);
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
  });
});

/** JWT bundles held in memory: what the Workload API stream would have delivered last. */
class MemoryFeed implements JwtBundleFeed {
  currentJwtBundles: ReadonlyMap<string, JwtBundleDocument> | undefined;
  set(bundles: Record<string, readonly object[]> | undefined): void {
    this.currentJwtBundles =
      bundles === undefined ? undefined : new Map(Object.entries(bundles).map(([td, keys]) => [td, { keys }]));
  }
  jwtBundles(): Promise<unknown> {
    return this.currentJwtBundles === undefined
      ? Promise.reject(new Error('no bundles'))
      : Promise.resolve(this.currentJwtBundles);
  }
  close(): void {}
}

describe('TokenVerifier with JWT bundles', () => {
  let shopKey: TestSigningKey;
  let shopKey2: TestSigningKey;
  let partnerKey: TestSigningKey;
  let minter: TestTokenIssuer;
  const jwtSvidKey = (key: TestSigningKey) => ({ ...key.publicJwk, use: 'jwt-svid' });
  const peer = (spiffeId: string | undefined): TokenPeer => ({ spiffeId, fingerprint256: 'AB' });

  beforeAll(async () => {
    shopKey = await TestTokenIssuer.newKey('ES256', 'shop-1');
    shopKey2 = await TestTokenIssuer.newKey('ES256', 'shop-2');
    partnerKey = await TestTokenIssuer.newKey('ES256', 'partner-1');
    minter = await TestTokenIssuer.create();
  });

  function verifier(trustDomain: string | undefined, issuer?: string) {
    const feed = new MemoryFeed();
    feed.set({ 'shop.test': [jwtSvidKey(shopKey)], 'partner.test': [jwtSvidKey(partnerKey)] });
    const resolved = resolveTokenOptions({
      issuers: {
        svid: {
          ...(issuer === undefined ? {} : { issuer }),
          audience: ORDERS,
          jwks: { workloadApi: trustDomain === undefined ? {} : { trustDomain } },
        },
      },
    }).issuers.get('svid')!;
    const source = new JwtBundleKeySource({
      issuer: 'svid',
      endpoint: 'unix:///agent.sock',
      feed,
      algorithms: undefined,
      logger: silent,
    });
    return { feed, verifier: new TokenVerifier(resolved, source) };
  }

  /** A JWT-SVID: no `iss`, `sub` and `aud`, signed by `key` with its `kid` unless the header says otherwise. */
  const svid = (claims: Record<string, unknown>, key: TestSigningKey = shopKey, header: Record<string, unknown> = {}) =>
    minter.mint({ iss: undefined, sub: FRONTEND, aud: [ORDERS], ...claims }, { key, header });

  type Case = readonly [
    name: string,
    trustDomain: string | undefined,
    token: () => Promise<string>,
    peerId: string,
    expected: 'ok' | readonly [code: string, reason: string],
  ];
  const cases: readonly Case[] = [
    ["the peer's JWT-SVID, trust domain from sub", undefined, () => svid({}), FRONTEND, 'ok'],
    ["the peer's JWT-SVID, trust domain configured", 'shop.test', () => svid({}), FRONTEND, 'ok'],
    ['a federated JWT-SVID, trust domain from sub', undefined, () => svid({ sub: PARTNER }, partnerKey), PARTNER, 'ok'],
    ['no kid', undefined, () => svid({}, shopKey, { kid: undefined }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'kid_missing']],
    ['an empty kid', undefined, () => svid({}, shopKey, { kid: '' }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'kid_missing']],
    ['a kid not in the bundle', undefined, () => svid({}, shopKey2), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'unknown_kid']],
    [
      "signed by another trust domain's key, sub in ours",
      undefined,
      () => svid({}, partnerKey),
      FRONTEND,
      ['ERR_MTLS_TOKEN_INVALID', 'unknown_kid'],
    ],
    [
      "another trust domain's key named by our kid",
      undefined,
      () => svid({}, partnerKey, { kid: 'shop-1' }),
      FRONTEND,
      ['ERR_MTLS_TOKEN_INVALID', 'signature'],
    ],
    [
      'sub in another trust domain than the configured one',
      'shop.test',
      () => svid({ sub: PARTNER }),
      PARTNER,
      ['ERR_MTLS_TOKEN_UNBOUND', 'sub_trust_domain'],
    ],
    [
      'sub in a trust domain without a bundle',
      undefined,
      () => svid({ sub: 'spiffe://elsewhere.test/x' }),
      'spiffe://elsewhere.test/x',
      ['ERR_MTLS_TOKEN_INVALID', 'no_bundle'],
    ],
    ['sub not a SPIFFE ID', undefined, () => svid({ sub: 'frontend' }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'sub_invalid']],
    [
      'sub not a SPIFFE ID, trust domain configured',
      'shop.test',
      () => svid({ sub: 'frontend' }),
      FRONTEND,
      ['ERR_MTLS_TOKEN_INVALID', 'sub_invalid'],
    ],
    ['no sub', 'shop.test', () => svid({ sub: undefined }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'claims']],
    ['sub of another workload', undefined, () => svid({ sub: ORDERS }), FRONTEND, ['ERR_MTLS_TOKEN_UNBOUND', 'sub_mismatch']],
    ['no aud', undefined, () => svid({ aud: undefined }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'audience']],
    ['another aud', undefined, () => svid({ aud: 'billing' }), FRONTEND, ['ERR_MTLS_TOKEN_INVALID', 'audience']],
    [
      'expired',
      undefined,
      () => svid({ exp: Math.floor(Date.now() / 1000) - 120 }),
      FRONTEND,
      ['ERR_MTLS_TOKEN_INVALID', 'expired'],
    ],
  ];

  it.each(cases)('%s (trust domain %s)', async (_name, trustDomain, token, peerId, expected) => {
    const result = await verifier(trustDomain).verifier.verify(await token(), peer(peerId), { bind: 'peer-id', scopes: [] });
    if (expected === 'ok') expect(result).toMatchObject({ issuerName: 'svid', claims: { sub: peerId } });
    else expect(result).toMatchObject({ code: expected[0], reason: expected[1] });
  });

  it('checks "iss" when one is configured', async () => {
    const { verifier: withIss } = verifier(undefined, 'https://svid.shop.test');
    expect(await withIss.verify(await svid({}), peer(FRONTEND), { bind: 'peer-id', scopes: [] })).toMatchObject({
      reason: 'issuer',
    });
    expect(
      await withIss.verify(await svid({ iss: 'https://svid.shop.test' }), peer(FRONTEND), { bind: 'peer-id', scopes: [] }),
    ).toMatchObject({ claims: { sub: FRONTEND } });
  });

  it('follows the bundles: a new key verifies, a removed one no longer does, an x509-svid key never does', async () => {
    const { feed, verifier: v } = verifier(undefined);
    const check = async (key: TestSigningKey) =>
      ((await v.verify(await svid({}, key), peer(FRONTEND), { bind: 'peer-id', scopes: [] })) as { reason?: string }).reason ??
      'ok';
    expect(await check(shopKey2)).toBe('unknown_kid');
    feed.set({ 'shop.test': [jwtSvidKey(shopKey), jwtSvidKey(shopKey2)] });
    expect([await check(shopKey), await check(shopKey2)]).toEqual(['ok', 'ok']);
    feed.set({ 'shop.test': [jwtSvidKey(shopKey2)] });
    expect([await check(shopKey), await check(shopKey2)]).toEqual(['unknown_kid', 'ok']);
    feed.set({ 'shop.test': [{ ...shopKey.publicJwk, use: 'x509-svid' }, jwtSvidKey(shopKey2)] });
    expect([await check(shopKey), await check(shopKey2)]).toEqual(['unknown_kid', 'ok']);
    feed.set({ 'shop.test': [{ ...shopKey.publicJwk, use: 'x509-svid' }] });
    expect(await check(shopKey)).toBe('no_bundle');
    feed.set({ 'shop.test': [] });
    expect(await check(shopKey)).toBe('no_bundle');
    feed.set({});
    expect(await check(shopKey)).toBe('no_bundle');
    feed.set(undefined);
    expect(await check(shopKey)).toBe('jwks_unavailable');
    feed.set({ 'shop.test': [jwtSvidKey(shopKey)] });
    expect(await check(shopKey)).toBe('ok');
  });

  it('imports each bundle version once, and logs each change of a trust domain once', async () => {
    const lines: string[] = [];
    const feed = new MemoryFeed();
    feed.set({ 'shop.test': [jwtSvidKey(shopKey)] });
    const source = new JwtBundleKeySource({
      issuer: 'svid',
      endpoint: 'unix:///agent.sock',
      feed,
      algorithms: undefined,
      logger: {
        log: (m: string) => lines.push(`log ${m}`),
        warn: (m: string) => lines.push(`warn ${m}`),
        error: () => undefined,
      },
    });
    const first = await source.keysFor('shop.test');
    expect(await source.keysFor('shop.test')).toBe(first);
    expect(await source.keysFor('elsewhere.test')).toBe('no_bundle');
    expect(await source.keysFor('elsewhere.test')).toBe('no_bundle');
    feed.set({ 'shop.test': [jwtSvidKey(shopKey), jwtSvidKey(shopKey2)] });
    expect(await source.keysFor('shop.test')).not.toBe(first);
    expect(lines).toEqual([
      'log token issuer svid: JWT bundle of shop.test: keys "shop-1"',
      'warn token issuer svid: tokens of trust domain elsewhere.test are refused: the Workload API has no JWT bundle for it',
      'log token issuer svid: JWT bundle of shop.test: keys "shop-1" → "shop-1", "shop-2"',
    ]);
  });
});
