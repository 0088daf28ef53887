import { beforeAll, describe, expect, it } from 'vitest';
import { compileNamedPeers, compileRule, type PeerRule } from '../../lib/authorization/peer-rule.js';
import type { PeerIdentity } from '../../lib/identity/peer-identity.js';
import { ORDERS, PAYMENTS, buildFixtures, type FixtureName } from './fixtures.js';

let fixtures: Record<FixtureName, PeerIdentity>;
beforeAll(() => {
  fixtures = buildFixtures();
});

const namedPeers = compileNamedPeers({
  orders: ORDERS,
  payments: PAYMENTS,
  'shop-any': 'spiffe://shop.test/ns/shop/sa/*',
});

describe('compileNamedPeers', () => {
  it('validates and keeps each name → ID or pattern', () => {
    expect([...namedPeers]).toEqual([
      ['orders', ORDERS],
      ['payments', PAYMENTS],
      ['shop-any', 'spiffe://shop.test/ns/shop/sa/*'],
    ]);
    expect(compileNamedPeers(undefined).size).toBe(0);
  });

  it.each([
    [
      'an upper-case trust domain',
      { orders: 'spiffe://Shop.test/ns/shop/sa/orders' },
      'MtlsModule option "peers.orders": invalid SPIFFE ID "spiffe://Shop.test/ns/shop/sa/orders": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'a bare name as value',
      { orders: 'orders' },
      'MtlsModule option "peers.orders": invalid SPIFFE ID "orders": scheme is missing or invalid',
    ],
    [
      'a root ID',
      { shop: 'spiffe://shop.test' },
      'MtlsModule option "peers.shop": SPIFFE ID "spiffe://shop.test" has no path: it names the trust domain, not a workload; to admit every workload of it use the trust domain "shop.test"',
    ],
    [
      'a partial-segment pattern',
      { shop: 'spiffe://shop.test/ns/shop/sa/or*' },
      'MtlsModule option "peers.shop": SPIFFE ID pattern "spiffe://shop.test/ns/shop/sa/or*": "*" must be a whole path segment, as in /sa/*, not part of one ("or*")',
    ],
    ['a number', { orders: 42 }, 'MtlsModule option "peers.orders": a SPIFFE ID must be a string, got number'],
    [
      'an ID as the name',
      { [ORDERS]: ORDERS },
      `MtlsModule option "peers.${ORDERS}": a peer name must be a plain name such as "orders"; SPIFFE IDs go on the right-hand side`,
    ],
    [
      'an array',
      [ORDERS],
      `MtlsModule option "peers" must be an object of name → SPIFFE ID, e.g. { orders: 'spiffe://shop.test/ns/shop/sa/orders' }`,
    ],
  ])('refuses %s', (_, peers, message) => {
    expect(() => compileNamedPeers(peers as unknown as Record<string, string>)).toThrow(
      expect.objectContaining({ name: 'MtlsConfigError', code: 'ERR_MTLS_CONFIG_INVALID', message }),
    );
  });
});

