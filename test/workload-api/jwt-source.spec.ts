import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestPki } from '../../lib/testing/test-pki.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { WorkloadJwtSource, type JwtBundle } from '../../lib/workload-api/jwt-source.js';

const ID = 'spiffe://shop.test/ns/shop/sa/orders';
const AUDIENCE = 'spiffe://partner.test/billing';
const quiet = { log: () => {}, warn: () => {}, error: () => {} };

/** Verifies an ES256 compact JWS against a JWKS with node:crypto alone; returns its claims. */
function verifyJws(token: string, bundle: JwtBundle): Record<string, unknown> {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg: string; kid: string };
  expect(alg).toBe('ES256');
  const jwk = bundle.keys.find((key) => key.kid === kid);
  if (jwk === undefined) throw new Error(`no key ${kid} in the bundle`);
  const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  const ok = verify(
    'SHA256',
    Buffer.from(`${header}.${payload}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
  if (!ok) throw new Error('bad signature');
  return JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
}

describe('WorkloadJwtSource', () => {
  let pki: TestPki;
  const cleanup: Array<() => unknown> = [];
  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup() {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    agent.addJwtAuthority('shop.test');
    const source = await WorkloadJwtSource.connect({
      socket: agent.address,
      logger: quiet,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    cleanup.push(() => source.close());
    return { agent, source };
  }

  it('fetches a JWT-SVID for an audience, verifiable against its trust domain JWT bundle', async () => {
    const { source, agent } = await setup();
    const token = await source.jwtSvid(AUDIENCE);
    const bundle = await source.jwtBundleFor('shop.test');
    expect(bundle).toBeDefined();
    // Normalised for JOSE libraries: no `use: "jwt-svid"`.
    expect(bundle!.keys.every((key) => !('use' in key))).toBe(true);
    const claims = verifyJws(token, bundle!);
    expect(claims).toMatchObject({ sub: ID, aud: [AUDIENCE] });
    expect(agent.lastSecurityHeader).toBe('true');
    expect(await source.jwtBundleFor('spiffe://partner.test')).toBeUndefined();
  });

  it('caches a JWT-SVID per audience until half its lifetime', async () => {
    const { source, agent } = await setup();
    // iat and exp are whole seconds: with 4 s the cache holds for at least 1 s after the fetch (iat is rounded down);
    // with 2 s it could turn stale a few ms after the fetch.
    agent.jwtTtlSeconds = 4;
    const first = await source.jwtSvid(AUDIENCE);
    const [again, concurrent] = await Promise.all([source.jwtSvid(AUDIENCE), source.jwtSvid([AUDIENCE, AUDIENCE])]);
    expect(again).toBe(first);
    expect(concurrent).toBe(first);
    expect(agent.calls.get('FetchJWTSVID')).toBe(1);
    await source.jwtSvid('another-audience');
    expect(agent.calls.get('FetchJWTSVID')).toBe(2);
    // Half its lifetime runs from its iat (at most its fetch): 2 s after iat, wherever that second began.
    const { iat } = JSON.parse(Buffer.from(first.split('.')[1]!, 'base64url').toString()) as { iat: number };
    await new Promise((r) => setTimeout(r, Math.max(0, iat * 1000 + 2_050 - Date.now())));
    const refreshed = await source.jwtSvid(AUDIENCE);
    expect(agent.calls.get('FetchJWTSVID')).toBe(3);
    expect(refreshed).not.toBe(first);
  });

  it('usable as a token function', async () => {
    const { source } = await setup();
    const token = source.tokenFor(AUDIENCE);
    expect(await token()).toBe(await source.jwtSvid(AUDIENCE));
  });

  it('reports PermissionDenied with a code naming the endpoint', async () => {
    const { source, agent } = await setup();
    agent.refuse('permission-denied');
    const error = await source.jwtSvid(AUDIENCE).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_WORKLOAD_API_PERMISSION_DENIED', endpoint: agent.address });
  });

  it('leaves keys of another use than jwt-svid out of the bundles it gives', async () => {
    const { source, agent } = await setup();
    const jwt = {
      kty: 'EC',
      crv: 'P-256',
      x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
      y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    };
    agent.setJwtBundle('partner.test', {
      keys: [
        { ...jwt, kid: 'x', use: 'x509-svid', x5c: [] },
        { ...jwt, kid: 'e', use: 'enc' },
        { ...jwt, kid: 'j', use: 'jwt-svid' },
        { ...jwt, kid: 'n' },
      ],
    });
    await expect.poll(async () => (await source.jwtBundleFor('partner.test'))?.keys.map((key) => key.kid)).toEqual(['j', 'n']);
    expect([...(await source.jwtBundles()).keys()].sort()).toEqual(['partner.test', 'shop.test']);
    expect(source.currentJwtBundles?.get('partner.test')?.keys.every((key) => !('use' in key))).toBe(true);
    agent.setJwtBundle('partner.test', null);
    await expect.poll(() => source.currentJwtBundles?.has('partner.test')).toBe(false);
  });

  it('follows JWT bundle changes pushed by the agent', async () => {
    const { source, agent } = await setup();
    const before = await source.jwtBundleFor('shop.test');
    agent.addJwtAuthority('partner.test');
    await expect.poll(() => source.jwtBundleFor('partner.test')).toBeDefined();
    expect(await source.jwtBundleFor('shop.test')).toEqual(before);
  });
});
