import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SpiffeIdError } from '../../lib/errors/mtls.errors.js';
import {
  SPIFFE_ID_MAX_BYTES,
  SpiffeId,
  TRUST_DOMAIN_MAX_BYTES,
  isValidSpiffeId,
  joinSpiffePathSegments,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdError,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  validateSpiffePath,
  validateSpiffePathSegment,
} from '../../lib/identity/spiffe-id.js';

/** One case of go-spiffe v2.8.1's tables, as exported to ../shared/vectors (see the files' `header`). */
interface VectorCase {
  readonly fn: string;
  readonly input?: string;
  readonly trustDomainArg?: string;
  readonly segments?: string[] | null;
  readonly trustDomain?: string;
  readonly path?: string | null;
  readonly string?: string;
  readonly error?: string;
  readonly source: string;
}

// The vectors live beside the repository, not in it: <repo>/../shared/vectors.
const repoRoot = new URL('../../', import.meta.url);
const vectorsDir = fileURLToPath(new URL('../shared/vectors/', repoRoot));
const vectorsPresent = existsSync(vectorsDir);

function loadVectors(file: string): VectorCase[] {
  if (!vectorsPresent) return [];
  const cases = (JSON.parse(readFileSync(`${vectorsDir}${file}`, 'utf8')) as { cases: VectorCase[] }).cases;
  if (cases.length === 0) throw new Error(`${file} holds no cases`);
  return cases;
}

const validCases = loadVectors('spiffe-id-valid.json');
const invalidCases = loadVectors('spiffe-id-invalid.json');

/** Runs a vector through the export that ports its go-spiffe function; returns what to compare. */
function run(c: VectorCase): { trustDomain?: string; path?: string; string?: string } {
  const input = c.input ?? '';
  switch (c.fn) {
    case 'FromString':
    case 'FromURI':
      return described(parseSpiffeId(input));
    case 'TrustDomainFromString':
      return { trustDomain: parseTrustDomain(input) };
    case 'TrustDomainFromURI':
      return { trustDomain: parseSpiffeId(input).trustDomain };
    case 'FromSegments':
      return described(spiffeIdFromSegments(c.trustDomainArg ?? '', ...(c.segments ?? [])));
    case 'FromPath':
      return described(spiffeIdFromPath(c.trustDomainArg ?? '', input));
    case 'ValidatePath':
      validateSpiffePath(input);
      return {};
    case 'ValidatePathSegment':
      validateSpiffePathSegment(input);
      return {};
    case 'JoinPathSegments':
      return { path: joinSpiffePathSegments(...(c.segments ?? [])) };
    default:
      throw new Error(`vector uses an unmapped go-spiffe function ${c.fn}`);
  }
}

function described(id: SpiffeId): { trustDomain: string; path: string; string: string } {
  return { trustDomain: id.trustDomain, path: id.path, string: id.toString() };
}

/** The error go-spiffe would return, as our SpiffeIdError. */
const invalid = (message: string) =>
  expect.objectContaining({ name: 'SpiffeIdError', code: 'ERR_MTLS_SPIFFE_ID_INVALID', message });

const named = (cases: VectorCase[]) =>
  cases.map((c) => ({ ...c, name: `${c.fn}(${JSON.stringify(c.input ?? [c.trustDomainArg, c.segments])})` }));

describe('go-spiffe v2.8.1 vectors', () => {
  if (!vectorsPresent) {
    // Said out loud: a skipped test alone is easy to miss in a passing run.
    if (!process.env['CI']) console.warn(`go-spiffe vectors SKIPPED: ${vectorsDir} not found; set CI=1 to make this an error`);
    it('vectors folder ../shared/vectors (skipped when missing outside CI)', (ctx) => {
      if (process.env['CI']) throw new Error(`SPIFFE ID vectors missing at ${vectorsDir}: CI must run every vector`);
      ctx.skip(`SPIFFE ID vectors not found at ${vectorsDir} (outside the repo); set CI=1 to make this an error`);
    });
    return;
  }

  it('covers every exported function and every case', () => {
    expect(validCases).toHaveLength(204);
    expect(invalidCases).toHaveLength(675);
  });

  it.each(named(validCases))('accepts $name', (c) => {
    const got = run(c);
    if (c.trustDomain !== undefined) expect(got.trustDomain).toBe(c.trustDomain);
    if (typeof c.path === 'string') expect(got.path).toBe(c.path);
    if (c.string !== undefined) expect(got.string).toBe(c.string);
    if (c.fn === 'FromString') {
      expect(isValidSpiffeId(c.input!)).toBe(true);
      expect(spiffeIdError(c.input!)).toBeUndefined();
    }
  });

  it.each(named(invalidCases))('rejects $name', (c) => {
    expect(() => run(c)).toThrow(invalid(c.error!));
    if (c.fn === 'FromString') {
      expect(isValidSpiffeId(c.input!)).toBe(false);
      expect(spiffeIdError(c.input!)).toBe(c.error);
    }
  });
});

