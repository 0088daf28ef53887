import { beforeAll, describe, expect, it } from 'vitest';
import {
  authorizeAny,
  authorizeAnyOf,
  authorizeCommonName,
  authorizeDnsName,
  authorizeId,
  authorizeMatch,
  authorizeMemberOf,
  authorizeNone,
  authorizeOneOf,
  compileSpiffePattern,
  type Authorizer,
} from '../../lib/authorization/authorizer.js';
import type { PeerIdentity } from '../../lib/identity/peer-identity.js';
import { ORDERS, PAYMENTS, buildFixtures, peer, type FixtureName } from './fixtures.js';

let fixtures: Record<FixtureName, PeerIdentity>;
beforeAll(() => {
  fixtures = buildFixtures();
});

const TD_CHARS = 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
const NO_URI = 'peer has no SPIFFE ID (certificate contains no URI SAN)';
const HAS_SANS = 'peer certificate has subject alternative names, so its CN is not its identity';
const unexpected = (id: string) => `unexpected ID "${id}"`;

/** Expected result per fixture: `undefined` = allowed, else the exact denial reason. */
type Expectations = Record<FixtureName, string | undefined>;

const spiffeDenials = {
  hostileDns: NO_URI,
  legacy: NO_URI,
  cnOnly: NO_URI,
  twoCns: NO_URI,
} as const;

const everyone = (result: string | undefined): Expectations => ({
  orders: result,
  ordersEvil: result,
  payments: result,
  nested: result,
  evilTrustDomain: result,
  otherTrustDomain: result,
  hostileDns: result,
  legacy: result,
  cnOnly: result,
  twoCns: result,
});

