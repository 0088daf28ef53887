import 'reflect-metadata';
import { Controller, Get, Module, Param, type DynamicModule, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, MtlsModule, mtlsHttpsOptions, type CredentialsSourceOptions } from '../../lib/index.js';
import { TestPki } from '../../lib/testing/index.js';

// The README's supertest variant, run for real: supertest against the mTLS server with a TestPki peer.

@Controller('stock')
class StockController {
  @Get(':sku')
  @AllowPeers('orders')
  get(@Param('sku') sku: string) {
    return { sku, available: 7 };
  }
}

@Module({})
class AppModule {
  static register(credentials: CredentialsSourceOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [MtlsModule.forRoot({ credentials, peers: { orders: 'spiffe://shop.test/ns/shop/sa/orders' } })],
      controllers: [StockController],
    };
  }
}

describe('supertest against an mTLS app', () => {
  let pki: TestPki;
  let app: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.register(server.credentials)] }).compile();
    app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger: false });
    await app.listen(0, '127.0.0.1');
  });

  afterAll(async () => {
    await app.close();
    await pki.dispose();
  });

  it('admits a peer given with .cert().key().ca()', async () => {
    const orders = await pki.peer('spiffe://shop.test/ns/shop/sa/orders');
    const res = await request(app.getHttpServer()).get('/stock/42').cert(orders.chainPem).key(orders.keyPem).ca(pki.bundlePem);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sku: '42', available: 7 });
  });

  it('gets 403 for another peer', async () => {
    const payments = await pki.peer('spiffe://shop.test/ns/shop/sa/payments');
    const res = await request(app.getHttpServer())
      .get('/stock/42')
      .cert(payments.chainPem)
      .key(payments.keyPem)
      .ca(pki.bundlePem);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ code: 'ERR_MTLS_PEER_DENIED' });
  });

  it('is refused without a client certificate, as the Nest template e2e test is', async () => {
    await expect(request(app.getHttpServer()).get('/stock/42').ca(pki.bundlePem)).rejects.toThrow(
      /certificate required|ECONNRESET|socket hang up/,
    );
  });
});

describe('TestPki.dispose', () => {
  it('removes the folders credentials() made, and only those', async () => {
    const { stat, mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const own = await mkdtemp(join(tmpdir(), 'nestjs-mtls-own-'));
    await using pki = await TestPki.create({ trustDomain: 'shop.test' });
    const made = await pki.credentials('spiffe://shop.test/ns/shop/sa/a');
    const given = await pki.credentials('spiffe://shop.test/ns/shop/sa/b', own);
    await pki.dispose();
    await expect(stat(made.dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(given.dir)).isDirectory()).toBe(true);
    await pki.dispose(); // twice is fine
    await rm(own, { recursive: true });
  });

  it("removes the folders its token issuers' writeJwks() made, and never a file it was given", async () => {
    const { stat, mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { dirname, join } = await import('node:path');
    const own = await mkdtemp(join(tmpdir(), 'nestjs-mtls-own-'));
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const issuer = await pki.tokenIssuer();
    const made = [await issuer.writeJwks(), await issuer.writeJwks()];
    const given = await issuer.writeJwks(join(own, 'jwks.json'));
    await pki.dispose();
    for (const file of made) await expect(stat(dirname(file))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(given)).isFile()).toBe(true);
    // The issuer still writes after a dispose, and its own dispose removes what it wrote since.
    const later = await issuer.writeJwks();
    await issuer.dispose();
    await expect(stat(dirname(later))).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(own, { recursive: true });
  });
});
