import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { importKeySet, MAX_JWKS_BYTES } from '../../lib/tokens/jwks-key-set.js';
import { JwksUrlSource } from '../../lib/tokens/jwks-url-source.js';

const ec = async (kid?: string) => ({
  ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)),
  ...(kid ? { kid } : {}),
});
// node:crypto, not jose: jose refuses to make an RSA key under 2048 bits, which is the point of one test.
const rsa = async (bits: number) => ({
  ...generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'jwk' }),
  kid: 'r',
});
// The same key with `n` left-padded by zero octets: its modulus, and so its strength, is unchanged.
const padded = (jwk: { n?: string }, octets: number) => ({
  ...jwk,
  n: Buffer.concat([Buffer.alloc(octets), Buffer.from(jwk.n!, 'base64url')]).toString('base64url'),
});
const doc = (...keys: object[]) => JSON.stringify({ keys });
const silent = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe('importKeySet', () => {
  it.each([
    ['not JSON', async () => '{', 'not JSON'],
    ['no keys array', async () => '{"kty":"EC"}', 'no "keys" array'],
    [
      'a symmetric key among good ones',
      async () => doc(await ec('a'), { kty: 'oct', k: 'c2VjcmV0' }),
      'keys[1] is a symmetric ("oct") key',
    ],
    [
      'a private key',
      async () => doc({ ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)) }),
      'keys[0] holds private key material',
    ],
    ['an RSA key under 2048 bits', async () => doc(await rsa(1024)), 'shorter than 2048 bits'],
    [
      'a 1024-bit RSA key whose n is zero-padded to 256 octets',
      async () => doc(padded(await rsa(1024), 128)),
      'shorter than 2048 bits',
    ],
    ['an HS256 alg on an EC key', async () => doc({ ...(await ec('a')), alg: 'HS256' }), 'has "alg" "HS256"'],
    ['only X509-SVID authorities', async () => doc({ ...(await ec('a')), use: 'x509-svid' }), 'no signing key usable'],
    ['only encryption keys', async () => doc({ ...(await ec('a')), use: 'enc' }), 'no signing key usable'],
    ['a document over 1 MiB', async () => `{"keys":[],"pad":"${'x'.repeat(MAX_JWKS_BYTES)}"}`, 'larger than'],
    // Found by fuzzing: a curve named after an Object.prototype member was looked up as a curve, and the "algorithm"
    // that came back (a function) was tried as one; it is an unknown curve, whose key is not used.
    [
      'an EC key whose crv is "constructor"',
      async () => doc({ kty: 'EC', crv: 'constructor', x: 'AA', y: 'AA' }),
      'no signing key usable',
    ],
    ['an OKP key whose crv is "toString"', async () => doc({ kty: 'OKP', crv: 'toString', x: 'AA' }), 'no signing key usable'],
    [
      'an EC key whose crv is "__proto__"',
      async () => doc({ kty: 'EC', crv: '__proto__', x: 'AA', y: 'AA' }),
      'no signing key usable',
    ],
  ])('refuses %s, naming the source and the fix', async (_name, text, message) => {
    await expect(importKeySet(await text(), '/etc/jwks.json', undefined)).rejects.toMatchObject({
      code: 'ERR_MTLS_JWKS_INVALID',
      message: expect.stringMatching(new RegExp(`^/etc/jwks\\.json: .*${message.replace(/[()[\]"]/g, '.')}.*Fix: `)),
    });
  });

  it('keeps jwt-svid keys of a SPIFFE bundle, as plain signing keys, and skips its x509-svid ones', async () => {
    const set = await importKeySet(
      doc({ ...(await ec('x')), use: 'x509-svid' }, { ...(await ec('j')), use: 'jwt-svid' }),
      'bundle',
      undefined,
    );
    expect(set.kids).toEqual(['j']);
    expect(typeof set.find('j', 'ES256')).toBe('object');
    expect(set.find('x', 'ES256')).toBe('unknown_kid');
  });

  it('imports an RSA key once per algorithm it may verify, only among the pinned ones', async () => {
    const all = await importKeySet(doc(await rsa(2048)), 'rsa', undefined);
    expect([...all.algorithms].sort()).toEqual(['PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512']);
    const pinned = await importKeySet(doc(await rsa(2048)), 'rsa', ['PS256']);
    expect([...pinned.algorithms]).toEqual(['PS256']);
    expect(pinned.find('r', 'RS256')).toBe('unknown_kid');
    await expect(importKeySet(doc(await rsa(2048)), 'rsa', ['ES256'])).rejects.toThrow(/no signing key usable with ES256/);
  });

  it('accepts a 2048-bit RSA key written with a leading zero octet (some libraries emit one)', async () => {
    const set = await importKeySet(doc(padded(await rsa(2048), 1)), 'rsa', ['RS256']);
    expect(typeof set.find('r', 'RS256')).toBe('object');
  });

  it('finds a key without kid only when exactly one matches', async () => {
    expect(typeof (await importKeySet(doc(await ec()), 'one', undefined)).find(undefined, 'ES256')).toBe('object');
    expect((await importKeySet(doc(await ec(), await ec()), 'two', undefined)).find(undefined, 'ES256')).toBe('ambiguous_key');
  });
});