const table: [string, () => Authorizer, Expectations][] = [
  ['authorizeAny()', () => authorizeAny(), everyone(undefined)],
  ['authorizeNone()', () => authorizeNone(), everyone('no peer is allowed')],
  [
    'authorizeId(orders)',
    () => authorizeId(ORDERS),
    {
      orders: undefined,
      ordersEvil: unexpected(`${ORDERS}-evil`),
      payments: unexpected(PAYMENTS),
      nested: unexpected(`${ORDERS}/extra`),
      evilTrustDomain: unexpected('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: unexpected('spiffe://bank.test/ns/shop/sa/orders'),
      ...spiffeDenials,
    },
  ],
  [
    'authorizeOneOf(orders, payments)',
    () => authorizeOneOf(ORDERS, PAYMENTS),
    {
      orders: undefined,
      ordersEvil: unexpected(`${ORDERS}-evil`),
      payments: undefined,
      nested: unexpected(`${ORDERS}/extra`),
      evilTrustDomain: unexpected('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: unexpected('spiffe://bank.test/ns/shop/sa/orders'),
      ...spiffeDenials,
    },
  ],
  [
    'authorizeMemberOf(shop.test)',
    () => authorizeMemberOf('shop.test'),
    {
      orders: undefined,
      ordersEvil: undefined,
      payments: undefined,
      nested: undefined,
      evilTrustDomain: 'unexpected trust domain "shop.test.evil"',
      otherTrustDomain: 'unexpected trust domain "bank.test"',
      ...spiffeDenials,
    },
  ],
  [
    'authorizeMatch(…/sa/*)',
    () => authorizeMatch('spiffe://shop.test/ns/shop/sa/*'),
    {
      orders: undefined,
      ordersEvil: undefined,
      payments: undefined,
      nested: unexpected(`${ORDERS}/extra`),
      evilTrustDomain: unexpected('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: unexpected('spiffe://bank.test/ns/shop/sa/orders'),
      ...spiffeDenials,
    },
  ],
  [
    'authorizeMatch(…/ns/shop/**)',
    () => authorizeMatch('spiffe://shop.test/ns/shop/**'),
    {
      orders: undefined,
      ordersEvil: undefined,
      payments: undefined,
      nested: undefined,
      evilTrustDomain: unexpected('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: unexpected('spiffe://bank.test/ns/shop/sa/orders'),
      ...spiffeDenials,
    },
  ],
  [
    'authorizeMatch(…/ns/*/sa/orders)',
    () => authorizeMatch('spiffe://shop.test/ns/*/sa/orders'),
    {
      orders: undefined,
      ordersEvil: unexpected(`${ORDERS}-evil`),
      payments: unexpected(PAYMENTS),
      nested: unexpected(`${ORDERS}/extra`),
      evilTrustDomain: unexpected('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: unexpected('spiffe://bank.test/ns/shop/sa/orders'),
      ...spiffeDenials,
    },
  ],
  [
    'authorizeDnsName(orders.shop.svc, *.internal.example.com)',
    () => authorizeDnsName('orders.shop.svc', '*.internal.example.com'),
    {
      // A valid SVID is admitted by its DNS SAN like any other peer.
      orders: undefined,
      ordersEvil: 'peer has no DNS SAN',
      payments: 'peer has no DNS SAN',
      nested: 'peer has no DNS SAN',
      evilTrustDomain: 'peer has no DNS SAN',
      otherTrustDomain: 'peer has no DNS SAN',
      hostileDns: `unexpected DNS names ["x.example, URI:${ORDERS}"]`,
      legacy: undefined,
      cnOnly: 'peer has no DNS SAN',
      twoCns: 'peer has no DNS SAN',
    },
  ],
  [
    'authorizeCommonName(legacy-batch)',
    () => authorizeCommonName('legacy-batch'),
    {
      // Any SAN makes the CN meaningless (RFC 6125 §6.4.4): SVIDs and DNS-named legacy peers alike.
      orders: HAS_SANS,
      ordersEvil: HAS_SANS,
      payments: HAS_SANS,
      nested: HAS_SANS,
      evilTrustDomain: HAS_SANS,
      otherTrustDomain: HAS_SANS,
      hostileDns: HAS_SANS,
      legacy: HAS_SANS,
      cnOnly: undefined,
      twoCns: 'peer has no single subject commonName',
    },
  ],
  [
    'authorizeAnyOf(authorizeId(orders), authorizeDnsName(billing…))',
    () => authorizeAnyOf(authorizeId(ORDERS), authorizeDnsName('billing.internal.example.com')),
    {
      orders: undefined,
      ordersEvil: `${unexpected(`${ORDERS}-evil`)}; peer has no DNS SAN`,
      payments: `${unexpected(PAYMENTS)}; peer has no DNS SAN`,
      nested: `${unexpected(`${ORDERS}/extra`)}; peer has no DNS SAN`,
      evilTrustDomain: `${unexpected('spiffe://shop.test.evil/ns/shop/sa/orders')}; peer has no DNS SAN`,
      otherTrustDomain: `${unexpected('spiffe://bank.test/ns/shop/sa/orders')}; peer has no DNS SAN`,
      hostileDns: `${NO_URI}; unexpected DNS names ["x.example, URI:${ORDERS}"]`,
      legacy: undefined,
      cnOnly: `${NO_URI}; peer has no DNS SAN`,
      twoCns: `${NO_URI}; peer has no DNS SAN`,
    },
  ],
];

describe.each(table)('%s', (_, build, expectations) => {
  it.each(Object.entries(expectations) as [FixtureName, string | undefined][])('%s → %j', (fixture, expected) => {
    expect(build()(fixtures[fixture])).toBe(expected);
  });
});

describe('attacks never yield the orders identity', () => {
  const ordersOnly: [string, () => Authorizer][] = [
    ['authorizeId', () => authorizeId(ORDERS)],
    ['authorizeOneOf', () => authorizeOneOf(ORDERS)],
    ['authorizeMatch without wildcards', () => authorizeMatch(ORDERS)],
  ];
  const attacks: FixtureName[] = ['ordersEvil', 'evilTrustDomain', 'hostileDns', 'nested'];
  it.each(ordersOnly.flatMap(([name, build]) => attacks.map((attack) => [name, attack, build] as const)))(
    '%s denies %s',
    (_, attack, build) => {
      expect(build()(fixtures[attack])).toEqual(expect.any(String));
    },
  );

  it('derives no SPIFFE ID from a DNS SAN that spells out a URI SAN', () => {
    expect(fixtures.hostileDns).toMatchObject({ spiffeId: undefined, trustDomain: undefined, normalizedDnsNames: [] });
  });
});

describe('compileSpiffePattern', () => {
  it.each([
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test/ns/shop/sa/orders', true],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test/ns/shop/sa/a/b', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test/ns/shop/sa', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test/ns/shop/saa/orders', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test/ns/shopx/sa/orders', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.test.evil/ns/shop/sa/orders', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://shop.testx/ns/shop/sa/orders', false],
    ['spiffe://shop.test/ns/shop/sa/*', 'spiffe://evilshop.test/ns/shop/sa/orders', false],
    ['spiffe://shop.test/ns/*/sa/*', 'spiffe://shop.test/ns/billing/sa/api', true],
    ['spiffe://shop.test/ns/*/sa/*', 'spiffe://shop.test/ns/billing/api', false],
    ['spiffe://shop.test/*', 'spiffe://shop.test/a', true],
    ['spiffe://shop.test/*', 'spiffe://shop.test/a/b', false],
    ['spiffe://shop.test/**', 'spiffe://shop.test/a', true],
    ['spiffe://shop.test/**', 'spiffe://shop.test/a/b/c', true],
    ['spiffe://shop.test/**', 'spiffe://shop.test', false],
    ['spiffe://shop.test/ns/shop/**', 'spiffe://shop.test/ns/shop', false],
    ['spiffe://shop.test/ns/shop/**', 'spiffe://shop.test/ns/shopping/sa/x', false],
    ['spiffe://shop.test/ns/*/**', 'spiffe://shop.test/ns/a/b', true],
    ['spiffe://shop.test/ns/*/**', 'spiffe://shop.test/ns/a', false],
    ['spiffe://shop.test/ns/shop/sa/orders', 'spiffe://shop.test/ns/shop/sa/orders', true],
    ['spiffe://shop.test/ns/shop/sa/orders', 'spiffe://shop.test/ns/shop/sa/orders-evil', false],
    ['spiffe://shop.test/ns/shop/sa/orders', 'spiffe://shop.test/ns/shop/sa/Orders', false],
  ])('%s vs %s → %s', (pattern, id, expected) => {
    expect(compileSpiffePattern(pattern)(id)).toBe(expected);
  });
});

describe('authorizeDnsName', () => {
  it.each([
    ['orders.shop.svc', 'Orders.Shop.SVC', undefined],
    ['Orders.Shop.SVC', 'orders.shop.svc', undefined],
    ['*.internal.example.com', 'a.internal.example.com', undefined],
    ['*.internal.example.com', 'A-1_b.internal.example.com', undefined],
    ['*.internal.example.com', 'internal.example.com', 'unexpected DNS names ["internal.example.com"]'],
    ['*.internal.example.com', 'a.b.internal.example.com', 'unexpected DNS names ["a.b.internal.example.com"]'],
    ['*.internal.example.com', '.internal.example.com', 'unexpected DNS names [".internal.example.com"]'],
    ['*.internal.example.com', '*.internal.example.com', 'unexpected DNS names ["*.internal.example.com"]'],
    ['*.internal.example.com', 'a, b.internal.example.com', 'unexpected DNS names ["a, b.internal.example.com"]'],
    ['*.internal.example.com', 'a.internal.example.com.evil', 'unexpected DNS names ["a.internal.example.com.evil"]'],
    ['a.internal.example.com', '*.internal.example.com', 'unexpected DNS names ["*.internal.example.com"]'],
    ['kube.test', '\u212Aube.test', 'unexpected DNS names ["\u212Aube.test"]'],
    ['orders.shop.svc', 'orders.shop.svc.', 'unexpected DNS names ["orders.shop.svc."]'],
  ])('rule %s vs SAN %j → %j', (rule, san, expected) => {
    expect(authorizeDnsName(rule)(peer({ dnsNames: [san] }))).toBe(expected);
  });

  it('compares the names the identity normalised once per connection, never the raw SANs', () => {
    expect(authorizeDnsName('orders.shop.svc')(peer({ dnsNames: ['ORDERS.shop.svc'], normalizedDnsNames: [] }))).toBe(
      'unexpected DNS names ["ORDERS.shop.svc"]',
    );
    expect(authorizeDnsName('*.shop.svc')(peer({ dnsNames: [], normalizedDnsNames: ['orders.shop.svc'] }))).toBeUndefined();
  });

  it('admits when any DNS SAN matches and lists at most five in a denial', () => {
    const names = Array.from({ length: 8 }, (_, i) => `n${i}.test`);
    expect(authorizeDnsName('n7.test')(peer({ dnsNames: names }))).toBeUndefined();
    expect(authorizeDnsName('other.test')(peer({ dnsNames: names }))).toBe(
      'unexpected DNS names ["n0.test", "n1.test", "n2.test", "n3.test", "n4.test", … 3 more]',
    );
  });
});

describe('authorizeCommonName', () => {
  it.each<[string, Partial<PeerIdentity>, string | undefined]>([
    ['no SAN at all', { commonName: 'legacy-batch' }, undefined],
    ['only an IP SAN', { commonName: 'legacy-batch', ipAddresses: ['10.0.0.1'] }, HAS_SANS],
    ['only an email SAN', { commonName: 'legacy-batch', emails: ['batch@shop.test'] }, HAS_SANS],
    ['only a non-SPIFFE URI SAN', { commonName: 'legacy-batch', uris: ['https://batch.shop.test/'] }, HAS_SANS],
    ['another CN', { commonName: 'orders' }, 'unexpected CN "orders"'],
  ])('with %s → %j', (_, fields, expected) => {
    expect(authorizeCommonName('legacy-batch')(peer(fields))).toBe(expected);
  });
});

describe('rule values are checked when the authorizer is built', () => {
  const invalid = (message: string) =>
    expect.objectContaining({ name: 'MtlsConfigError', code: 'ERR_MTLS_CONFIG_INVALID', message });

  it.each([
    [
      'an upper-case trust domain',
      () => authorizeId('spiffe://Shop.test/ns/shop/sa/orders'),
      `invalid SPIFFE ID "spiffe://Shop.test/ns/shop/sa/orders": ${TD_CHARS}`,
    ],
    [
      'a missing scheme',
      () => authorizeId('shop.test/ns/shop/sa/orders'),
      'invalid SPIFFE ID "shop.test/ns/shop/sa/orders": scheme is missing or invalid',
    ],
    [
      'a trailing slash',
      () => authorizeOneOf(ORDERS, `${PAYMENTS}/`),
      `invalid SPIFFE ID "${PAYMENTS}/": path cannot have a trailing slash`,
    ],
    [
      'a wildcard in an ID rule',
      () => authorizeId('spiffe://shop.test/ns/shop/sa/*'),
      'invalid SPIFFE ID "spiffe://shop.test/ns/shop/sa/*": path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    [
      'a root ID',
      () => authorizeId('spiffe://shop.test'),
      'SPIFFE ID "spiffe://shop.test" has no path: it names the trust domain, not a workload; to admit every workload of it use the trust domain "shop.test"',
    ],
    ['a non-string', () => authorizeId(42 as unknown as string), 'a SPIFFE ID must be a string, got number'],
    ['no IDs', () => authorizeOneOf(), 'authorizeOneOf() needs at least one SPIFFE ID'],
    ['an upper-case trust domain name', () => authorizeMemberOf('Shop.test'), `invalid trust domain "Shop.test": ${TD_CHARS}`],
    [
      'a workload ID as trust domain',
      () => authorizeMemberOf(ORDERS),
      `trust domain "${ORDERS}" is a workload's SPIFFE ID; give the trust domain "shop.test" to admit all of it, or the ID as a peer to admit that workload only`,
    ],
    ['no trust domains', () => authorizeMemberOf(), 'authorizeMemberOf() needs at least one trust domain'],
    [
      'a pattern without scheme',
      () => authorizeMatch('shop.test/ns/*'),
      'SPIFFE ID pattern "shop.test/ns/*" must start with spiffe://',
    ],
    [
      'a wildcard trust domain',
      () => authorizeMatch('spiffe://*.test/ns/shop/sa/orders'),
      'SPIFFE ID pattern "spiffe://*.test/ns/shop/sa/orders": the trust domain must be literal; list each trust domain instead',
    ],
    [
      'an upper-case pattern trust domain',
      () => authorizeMatch('spiffe://Shop.test/ns/*'),
      `SPIFFE ID pattern "spiffe://Shop.test/ns/*": ${TD_CHARS}`,
    ],
    [
      'a partial-segment glob',
      () => authorizeMatch('spiffe://shop.test/ns/shop/sa/or*'),
      'SPIFFE ID pattern "spiffe://shop.test/ns/shop/sa/or*": "*" must be a whole path segment, as in /sa/*, not part of one ("or*")',
    ],
    [
      '** before the end',
      () => authorizeMatch('spiffe://shop.test/**/orders'),
      'SPIFFE ID pattern "spiffe://shop.test/**/orders": "**" may only be the last segment',
    ],
    [
      'a pattern with no path',
      () => authorizeMatch('spiffe://shop.test'),
      'SPIFFE ID pattern "spiffe://shop.test" has no path; to admit a whole trust domain, name the trust domain',
    ],
    [
      'an empty segment',
      () => authorizeMatch('spiffe://shop.test/ns//*'),
      'SPIFFE ID pattern "spiffe://shop.test/ns//*": path cannot contain empty segments',
    ],
    [
      'a dot segment',
      () => authorizeMatch('spiffe://shop.test/ns/../*'),
      'SPIFFE ID pattern "spiffe://shop.test/ns/../*": path cannot contain dot segments',
    ],
    [
      'a trailing slash in a pattern',
      () => authorizeMatch('spiffe://shop.test/ns/*/'),
      'SPIFFE ID pattern "spiffe://shop.test/ns/*/": path cannot contain empty segments',
    ],
    [
      'a wildcard over a TLD',
      () => authorizeDnsName('*.com'),
      'DNS name rule "*.com" is a wildcard over a top-level domain; give at least two labels after "*."',
    ],
    [
      'an inner wildcard',
      () => authorizeDnsName('a.*.example.com'),
      'DNS name rule "a.*.example.com" is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of 1–63 characters; "*" only as "*.rest")',
    ],
    [
      'a partial-label wildcard',
      () => authorizeDnsName('a*.example.com'),
      'DNS name rule "a*.example.com" is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of 1–63 characters; "*" only as "*.rest")',
    ],
    [
      'hostile text as a DNS rule',
      () => authorizeDnsName(`x.example, URI:${ORDERS}`),
      `DNS name rule "x.example, URI:${ORDERS}" is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of 1–63 characters; "*" only as "*.rest")`,
    ],
    [
      'a non-ASCII DNS rule',
      () => authorizeDnsName('\u212Aube.test'),
      'DNS name rule "\u212Aube.test" is not ASCII; give its A-label (xn--…) form',
    ],
    [
      'a trailing dot',
      () => authorizeDnsName('orders.shop.svc.'),
      'DNS name rule "orders.shop.svc." has a trailing dot; remove it',
    ],
    [
      'a 64-character label',
      () => authorizeDnsName(`${'a'.repeat(64)}.test`),
      `DNS name rule "${'a'.repeat(64)}.test" is not a DNS name (letters, digits, "-" and "_" in dot-separated labels of 1–63 characters; "*" only as "*.rest")`,
    ],
    ['no DNS names', () => authorizeDnsName(), 'authorizeDnsName() needs at least one DNS name'],
    ['an empty common name', () => authorizeCommonName(''), 'common name rule is empty'],
    ['no authorizers', () => authorizeAnyOf(), 'authorizeAnyOf() needs at least one authorizer'],
    [
      'a plain function',
      () => authorizeAnyOf((() => undefined) as unknown as Authorizer),
      'authorizeAnyOf() takes authorizers made by the authorize… functions',
    ],
  ])('refuses %s', (_, build, message) => {
    expect(build).toThrow(invalid(message));
  });

  it('accepts a root ID as a trust domain and dedupes', () => {
    expect(authorizeMemberOf('spiffe://shop.test', 'shop.test').description).toBe('member of [shop.test]');
  });
});

describe('authorizers', () => {
  it.each([
    [authorizeAny(), 'any peer'],
    [authorizeNone(), 'no peer'],
    [authorizeId(ORDERS), `ID ${ORDERS}`],
    [authorizeOneOf(ORDERS, PAYMENTS, ORDERS), `one of [${ORDERS}, ${PAYMENTS}]`],
    [authorizeMemberOf('shop.test', 'bank.test'), 'member of [shop.test, bank.test]'],
    [authorizeMatch('spiffe://shop.test/ns/*/sa/orders'), 'match spiffe://shop.test/ns/*/sa/orders'],
    [authorizeDnsName('A.test', '*.b.test'), 'DNS name one of [a.test, *.b.test]'],
    [authorizeCommonName('legacy-batch'), 'CN one of ["legacy-batch"]'],
    [authorizeAnyOf(authorizeId(ORDERS), authorizeMemberOf('bank.test')), `any of [ID ${ORDERS}; member of [bank.test]]`],
  ])('describe themselves: %s', (authorizer, description) => {
    expect(authorizer.description).toBe(description);
    expect(Object.isFrozen(authorizer)).toBe(true);
  });

  it('returns the only authorizer of authorizeAnyOf unchanged', () => {
    const only = authorizeId(ORDERS);
    expect(authorizeAnyOf(only)).toBe(only);
  });

  it('lets authorizeNone say why', () => {
    expect(authorizeNone('route has no @Allow… rule')(peer({}))).toBe('route has no @Allow… rule');
  });

  it('stops at the first authorizer that admits', () => {
    const calls: string[] = [];
    const spy = (name: string, result: string | undefined) =>
      Object.assign(
        () => {
          calls.push(name);
          return result;
        },
        { description: name },
      );
    expect(authorizeAnyOf(spy('a', 'no'), spy('b', undefined), spy('c', undefined))(peer({}))).toBeUndefined();
    expect(calls).toEqual(['a', 'b']);
  });
});
