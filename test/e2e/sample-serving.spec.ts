import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { callAs, TestPki } from '../../lib/testing/index.js';
import { createSampleApp, servingFromEnv } from '../../sample-app/common/http-adapter.js';
import { SampleConfigError, SPIFFE_IDS } from '../../sample-app/common/sample-config.js';
import { InventoryModule } from '../../sample-app/inventory/inventory.module.js';

describe('the sample services’ ADAPTER and HTTP2 variables', () => {
  it.each([
    [{}, { adapter: 'express', http2: false }],
    [{ ADAPTER: 'express' }, { adapter: 'express', http2: false }],
    [{ ADAPTER: 'fastify' }, { adapter: 'fastify', http2: false }],
    [
      { ADAPTER: 'fastify', HTTP2: '1' },
      { adapter: 'fastify', http2: true },
    ],
    [
      { ADAPTER: 'fastify', HTTP2: '0' },
      { adapter: 'fastify', http2: false },
    ],
  ])('%j → %j', (env, expected) => {
    expect(servingFromEnv(env)).toEqual(expected);
  });

  it.each([
    [{ ADAPTER: 'koa' }, 'ADAPTER must be "express" or "fastify", got "koa"'],
    [{ HTTP2: 'yes', ADAPTER: 'fastify' }, 'HTTP2 must be "1" or "0", got "yes"'],
    [{ HTTP2: '1' }, 'HTTP2=1 needs ADAPTER=fastify: the Express adapter serves HTTP/1.1 only'],
  ])('%j is refused: %s', (env, message) => {
    expect(() => servingFromEnv(env)).toThrow(new SampleConfigError(message));
  });

  it.each([
    { adapter: 'fastify', http2: false },
    { adapter: 'fastify', http2: true },
  ] as const)('inventory serves the same answers on %j', async (serving) => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const app = await createSampleApp(
      InventoryModule.register((await pki.credentials(SPIFFE_IDS.inventory)).credentials),
      serving,
    );
    app.useLogger(false);
    await app.listen(0, '127.0.0.1');
    try {
      const orders = await pki.peer(SPIFFE_IDS.orders);
      const res = await callAs(app, orders, { http2: serving.http2 }).get('/stock/42');
      expect([res.status, res.json()]).toEqual([200, { sku: '42', available: 7, caller: SPIFFE_IDS.orders }]);
      expect((await callAs(app, await pki.peer(SPIFFE_IDS.frontend), { http2: serving.http2 }).get('/stock/42')).status).toBe(
        403,
      );
    } finally {
      await app.close();
    }
  });
});
