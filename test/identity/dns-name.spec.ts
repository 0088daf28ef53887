import { describe, expect, it } from 'vitest';
import { normalizeDnsName } from '../../lib/identity/dns-name.js';

describe('normalizeDnsName', () => {
  it.each([
    ['orders.shop.svc', 'orders.shop.svc'],
    ['Orders.Shop.SVC', 'orders.shop.svc'],
    ['_grpc._tcp.shop.test', '_grpc._tcp.shop.test'],
    ['localhost', 'localhost'],
    ['a-1.b', 'a-1.b'],
    [`${'a'.repeat(63)}.test`, `${'a'.repeat(63)}.test`],
    [`${'a'.repeat(64)}.test`, undefined],
    [`${'a.'.repeat(125)}abc`, `${'a.'.repeat(125)}abc`],
    [`${'a.'.repeat(125)}abcd`, undefined],
    ['', undefined],
    ['*.shop.test', undefined],
    ['orders.shop.svc.', undefined],
    ['.shop.test', undefined],
    ['a..b', undefined],
    ['-a.test', undefined],
    ['a-.test', undefined],
    ['a b.test', undefined],
    ['x.example, URI:spiffe://shop.test/ns/shop/sa/orders', undefined],
    ['\u212Aube.test', undefined],
    ['kub\u00e9.test', undefined],
    ['a\u0000.test', undefined],
  ])('%j → %j', (name, expected) => {
    expect(normalizeDnsName(name)).toBe(expected);
  });
});
