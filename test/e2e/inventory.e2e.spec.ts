import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsHttpsOptions } from '../../lib/index.js';
import { callAs, TestPki, type IssueOptions, type TestPeer } from '../../lib/testing/index.js';
import { InventoryModule } from '../../sample-app/inventory/inventory.module.js';
import { SPIFFE_IDS } from '../../sample-app/common/sample-config.js';

const ORDERS = SPIFFE_IDS.orders;

/** Resolves to the HTTP status, or to the Node error code when the connection/handshake failed. */
async function outcome(call: Promise<{ status: number }>): Promise<number | string> {
  try {
    return (await call).status;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

describe('sample inventory service over real mTLS', () => {
  let pki: TestPki;
  let app: INestApplication;
  let orders: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SPIFFE_IDS.inventory);
    app = await NestFactory.create(InventoryModule.register(server.credentials), {
      httpsOptions: mtlsHttpsOptions(),
      logger: false,
    });
    await app.listen(0, '127.0.0.1');
    orders = await pki.peer(ORDERS);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('admits orders on GET /stock/:sku and hands it its caller', async () => {
    const res = await callAs(app, orders).get('/stock/42');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ sku: '42', available: 7, caller: ORDERS });
  });

  it('answers 403 with a fixed body to a trusted peer that is not allowed', async () => {
    const admin = await pki.peer(SPIFFE_IDS.admin);
    const res = await callAs(app, admin).get('/stock/42');
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      code: 'ERR_MTLS_PEER_DENIED',
      message: 'peer not allowed',
    });
    expect(res.body).not.toContain('spiffe://');
  });

  it('admits admin on POST /admin/reindex and refuses orders there', async () => {
    const admin = await pki.peer(SPIFFE_IDS.admin);
    expect((await callAs(app, admin).post('/admin/reindex')).status).toBe(202);
    expect((await callAs(app, orders).post('/admin/reindex')).status).toBe(403);
  });

  it('admits any workload of shop.test on /healthz and nobody from another trust domain', async () => {
    const frontend = await pki.peer(SPIFFE_IDS.frontend);
    expect((await callAs(app, frontend).get('/healthz')).status).toBe(200);
    const sameCaOtherDomain = await pki.peer('spiffe://elsewhere.test/ns/shop/sa/orders');
    // The shop.test root does not vouch for elsewhere.test: refused on the connection, before any route.
    expect(typeof (await outcome(callAs(app, sameCaOtherDomain).get('/healthz')))).toBe('string');
  });

  describe('handshakes that must fail', () => {
    it.each([
      ['no certificate', async () => undefined],
      ['a certificate from another CA', async () => pki.foreignPeer(ORDERS)],
      ['an expired certificate', async () => pki.expiredPeer(ORDERS)],
      ['a not yet valid certificate', async () => pki.notYetValidPeer(ORDERS)],
      ['a certificate without clientAuth usage', async () => pki.peer({ spiffeId: ORDERS, extKeyUsage: ['serverAuth'] })],
    ])('%s', async (_name, mint) => {
      const peer = await mint();
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        const result = await outcome(callAs(app, peer, { ca: pki.bundlePem, maxVersion }).get('/stock/42'));
        expect(typeof result, `${maxVersion}: expected a failed connection, got HTTP ${result}`).toBe('string');
      }
    });
  });

  describe('certificates that must never get a 2xx', () => {
    it.each([
      ['a leaf with CA:TRUE', { spiffeId: ORDERS, isCa: true }],
      ['a leaf with keyCertSign', { spiffeId: ORDERS, keyUsage: ['digitalSignature', 'keyCertSign'] }],
      ['two URI SANs', { spiffeId: ORDERS, uris: ['spiffe://shop.test/ns/shop/sa/other'] }],
      ['two URI SANs, orders second', { spiffeId: 'spiffe://shop.test/ns/shop/sa/other', uris: [ORDERS] }],
      ['no SAN at all', { commonName: 'orders' }],
      ['a DNS SAN smuggling the orders URI', { dnsNames: [`x.example, URI:${ORDERS}`] }],
      ['a URI SAN smuggling the orders URI', { uris: [`spiffe://shop.test/ns/a, URI:${ORDERS}`] }],
      ['orders-evil', { spiffeId: 'spiffe://shop.test/ns/shop/sa/orders-evil' }],
      ['a look-alike trust domain', { spiffeId: 'spiffe://shop.test.evil/ns/shop/sa/orders' }],
      ['an upper-case trust domain', { uris: ['spiffe://SHOP.test/ns/shop/sa/orders'] }],
      ['a trailing slash', { uris: [`${ORDERS}/`] }],
      ['a dot segment', { uris: ['spiffe://shop.test/ns/shop/sa/x/../orders'] }],
      ['a percent-encoded path', { uris: ['spiffe://shop.test/ns/shop/sa/%6Frders'] }],
      ['a CN of orders', { commonName: ORDERS, dnsNames: ['orders.shop.test'] }],
    ] satisfies Array<[string, IssueOptions]>)('%s', async (_name, options) => {
      const peer = await pki.peer(options);
      const result = await outcome(callAs(app, peer).get('/stock/42'));
      expect(typeof result === 'number' && result >= 200 && result < 300, `got ${result}`).toBe(false);
    });
  });
});

describe('a CA bundle with an intermediate', () => {
  it('admits peers issued by the intermediate and serves a chain that verifies', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
    const server = await pki.credentials(SPIFFE_IDS.inventory);
    const app = await NestFactory.create(InventoryModule.register(server.credentials), {
      httpsOptions: mtlsHttpsOptions(),
      logger: false,
    });
    try {
      await app.listen(0, '127.0.0.1');
      const res = await callAs(app, await pki.peer(ORDERS)).get('/stock/1001');
      expect(res.status).toBe(200);
      expect(res.json()).toMatchObject({ available: 125, caller: ORDERS });
    } finally {
      await app.close();
    }
  });
});
