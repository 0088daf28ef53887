import { describe, expect, it } from 'vitest';
import { UpstreamRegistry } from '../../lib/client/upstream-registry.js';
import { URL_HOST_NAME } from '../../lib/client/upstream-identity.js';
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
    expect(reg.expectation(undefined, 'https://inventory.shop.svc:8443')).toBe(inventory.expectation);
    expect(reg.expectation(undefined, 'https://other:8443')).toBe(URL_HOST_NAME);
  });

  it('compiles each expectation once, so that equal expectations share pools', () => {
    const reg = registry();

    expect(reg.compile(INVENTORY)).toBe(reg.compile(INVENTORY));
    expect(reg.compile({ hostname: 'billing.internal' })).toBe(reg.compile({ hostname: 'billing.internal' }));
    expect(reg.compile('inventory')).not.toBe(reg.compile(INVENTORY));
    expect(reg.compile({ hostname: 'billing.internal' })).toMatchObject({ description: 'host name billing.internal', servername: 'billing.internal' });
    expect(reg.compile({ hostname: '10.0.0.1' }).servername).toBeUndefined();
  });

  it.each([
    ['an unknown named peer', 'invetnory', 'ERR_MTLS_UNKNOWN_PEER', 'unknown peer "invetnory"'],
    ['an invalid SPIFFE ID', 'spiffe://Shop.test/x', 'ERR_MTLS_CONFIG_INVALID', ''],
    ['an empty host name', { hostname: '' }, 'ERR_MTLS_CONFIG_INVALID', 'expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got {"hostname":""}'],
  ])('refuses %s', (_case, expectPeer, code, message) => {
    expect(() => registry().compile(expectPeer as never)).toThrow(expect.objectContaining({ code, message: expect.stringContaining(message) }));
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

  it('names the configured upstreams when asked for an unknown one', () => {
    expect(() => registry({ inventory: { url: 'https://inventory:8443', expectPeer: INVENTORY } }).upstream('billing')).toThrow(
      'no upstream named "billing" in MtlsModule option "client.upstreams" (configured: "inventory")',
    );
  });
});
