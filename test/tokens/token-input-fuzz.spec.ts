import { beforeAll, describe, expect, it } from 'vitest';
import { MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { TestTokenIssuer } from '../../lib/testing/test-token-issuer.js';
import { bearerToken, MAX_AUTHORIZATION_BYTES, type HeaderSource } from '../../lib/tokens/bearer-header.js';
import { importKeySet, JwksKeySet } from '../../lib/tokens/jwks-key-set.js';
import { describeThrown, mutateText, Prng, timed } from '../support/fuzz.js';

/*
 * Fuzzing the two token inputs an attacker or a remote issuer controls: the Authorization header (any value, any
 * number of lines, any type a framework may hand over) and a JWKS / SPIFFE bundle document (mutated real JWKS text,
 * JWK members replaced by hostile values, deep nesting). Properties: bearerToken never throws and only returns a
 * compact JWS; importKeySet resolves or rejects with MtlsConfigError ERR_MTLS_JWKS_INVALID, within a bound, and never
 * imports a symmetric or private key.
 */

const SEED = 0x70ce_2bad;
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

let jwksText: string;
let token: string;

beforeAll(async () => {
  const issuer = await TestTokenIssuer.create();
  await issuer.rotate();
  const rsa = await TestTokenIssuer.newKey('RS256', 'rsa-1');
  const ed = await TestTokenIssuer.newKey('EdDSA', 'ed-1');
  issuer.addKey(rsa);
  issuer.addKey(ed);
  jwksText = JSON.stringify(issuer.jwks());
  token = await issuer.mint({ sub: 'spiffe://shop.test/ns/shop/sa/orders' });
  await issuer.dispose();
}, 30_000);

/** Values a framework or a hostile client might put where a header is expected. */
function hostileValue(rng: Prng): unknown {
  return rng.pick<() => unknown>([
    () => `Bearer ${token}`,
    () => `bearer\t${token}`,
    () => mutateText(rng, `Bearer ${token}`, ' \t.,=-_Bb\u0000\u00ff\u212a'),
    () => `Bearer ${'a'.repeat(MAX_AUTHORIZATION_BYTES)}.b.c`,
    () => `Bearer ${'\u00e9'.repeat(MAX_AUTHORIZATION_BYTES / 2 + 1)}`,
    () => undefined,
    () => null,
    () => 42,
    () => ['Bearer a.b.c'],
    () => [],
    () => ['Bearer a.b.c', 'Bearer d.e.f'],
    () => ({ toString: () => 'Bearer a.b.c' }),
    () => '',
    () => ' '.repeat(rng.int(20)),
    () => `Bearer ${'.'.repeat(rng.int(10))}`,
  ])();
}

function hostileRequest(rng: Prng): HeaderSource {
  const lines: unknown[] = [];
  for (let n = rng.int(5); n > 0; n--) {
    lines.push(
      rng.pick(['Authorization', 'authorization', 'AUTHORIZATION', 'x-other', 'authorizatio', 42, null]),
      hostileValue(rng),
    );
  }
  if (rng.chance(0.2)) lines.push('Authorization'); // an odd-length list
  return rng.pick<() => HeaderSource>([
    () => ({ rawHeaders: lines as string[] }),
    () => ({ raw: { rawHeaders: lines as string[] } }),
    () => ({ headers: { authorization: hostileValue(rng) as string } }),
    () => ({ rawHeaders: 'Authorization' as unknown as string[], headers: { authorization: hostileValue(rng) as string } }),
    () => ({}),
  ])();
}

/** JWK members replaced by hostile values: prototype names, wrong types, huge strings, private parts. */
const HOSTILE_MEMBERS: readonly [string, unknown][] = [
  ['kty', 'oct'],
  ['kty', 'constructor'],
  ['kty', '__proto__'],
  ['kty', ['EC']],
  ['crv', 'constructor'],
  ['crv', 'toString'],
  ['crv', '__proto__'],
  ['crv', 'hasOwnProperty'],
  ['crv', 'P-256 '],
  ['alg', 'none'],
  ['alg', 'HS256'],
  ['alg', 'toString'],
  ['alg', 42],
  ['alg', null],
  ['kid', 7],
  ['kid', {}],
  ['use', 'enc'],
  ['use', 'x509-svid'],
  ['d', 'AAAA'],
  ['p', 'AAAA'],
  ['n', ''],
  ['n', 'A'.repeat(100_000)],
  ['n', `${'A'.repeat(400)}`],
  ['x', 'A'.repeat(50_000)],
  ['x', 7],
  ['e', 'AAAAAAAAAAAAAAAA'],
  ['key_ops', ['encrypt']],
  ['x5c', ['not base64']],
];

function mutateJwks(rng: Prng): string {
  if (rng.chance(0.35)) {
    let text = jwksText;
    for (let k = 1 + rng.int(3); k > 0; k--) text = mutateText(rng, text, '{}[]",:0aAe-_\\');
    return text;
  }
  const document = JSON.parse(jwksText) as { keys: Record<string, unknown>[] };
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const key = rng.pick(document.keys);
    const [member, value] = rng.pick(HOSTILE_MEMBERS);
    if (rng.chance(0.15)) delete key[member];
    else key[member] = value;
    if (rng.chance(0.1)) document.keys.push({ ...key });
  }
  if (rng.chance(0.05)) return JSON.stringify({ keys: document.keys, __proto__: { keys: [] } });
  return JSON.stringify(document);
}

