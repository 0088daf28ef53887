import { describe, expect, it } from 'vitest';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { resolveTokenOptions } from '../../lib/tokens/token-config.js';
import type { MtlsTokensOptions } from '../../lib/tokens/tokens.options.js';

const base = { issuer: 'https://issuer.test', audience: 'orders', jwks: '/etc/jwks.json' };
const withIssuer = (extra: Record<string, unknown>): MtlsTokensOptions =>
  ({ issuers: { shop: { ...base, ...extra } } }) as unknown as MtlsTokensOptions;

describe('resolveTokenOptions', () => {
  it('applies the defaults: 30 s tolerance, algorithms from the keys, a file source', () => {
    const shop = resolveTokenOptions({ issuers: { shop: base } }).issuers.get('shop')!;
    expect(shop).toMatchObject({
      name: 'shop',
      issuer: base.issuer,
      audience: ['orders'],
      clockToleranceSec: 30,
      algorithms: undefined,
    });
    expect(shop.jwks).toEqual({ kind: 'file', file: '/etc/jwks.json' });
  });

  it('reads an https URL with its fetch defaults', () => {
    const shop = resolveTokenOptions(withIssuer({ jwks: 'https://idp.test/jwks' })).issuers.get('shop')!;
    expect(shop.jwks).toMatchObject({ kind: 'url', refreshMs: 300_000, cooldownMs: 30_000, staleIfErrorMs: 3_600_000 });
  });

  it.each([
    ['no issuer', { issuer: undefined }, '"tokens.issuers.shop.issuer" is missing'],
    ['an empty issuer', { issuer: '' }, '"tokens.issuers.shop.issuer" must be a non-empty string'],
    ['an empty audience', { audience: '' }, '"tokens.issuers.shop.audience" must name this service'],
    ['an empty audience array', { audience: [] }, '"tokens.issuers.shop.audience" must name this service'],
    [
      'HS256',
      { algorithms: ['HS256'] },
      '"tokens.issuers.shop.algorithms" names "HS256": shared-secret and unsigned tokens are never accepted',
    ],
    ['none', { algorithms: ['ES256', 'none'] }, '"tokens.issuers.shop.algorithms" names "none"'],
    ['an unknown algorithm', { algorithms: ['ES257'] }, 'names "ES257"'],
    ['no algorithm', { algorithms: [] }, 'must be a non-empty array'],
    [
      'a negative tolerance',
      { clockToleranceSec: -1 },
      '"tokens.issuers.shop.clockToleranceSec" is -1; use a number of seconds from 0 to 300',
    ],
    ['a tolerance over 300 s', { clockToleranceSec: 301 }, 'clockToleranceSec" is 301'],
    ['an infinite tolerance', { clockToleranceSec: Number.POSITIVE_INFINITY }, 'clockToleranceSec" is null'],
    ['NaN tolerance', { clockToleranceSec: Number.NaN }, 'clockToleranceSec'],
    ['a string tolerance', { clockToleranceSec: '30' }, 'clockToleranceSec" is "30"'],
    [
      'an http URL',
      { jwks: 'http://idp.test/jwks' },
      '"tokens.issuers.shop.jwks" is "http://idp.test/jwks"; use an https:// URL',
    ],
    ['an http URL object', { jwks: { url: 'http://idp.test/jwks' } }, '"tokens.issuers.shop.jwks.url" must be an https:// URL'],
    ['no jwks', { jwks: undefined }, '"tokens.issuers.shop.jwks" is missing'],
    ['a misspelt option', { audiences: 'x' }, '"tokens.issuers.shop.audiences" is not an option'],
    ['a zero max age', { maxTokenAgeSec: 0 }, '"tokens.issuers.shop.maxTokenAgeSec" is 0'],
  ])('refuses %s, naming the option', (_name, extra, message) => {
    expect(() => resolveTokenOptions(withIssuer(extra))).toThrow(
      expect.objectContaining({ code: 'ERR_MTLS_CONFIG_INVALID', message: expect.stringContaining(message) }),
    );
  });

  it('accepts tolerance 0 and 300, and leaves the option out entirely', () => {
    expect(resolveTokenOptions(withIssuer({ clockToleranceSec: 0 })).issuers.get('shop')!.clockToleranceSec).toBe(0);
    expect(resolveTokenOptions(withIssuer({ clockToleranceSec: 300 })).issuers.get('shop')!.clockToleranceSec).toBe(300);
    expect(resolveTokenOptions(undefined).issuers.size).toBe(0);
  });

  it('is part of the module options', () => {
    expect(() => resolveMtlsOptions({ credentials: { dir: '/tls' }, tokens: withIssuer({ algorithms: ['HS512'] }) })).toThrow(
      /tokens\.issuers\.shop\.algorithms/,
    );
    expect(() => resolveMtlsOptions({ credentials: { dir: '/tls' }, tokens: { issuers: {} } })).toThrow(
      /"tokens.issuers" must name at least one issuer/,
    );
  });
});
