import { createSecureContext, type SecureContext } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientGeneration, MAX_POOLS_PER_GENERATION, type PoolSettings } from '../../lib/client/client-generation.js';
import { sendRequest } from '../../lib/client/client-request.js';
import { expectHostName } from '../../lib/client/upstream-identity.js';
import { UpstreamRegistry } from '../../lib/client/upstream-registry.js';
import { UpstreamError } from '../../lib/errors/mtls.errors.js';
import { TestPki } from '../../lib/testing/index.js';
import { eventually, startUpstream, type UpstreamServer } from './upstream-server.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
/** The servers of these tests listen on 127.0.0.1 with an IP SAN for it; the expectation is also the pools' key. */
const BY_HOST = expectHostName('127.0.0.1');
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

let pki: TestPki;
let context: SecureContext;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test' });
  const orders = await pki.peer({ spiffeId: ORDERS });
  context = createSecureContext({ key: orders.keyPem, cert: orders.chainPem, ca: pki.bundlePem });
});

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

function generation(settings: Partial<PoolSettings> = {}): ClientGeneration {
  const built = new ClientGeneration(1, context, {
    connections: 1,
    timeoutMs: 5_000,
    drainTimeoutMs: 5_000,
    maxPools: MAX_POOLS_PER_GENERATION,
    ...settings,
  });
  cleanups.push(() => built.close());
  return built;
}

async function upstream(handler?: Parameters<typeof startUpstream>[2]): Promise<UpstreamServer> {
  const server = await startUpstream(await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'] }), pki.bundlePem, handler);
  cleanups.push(() => server.close());
  return server;
}

describe('ClientGeneration pool bound', () => {
  it('holds at most maxPools pools however many origins callers name, closing the ones it drops', () => {
    const pools = generation();
    const first = pools.pool('https://first.internal:8443', BY_HOST, 'first');

    for (let i = 0; i < 4 * MAX_POOLS_PER_GENERATION; i++) {
      pools.pool(`https://host-${i}.internal:8443`, BY_HOST, `host-${i}`);
      expect(pools.stats.pools).toBeLessThanOrEqual(MAX_POOLS_PER_GENERATION);
    }

    expect(pools.stats).toEqual({ pools: MAX_POOLS_PER_GENERATION, expectations: 1 });
    expect(first.pool.closed).toBe(true);
  });

  it('holds at most maxPools pools however many expectations callers name, and drops emptied expectations', () => {
    const registry = new UpstreamRegistry(new Map(), new Map());
    const pools = generation({ maxPools: 8 });

    for (let i = 0; i < 100; i++) {
      pools.pool('https://inventory.internal:8443', registry.compile({ hostname: `host-${i}.internal` }), 'inventory');
    }

    expect(pools.stats).toEqual({ pools: 8, expectations: 8 });
  });

  it('drops the least recently used pool, not the oldest', () => {
    const pools = generation({ maxPools: 3 });
    const a = pools.pool('https://a.internal', BY_HOST, 'a');
    const b = pools.pool('https://b.internal', BY_HOST, 'b');
    pools.pool('https://c.internal', BY_HOST, 'c');
    expect(pools.pool('https://a.internal', BY_HOST, 'a')).toBe(a);

    pools.pool('https://d.internal', BY_HOST, 'd');

    expect(b.pool.closed).toBe(true);
    expect(a.pool.closed).toBe(false);
    expect(pools.pool('https://a.internal', BY_HOST, 'a')).toBe(a);
    const reopened = pools.pool('https://b.internal', BY_HOST, 'b');
    expect(reopened).not.toBe(b);
    expect(reopened.pool.closed).toBe(false);
  });

  it('lets the requests of a dropped pool finish, then closes its connections', async () => {
    let answer: (() => void) | undefined;
    const slow = await upstream((_request, response) => {
      answer = () => response.end('late but complete');
    });
    const pools = generation({ maxPools: 1 });
    const route = pools.pool(slow.origin, BY_HOST, 'slow');
    const call = sendRequest(route, 'GET', '/slow', undefined, undefined, { timeoutMs: 5_000, maxResponseBytes: 1024 });
    await eventually(() => answer !== undefined);

    pools.pool('https://other.internal:8443', BY_HOST, 'other');
    expect(route.pool.closed).toBe(true);
    answer?.();

    await expect(call).resolves.toMatchObject({ status: 200, text: 'late but complete' });
    await eventually(() => slow.connections.size === 0);
  });

  it('waits for dropped pools when it closes, and opens none after', async () => {
    const server = await upstream();
    const pools = generation({ maxPools: 1 });
    const route = pools.pool(server.origin, BY_HOST, 'server');
    await sendRequest(route, 'GET', '/', undefined, undefined, { timeoutMs: 5_000, maxResponseBytes: 1024 });
    expect(server.connections.size).toBe(1);
    pools.pool('https://other.internal:8443', BY_HOST, 'other');

    await pools.close();

    await eventually(() => server.connections.size === 0);
    expect(() => pools.pool(server.origin, BY_HOST, 'server')).toThrow(UpstreamError);
  });
});