describe(`token input fuzzing (seed 0x${SEED.toString(16)})`, () => {
  it('bearerToken never throws, and every token it returns is one compact JWS within the size limit', () => {
    const rng = new Prng(SEED);
    const failures: string[] = [];
    let tokens = 0;
    for (let i = 0; i < 4000; i++) {
      const request = hostileRequest(rng);
      const result = timed(() => bearerToken(request));
      let problem: string | undefined;
      if (result.error !== undefined) problem = `threw ${describeThrown(result.error)}`;
      else if (result.ms > 20) problem = `took ${result.ms.toFixed(1)} ms`;
      else if ('token' in result.value!) {
        tokens++;
        const value = result.value.token;
        if (!JWS.test(value) || Buffer.byteLength(value) > MAX_AUTHORIZATION_BYTES)
          problem = `returned ${JSON.stringify(value.slice(0, 80))}`;
      }
      if (problem !== undefined && failures.length < 20) failures.push(`${JSON.stringify(request).slice(0, 200)}: ${problem}`);
    }
    expect(tokens).toBeGreaterThan(100);
    expect(failures).toEqual([]);
  });

  it('importKeySet resolves a key set or rejects with ERR_MTLS_JWKS_INVALID, and never trusts a private or symmetric key', async () => {
    const rng = new Prng(SEED + 1);
    const failures: string[] = [];
    let accepted = 0;
    for (let i = 0; i < 600; i++) {
      const text = mutateJwks(rng);
      const pinned = rng.chance(0.3) ? (['ES256', 'RS256'] as const).slice(0, 1 + rng.int(2)) : undefined;
      const start = performance.now();
      let problem: string | undefined;
      try {
        const set = await importKeySet(text, 'fuzz JWKS', pinned && [...pinned]);
        accepted++;
        if (!(set instanceof JwksKeySet)) problem = 'resolved something else';
        const document = JSON.parse(text) as { keys: Record<string, unknown>[] };
        if (document.keys.some((k) => k.kty === 'oct' || k.d !== undefined || k.p !== undefined))
          problem = 'accepted a private or symmetric key';
        for (const alg of ['ES256', 'RS256', 'EdDSA', 'HS256', 'none', 'toString']) set.find(undefined, alg);
      } catch (error) {
        if (!(error instanceof MtlsConfigError && error.code === 'ERR_MTLS_JWKS_INVALID'))
          problem = `rejected with ${describeThrown(error)}`;
        else if (/native code|\[object /.test(error.message))
          problem = `message names an inherited property: ${error.message.slice(0, 200)}`;
      }
      const ms = performance.now() - start;
      if (ms > 500) problem ??= `took ${ms.toFixed(0)} ms`;
      if (problem !== undefined && failures.length < 20) failures.push(`${text.slice(0, 200)}: ${problem}`);
    }
    expect(accepted).toBeGreaterThan(50);
    expect(failures).toEqual([]);
  });

  it('JWK members named after Object.prototype members are never taken for curves or algorithms', async () => {
    const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
    const failures: string[] = [];
    for (const kty of ['EC', 'OKP', 'RSA', ...names]) {
      for (const crv of names) {
        const text = JSON.stringify({ keys: [{ kty, crv, x: 'AA', y: 'AA', n: 'AA', e: 'AQAB' }] });
        const error = await importKeySet(text, 'fuzz JWKS', undefined).then(
          () => new Error('accepted'),
          (e: unknown) => e as Error,
        );
        if (!(error instanceof MtlsConfigError) || /native code|\[object /.test(error.message)) {
          failures.push(`${text}: ${describeThrown(error)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('deeply nested and oversized documents are refused with ERR_MTLS_JWKS_INVALID', async () => {
    const documents = [
      '['.repeat(500_000),
      `{"keys":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
      `{"keys":[${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}]}`,
      `{"keys":[${'{},'.repeat(300)}{}]}`,
      ' '.repeat(1024 * 1024 + 1),
      'null',
      '"keys"',
      '{"keys":{"length":1,"0":{}}}',
    ];
    for (const text of documents) {
      const result = await importKeySet(text, 'fuzz JWKS', undefined).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(result).toBeInstanceOf(MtlsConfigError);
      expect(result).toMatchObject({ code: 'ERR_MTLS_JWKS_INVALID' });
    }
  });
});
