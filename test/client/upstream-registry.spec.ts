import { describe, expect, it } from 'vitest';
import { MAX_CACHED_EXPECTATIONS, UpstreamRegistry } from '../../lib/client/upstream-registry.js';
import type { UpstreamOptions } from '../../lib/mtls.options.js';

const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const peers = new Map([['inventory', INVENTORY]]);

function registry(upstreams: Record<string, UpstreamOptions> = {}): UpstreamRegistry {
  return new UpstreamRegistry(new Map(Object.entries(upstreams)), peers);
}

describe('UpstreamRegistry', () => {
  it('resolves named upstreams by name and by origin', () => {
    const reg = registry({ inventory: { url: 'https://inventory.shop.svc:8443/api/', expectPeer: 'inventory' } });

    const inventory = reg.upstream('inventory');
    expect(inventory).toMatchObject({ name: 'inventory', origin: 'https://inventory.shop.svc:8443', basePath: '/api' });
    expect(inventory.expectation.description).toBe(`inventory (${INVENTORY})`);
    expect(reg.label('https://inventory.shop.svc:8443')).toBe('inventory');
    expect(reg.label('https://other:8443')).toBe('https://other:8443');
    expect(reg.expectation(undefined, 'https://inventory.shop.svc:8443', 'GET /')).toBe(inventory.expectation);
    // No silent fallback to the URL's host name: an origin that is no upstream must say whom it expects.
    expect(() => reg.expectation(undefined, 'https://other:8443', 'GET / to upstream https://other:8443')).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_CONFIG_INVALID',
        message:
          'GET / to upstream https://other:8443: https://other:8443 is not the origin of a configured upstream ' +
          '(client.upstreams: inventory: https://inventory.shop.svc:8443), so nothing says which server identity to demand; ' +
          'pass options.expectPeer (a named peer or a SPIFFE ID), or { hostname } to check a host name, ' +
          'or configure the upstream in "client.upstreams"; nothing was sent',
      }),
    );
    expect(reg.expectation({ hostname: 'other' }, 'https://other:8443', 'GET /').description).toBe('host name other');
    expect(reg.expectation('inventory', 'https://other:8443', 'GET /')).toBe(inventory.expectation);
  });

  it('names at most eight upstreams in the refusal', () => {
    const many = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`u${i}`, { url: `https://u${i}.internal`, expectPeer: 'inventory' }]),
    );
    expect(() => registry(many).expectation(undefined, 'https://other', 'GET /')).toThrow(
      /u7: https:\/\/u7\.internal, 12 more\)/,
    );
  });

  it.each<[configured: string, called: string, same: boolean]>([
    ['https://inventory.shop.svc:8443', 'https://INVENTORY.Shop.svc:8443/x', true],
    ['https://inventory.shop.svc:8443', 'https://inventory.shop.svc.:8443/x', true],
    ['https://inventory.shop.svc.:8443', 'https://inventory.shop.svc:8443/x', true],
    ['https://inventory.shop.svc', 'https://inventory.shop.svc:443/x', true],
    ['https://inventory.shop.svc:443/api', 'https://inventory.shop.svc./x', true],
    ['https://[::1]:8443', 'https://[0:0:0:0:0:0:0:1]:8443/x', true],
    ['https://[::1]', 'https://[::1]:443/x', true],
    ['https://127.0.0.1:8443', 'https://0x7f.0.0.1:8443/x', true],
    ['https://inventory.shop.svc:8443', 'https://inventory.shop.svc:8444/x', false],
    ['https://inventory.shop.svc:8443', 'https://inventory.shop.svc..:8443/x', false],
    ['https://inventory.shop.svc:8443', 'https://inventory.shop:8443/x', false],
    ['https://localhost:8443', 'https://127.0.0.1:8443/x', false],
    ['https://[::1]:8443', 'https://127.0.0.1:8443/x', false],
  ])('finds the upstream configured as %s from %s: %s', (configured, called, same) => {
    const reg = registry({ inventory: { url: configured, expectPeer: 'inventory' } });
    const origin = new URL(called).origin;
    expect(reg.upstreamAt(origin)?.name).toBe(same ? 'inventory' : undefined);
    expect(reg.label(origin)).toBe(same ? 'inventory' : origin);
  });

  it('compiles each expectation once, so that equal expectations share pools', () => {
    const reg = registry();

    expect(reg.compile(INVENTORY)).toBe(reg.compile(INVENTORY));
    expect(reg.compile({ hostname: 'billing.internal' })).toBe(reg.compile({ hostname: 'billing.internal' }));
    expect(reg.compile('inventory')).not.toBe(reg.compile(INVENTORY));
    expect(reg.compile({ hostname: 'billing.internal' })).toMatchObject({
      description: 'host name billing.internal',
      servername: 'billing.internal',
    });
    expect(reg.compile({ hostname: '10.0.0.1' }).servername).toBeUndefined();
  });

  it.each([
    ['an unknown named peer', 'invetnory', 'ERR_MTLS_UNKNOWN_PEER', 'unknown peer "invetnory"'],
    ['an invalid SPIFFE ID', 'spiffe://Shop.test/x', 'ERR_MTLS_CONFIG_INVALID', ''],
    [
      'an empty host name',
      { hostname: '' },
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer.hostname must be a DNS name or an IP address; got ""',
    ],
    [
      'a host name with a space',
      { hostname: 'billing internal' },
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer.hostname must be a DNS name or an IP address; got "billing internal"',
    ],
    [
      'a host name with a port',
      { hostname: 'billing:8443' },
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer.hostname must be a DNS name or an IP address; got "billing:8443"',
    ],
    [
      'a label of 64 characters',
      { hostname: `${'a'.repeat(64)}.internal` },
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer.hostname must be a DNS name or an IP address',
    ],
    [
      'a host name that is not a string',
      { hostname: 42 },
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got { hostname: 42 }',
    ],
    [
      'a number',
      42,
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got 42',
    ],
    [
      'null',
      null,
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got null',
    ],
    [
      'a BigInt',
      1n,
      'ERR_MTLS_CONFIG_INVALID',
      'expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got 1n',
    ],
  ])('refuses %s', (_case, expectPeer, code, message) => {
    expect(() => registry().compile(expectPeer as never)).toThrow(
      expect.objectContaining({ code, message: expect.stringContaining(message) }),
    );
  });

  it.each([
    ['billing.internal', 'host name billing.internal', 'billing.internal'],
    ['Billing.Internal.', 'host name billing.internal.', 'billing.internal.'],
    ['_grpc._tcp.billing', 'host name _grpc._tcp.billing', '_grpc._tcp.billing'],
    ['10.0.0.1', 'host name 10.0.0.1', undefined],
    ['[::1]', 'host name ::1', undefined],
    ['::1', 'host name ::1', undefined],
  ])('compiles the host name %j', (hostname, description, servername) => {
    expect(registry().compile({ hostname })).toMatchObject({ description, servername });
  });

  it('bounds the expectations compiled from call arguments, whatever a caller sends', () => {
    const reg = registry({ inventory: { url: 'https://inventory:8443', expectPeer: 'spiffe://shop.test/ns/shop/sa/*' } });
    const hot = reg.compile('spiffe://shop.test/ns/shop/sa/hot');

    for (let i = 0; i < 4 * MAX_CACHED_EXPECTATIONS; i++) {
      reg.compile(`spiffe://shop.test/ns/shop/sa/caller-${i}`);
      reg.compile({ hostname: `host-${i}.internal` });
      // Used between every two others: the least recently used are evicted, never this one.
      expect(reg.compile('spiffe://shop.test/ns/shop/sa/hot')).toBe(hot);
    }

    expect(reg.cacheSizes).toEqual({ configured: 1, spiffe: MAX_CACHED_EXPECTATIONS, hostNames: MAX_CACHED_EXPECTATIONS });
    // Configuration, named peers and their IDs are never evicted: their pools stay shared.
    expect(reg.compile('spiffe://shop.test/ns/shop/sa/*')).toBe(reg.upstream('inventory').expectation);
  });

  it('keeps named peers and their SPIFFE IDs apart from the LRU', () => {
    const reg = registry();
    const byName = reg.compile('inventory');
    const byId = reg.compile(INVENTORY);

    for (let i = 0; i < 2 * MAX_CACHED_EXPECTATIONS; i++) reg.compile(`spiffe://shop.test/caller-${i}`);

    expect(reg.compile('inventory')).toBe(byName);
    expect(reg.compile(INVENTORY)).toBe(byId);
    expect(reg.cacheSizes).toEqual({ configured: 2, spiffe: MAX_CACHED_EXPECTATIONS, hostNames: 0 });
  });

  it.each([
    ['a query', 'https://inventory:8443/?a=1'],
    ['credentials', 'https://user:pw@inventory:8443'],
    ['plain http', 'http://inventory:8443'],
  ])('refuses an upstream URL with %s', (_case, url) => {
    expect(() => registry({ inventory: { url, expectPeer: INVENTORY } })).toThrow(
      `MtlsModule option "client.upstreams.inventory.url" must be an https:// URL without query, fragment or credentials; got ${JSON.stringify(url)}`,
    );
  });

  it.each([
    ['billing', 'no upstream named "billing" in MtlsModule option "client.upstreams" (configured: "inventory")'],
    [
      'inventroy',
      'no upstream named "inventroy" in MtlsModule option "client.upstreams" (configured: "inventory"); did you mean "inventory"?',
    ],
    [42, 'no upstream named 42 in MtlsModule option "client.upstreams" (configured: "inventory")'],
    [undefined, 'no upstream named undefined in MtlsModule option "client.upstreams" (configured: "inventory")'],
  ])('names the configured upstreams when asked for %j', (name, message) => {
    const reg = registry({ inventory: { url: 'https://inventory:8443', expectPeer: INVENTORY } });

    expect(() => reg.upstream(name as string)).toThrow(expect.objectContaining({ code: 'ERR_MTLS_INVALID_ARGUMENT', message }));
  });
});
