import 'reflect-metadata';
import { Controller, Delete, Get, Post } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { describeDefaultPolicy, describePeerRule } from '../../lib/authorization/rule-description.js';
import type { PeerRule } from '../../lib/authorization/peer-rule.js';
import { formatRouteTable, routesOf } from '../../lib/server/route-table.js';

@Controller('stock')
class StockController {
  @Get(':sku')
  get() {}

  @Post(['reindex', '/admin//reindex/'])
  reindex() {}

  helper() {}
}

@Controller(['v1/items', 'items'])
class ItemsController {
  @Delete()
  remove() {}
}

@Controller()
class RootController {
  @Get()
  root() {}
}

describe('routesOf', () => {
  it.each<[string, string[]]>([
    ['get', ['GET /stock/:sku']],
    ['reindex', ['POST /stock/reindex', 'POST /stock/admin/reindex']],
    ['helper', []],
  ])('StockController.%s → %j', (method, expected) => {
    expect(routesOf(StockController, (StockController.prototype as unknown as Record<string, () => void>)[method]!)).toEqual(
      expected,
    );
  });

  it('joins every controller path with every handler path', () => {
    expect(routesOf(ItemsController, ItemsController.prototype.remove)).toEqual(['DELETE /v1/items', 'DELETE /items']);
    expect(routesOf(RootController, RootController.prototype.root)).toEqual(['GET /']);
  });
});

describe('describePeerRule', () => {
  it.each<[PeerRule, string]>([
    [
      { kind: 'peers', peers: ['orders', 'spiffe://shop.test/ns/ops/sa/*'] },
      '@AllowPeers(orders, spiffe://shop.test/ns/ops/sa/*)',
    ],
    [{ kind: 'trustDomains', trustDomains: ['shop.test'] }, '@AllowTrustDomain(shop.test)'],
    [{ kind: 'anyPeer' }, '@AllowAnyPeer()'],
    [{ kind: 'dnsNames', names: ['legacy.shop.test'] }, '@AllowDnsNames(legacy.shop.test)'],
    [{ kind: 'commonNames', names: ['batch'] }, '@AllowCommonNames(batch)'],
  ])('%j → %s', (rule, expected) => {
    expect(describePeerRule(rule)).toBe(expected);
  });

  it('names the default policy as the option is written', () => {
    expect(describeDefaultPolicy('deny')).toBe("defaultPolicy 'deny'");
    expect(describeDefaultPolicy('any-peer')).toBe("defaultPolicy 'any-peer'");
  });
});

describe('formatRouteTable', () => {
  it('aligns the columns and lists the named peers', () => {
    const table = formatRouteTable(
      [
        { route: 'GET /stock/:sku', handler: 'StockController.get', rule: '@AllowPeers(orders)' },
        { route: 'GET /', handler: 'RootController.root', rule: "defaultPolicy 'deny'" },
      ],
      { mode: 'strict', defaultPolicy: 'deny', namedPeers: new Map([['orders', 'spiffe://shop.test/ns/shop/sa/orders']]) },
    );
    expect(table).toBe(
      [
        "mTLS routes (mode 'strict', defaultPolicy 'deny'):",
        '  route            handler              rule',
        '  GET /stock/:sku  StockController.get  @AllowPeers(orders)',
        "  GET /            RootController.root  defaultPolicy 'deny'",
        'named peers:',
        '  orders = spiffe://shop.test/ns/shop/sa/orders',
      ].join('\n'),
    );
  });

  it('says when there is no route', () => {
    expect(formatRouteTable([], { mode: 'permissive', defaultPolicy: 'any-peer', namedPeers: new Map() })).toBe(
      "mTLS routes (mode 'permissive', defaultPolicy 'any-peer'):\n  route  handler  rule\n  (no routes)",
    );
  });
});