describe('parseSpiffeId', () => {
  it.each([
    ['spiffe://shop.test/ns/shop/sa/orders', 'shop.test', '/ns/shop/sa/orders'],
    ['spiffe://shop.test', 'shop.test', ''],
    ['spiffe://shop.test.evil/ns/shop/sa/orders', 'shop.test.evil', '/ns/shop/sa/orders'],
    ['spiffe://10.0.0.1/ns/a', '10.0.0.1', '/ns/a'],
    ['spiffe://shop.test/Ns/SHOP/a.b-c_d/...x', 'shop.test', '/Ns/SHOP/a.b-c_d/...x'],
  ])('parses %s', (input, trustDomain, path) => {
    const id = parseSpiffeId(input);
    expect(id).toMatchObject({ trustDomain, path });
    expect(id.toString()).toBe(input);
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: input }));
    expect(Object.isFrozen(id)).toBe(true);
  });

  it.each([
    // Each of these is normalised to an accepted ID by WHATWG URL or by a case-insensitive compare.
    ['SPIFFE://shop.test/ns/a', 'scheme is missing or invalid'],
    ['spiffe:shop.test/ns/a', 'scheme is missing or invalid'],
    [' spiffe://shop.test/ns/a', 'scheme is missing or invalid'],
    [
      'spiffe://Shop.test/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://SHOP.TEST/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://shop.test:443/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://user@shop.test/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://shop%2etest/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    ['spiffe://[::1]/ns/a', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'],
    [
      'spiffe://shop.test\u0000/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://shop.t\u0435st/ns/a',
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    ['spiffe://shop.test/ns/%61dmin', 'path segment characters are limited to letters, numbers, dots, dashes, and underscores'],
    ['spiffe://shop.test/ns/admin?x=1', 'path segment characters are limited to letters, numbers, dots, dashes, and underscores'],
    [
      'spiffe://shop.test/ns/admin#frag',
      'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://shop.test/ns/admin\u0000.evil',
      'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    [
      'spiffe://shop.test/ns/a, URI:spiffe://shop.test/ns/admin',
      'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    ['spiffe://shop.test/ns/admin/../attacker', 'path cannot contain dot segments'],
    ['spiffe://shop.test/ns/./admin', 'path cannot contain dot segments'],
    ['spiffe://shop.test/ns//admin', 'path cannot contain empty segments'],
    ['spiffe://shop.test/ns/admin/', 'path cannot have a trailing slash'],
    ['spiffe:///ns/admin', 'trust domain is missing'],
  ])('rejects %j: %s', (input, message) => {
    expect(() => parseSpiffeId(input)).toThrow(invalid(message));
    expect(isValidSpiffeId(input)).toBe(false);
  });

  describe('length caps (SPIFFE-ID.md §2.3)', () => {
    const trustDomainOf = (n: number) => 'a'.repeat(n);
    const idOf = (n: number) => {
      const prefix = `spiffe://${trustDomainOf(10)}/`;
      return `${prefix}${'p'.repeat(n - prefix.length)}`;
    };

    it.each([
      ['an ID of exactly 2048 bytes', idOf(SPIFFE_ID_MAX_BYTES)],
      ['a trust domain of exactly 255 bytes', `spiffe://${trustDomainOf(TRUST_DOMAIN_MAX_BYTES)}/a`],
    ])('accepts %s', (_, input) => {
      expect(parseSpiffeId(input).toString()).toBe(input);
    });

    it.each([
      ['an ID of 2049 bytes', idOf(SPIFFE_ID_MAX_BYTES + 1), 'cannot be longer than 2048 bytes'],
      ['an ID of 1 MB', idOf(1 << 20), 'cannot be longer than 2048 bytes'],
      [
        'a trust domain of 256 bytes',
        `spiffe://${trustDomainOf(TRUST_DOMAIN_MAX_BYTES + 1)}/a`,
        'trust domain cannot be longer than 255 bytes',
      ],
    ])('rejects %s', (_, input, message) => {
      expect(() => parseSpiffeId(input)).toThrow(message);
      expect(spiffeIdError(input)).toBe(message);
    });

    it('caps trust domain names and built IDs too', () => {
      expect(parseTrustDomain(trustDomainOf(TRUST_DOMAIN_MAX_BYTES))).toHaveLength(TRUST_DOMAIN_MAX_BYTES);
      expect(() => parseTrustDomain(trustDomainOf(TRUST_DOMAIN_MAX_BYTES + 1))).toThrow(
        'trust domain cannot be longer than 255 bytes',
      );
      expect(() => spiffeIdFromPath('a', `/${'p'.repeat(SPIFFE_ID_MAX_BYTES)}`)).toThrow('cannot be longer than 2048 bytes');
      expect(() => spiffeIdFromSegments('a', ...Array<string>(1100).fill('p'))).toThrow('cannot be longer than 2048 bytes');
    });
  });
});

describe('parseTrustDomain', () => {
  it.each([
    ['shop.test', 'shop.test'],
    ['spiffe://shop.test', 'shop.test'],
    ['spiffe://shop.test/ns/a', 'shop.test'],
  ])('%s → %s', (input, expected) => {
    expect(parseTrustDomain(input)).toBe(expected);
  });

  it.each([
    ['', 'trust domain is missing'],
    ['Shop.test', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'],
    ['shop.test:443', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'],
    ['shop.test/ns', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'],
    ['spiffe:/shop.test', 'scheme is missing or invalid'],
    ['spiffe://Shop.test', 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores'],
  ])('rejects %j: %s', (input, message) => {
    expect(() => parseTrustDomain(input)).toThrow(invalid(message));
  });
});

describe('building IDs', () => {
  it('builds from segments and from a path', () => {
    expect(spiffeIdFromSegments('shop.test', 'ns', 'shop', 'sa', 'orders').toString()).toBe(
      'spiffe://shop.test/ns/shop/sa/orders',
    );
    expect(spiffeIdFromPath('shop.test', '/ns/shop').equals(parseSpiffeId('spiffe://shop.test/ns/shop'))).toBe(true);
    expect(joinSpiffePathSegments()).toBe('');
  });

  it.each([
    ['an upper-case trust domain', () => spiffeIdFromSegments('Shop.test', 'a'), 'trust domain characters'],
    ['an empty trust domain', () => spiffeIdFromPath('', '/a'), 'trust domain is missing'],
    ['a trust domain given as an ID', () => spiffeIdFromPath('spiffe://shop.test', '/a'), 'trust domain characters'],
    ['a segment holding a slash', () => spiffeIdFromSegments('shop.test', 'ns/shop'), 'path segment characters'],
    ['a `..` segment', () => spiffeIdFromSegments('shop.test', '..'), 'path cannot contain dot segments'],
    ['a percent-encoded path', () => spiffeIdFromPath('shop.test', '/%2e%2e'), 'path segment characters'],
  ])('rejects %s', (_, build, message) => {
    expect(build).toThrow(SpiffeIdError);
    expect(build).toThrow(message);
  });
});

describe('SpiffeId', () => {
  it('compares exactly and checks membership by exact trust domain', () => {
    const orders = parseSpiffeId('spiffe://shop.test/ns/shop/sa/orders');
    expect(orders.equals(parseSpiffeId('spiffe://shop.test/ns/shop/sa/orders'))).toBe(true);
    expect(orders.equals(parseSpiffeId('spiffe://shop.test/ns/shop/sa/orders-evil'))).toBe(false);
    expect(orders.memberOf('shop.test')).toBe(true);
    expect(parseSpiffeId('spiffe://shop.test.evil/ns/shop/sa/orders').memberOf('shop.test')).toBe(false);
    expect(parseSpiffeId('spiffe://evilshop.test/ns/shop/sa/orders').memberOf('shop.test')).toBe(false);
  });
});