describe('compileRule', () => {
  const allowed = (rule: PeerRule) => {
    const authorizer = compileRule(rule, namedPeers);
    return (Object.keys(fixtures) as FixtureName[]).filter((name) => authorizer(fixtures[name]) === undefined);
  };

  it.each<[string, PeerRule, FixtureName[]]>([
    ['a named peer', { kind: 'peers', peers: ['orders'] }, ['orders']],
    ['two named peers', { kind: 'peers', peers: ['orders', 'payments'] }, ['orders', 'payments']],
    ['a SPIFFE ID', { kind: 'peers', peers: [PAYMENTS] }, ['payments']],
    ['a named pattern', { kind: 'peers', peers: ['shop-any'] }, ['orders', 'ordersEvil', 'payments']],
    [
      'an inline pattern',
      { kind: 'peers', peers: ['spiffe://shop.test/ns/shop/**'] },
      ['orders', 'ordersEvil', 'payments', 'nested'],
    ],
    [
      'names, IDs and patterns together',
      { kind: 'peers', peers: ['orders', 'spiffe://bank.test/ns/*/sa/orders'] },
      ['orders', 'otherTrustDomain'],
    ],
    ['a trust domain', { kind: 'trustDomains', trustDomains: ['shop.test'] }, ['orders', 'ordersEvil', 'payments', 'nested']],
    [
      'any peer',
      { kind: 'anyPeer' },
      [
        'orders',
        'ordersEvil',
        'payments',
        'nested',
        'evilTrustDomain',
        'otherTrustDomain',
        'hostileDns',
        'legacy',
        'cnOnly',
        'twoCns',
      ],
    ],
    ['a DNS name', { kind: 'dnsNames', names: ['*.internal.example.com'] }, ['legacy']],
    ['a DNS name of an SVID', { kind: 'dnsNames', names: ['ORDERS.shop.svc'] }, ['orders']],
    ['a common name', { kind: 'commonNames', names: ['legacy-batch'] }, ['cnOnly']],
  ])('%s', (_, rule, expected) => {
    expect(allowed(rule)).toEqual(expected);
  });

  it('gives one reason for a peer that no ID or pattern admits', () => {
    const authorizer = compileRule({ kind: 'peers', peers: ['orders', 'spiffe://shop.test/ns/billing/sa/*'] }, namedPeers);
    expect(authorizer(fixtures.ordersEvil)).toBe(`unexpected ID "${ORDERS}-evil"`);
    expect(authorizer(fixtures.legacy)).toBe('peer has no SPIFFE ID (certificate contains no URI SAN)');
    expect(authorizer.description).toBe(`any of [one of [${ORDERS}]; match spiffe://shop.test/ns/billing/sa/*]`);
  });

  it.each<[string, PeerRule, string, string]>([
    [
      'an undeclared name',
      { kind: 'peers', peers: ['inventory'] },
      'ERR_MTLS_UNKNOWN_PEER',
      'unknown peer "inventory": declare it in MtlsModule options `peers` (declared: orders, payments, shop-any), or use a SPIFFE ID',
    ],
    [
      'a misspelt name, naming the declared one it is closest to',
      { kind: 'peers', peers: ['ordres'] },
      'ERR_MTLS_UNKNOWN_PEER',
      'unknown peer "ordres": did you mean "orders"? declare it in MtlsModule options `peers` (declared: orders, payments, shop-any), or use a SPIFFE ID',
    ],
    [
      'an upper-case SPIFFE ID',
      { kind: 'peers', peers: ['spiffe://Shop.test/ns/shop/sa/orders'] },
      'ERR_MTLS_CONFIG_INVALID',
      'invalid SPIFFE ID "spiffe://Shop.test/ns/shop/sa/orders": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    ['an empty peers list', { kind: 'peers', peers: [] }, 'ERR_MTLS_CONFIG_INVALID', 'a peers rule needs at least one peer'],
    [
      'a non-string peer',
      { kind: 'peers', peers: [42 as unknown as string] },
      'ERR_MTLS_CONFIG_INVALID',
      'peer 42 must be a string, got number',
    ],
    [
      'a bad trust domain',
      { kind: 'trustDomains', trustDomains: ['shop.test:443'] },
      'ERR_MTLS_CONFIG_INVALID',
      'invalid trust domain "shop.test:443": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'a bad DNS name',
      { kind: 'dnsNames', names: ['*.com'] },
      'ERR_MTLS_CONFIG_INVALID',
      'DNS name rule "*.com" is a wildcard over a top-level domain; give at least two labels after "*."',
    ],
    ['an empty common name', { kind: 'commonNames', names: [''] }, 'ERR_MTLS_CONFIG_INVALID', 'common name rule is empty'],
    [
      'an unknown kind',
      { kind: 'everyone' } as unknown as PeerRule,
      'ERR_MTLS_CONFIG_INVALID',
      'unknown peer rule {"kind":"everyone"}: use the @Allow… decorators to declare rules',
    ],
  ])('refuses %s', (_, rule, code, message) => {
    expect(() => compileRule(rule, namedPeers)).toThrow(expect.objectContaining({ name: 'MtlsConfigError', code, message }));
  });
});