describe('JwksUrlSource', () => {
  const source = (
    fetch: () => Promise<string>,
    clock: { now: number },
    options: Partial<ConstructorParameters<typeof JwksUrlSource>[0]> = {},
  ) =>
    new JwksUrlSource({
      issuer: 'idp',
      url: 'https://idp.test/jwks',
      fetch,
      algorithms: undefined,
      refreshMs: 60_000,
      cooldownMs: 30_000,
      staleIfErrorMs: 600_000,
      logger: silent,
      now: () => clock.now,
      ...options,
    });

  it('shares one request between concurrent callers and caches the set until refreshMs', async () => {
    const text = doc(await ec('a'));
    let fetches = 0;
    const clock = { now: 0 };
    const jwks = source(async () => (fetches++, await new Promise((r) => setTimeout(r, 20)), text), clock);
    const sets = await Promise.all(Array.from({ length: 10 }, () => jwks.keys()));
    expect(new Set(sets).size).toBe(1);
    expect(fetches).toBe(1);
    clock.now = 59_999;
    await jwks.keys();
    expect(fetches).toBe(1);
    clock.now = 60_000;
    await jwks.keys();
    expect(fetches).toBe(2);
  });

  it('refetches for an unknown kid at most once per cooldown', async () => {
    const text = doc(await ec('a'));
    let fetches = 0;
    const clock = { now: 0 };
    const jwks = source(async () => (fetches++, text), clock);
    await jwks.keys();
    clock.now = 30_000;
    await Promise.all(Array.from({ length: 50 }, () => jwks.refreshForUnknownKid()));
    expect(fetches).toBe(2);
    clock.now = 59_000;
    await Promise.all(Array.from({ length: 50 }, () => jwks.refreshForUnknownKid()));
    expect(fetches).toBe(2);
  });

  it('serves the last good set within stale-if-error, reports it, and refuses after', async () => {
    const text = doc(await ec('a'));
    let fail = false;
    let fetches = 0;
    const stale: number[] = [];
    const clock = { now: 0 };
    const jwks = source(
      async () => {
        fetches++;
        if (fail) throw new Error('connection refused');
        return text;
      },
      clock,
      { onStale: (age) => stale.push(age) },
    );
    const good = await jwks.keys();
    fail = true;
    clock.now = 61_000;
    expect(await jwks.keys()).toBe(good);
    expect(await jwks.keys()).toBe(good);
    expect(fetches).toBe(2);
    expect(stale).toEqual([61_000, 61_000]);
    clock.now = 660_001;
    await expect(jwks.keys()).rejects.toThrow('connection refused');
  });

  it('refuses while it never had a set, without a fetch per request', async () => {
    let fetches = 0;
    const clock = { now: 0 };
    const jwks = source(async () => {
      fetches++;
      throw new Error('down');
    }, clock);
    await expect(jwks.keys()).rejects.toThrow('down');
    await expect(jwks.keys()).rejects.toThrow('down');
    expect(fetches).toBe(1);
  });
});
