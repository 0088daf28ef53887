import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsHttpsOptions } from '../../lib/index.js';
import { callAs, certificateThumbprint, TestPki, type TestPeer, type TestTokenIssuer } from '../../lib/testing/index.js';
import { DEFAULT_JWT_ISSUER, SPIFFE_IDS, tokensFromEnv } from '../../sample-app/common/sample-config.js';
import { OrdersModule } from '../../sample-app/orders/orders.module.js';

describe("sample orders service: POST /orders/:sku and /refund (the frontend's mTLS AND a user token)", () => {
  let app: INestApplication;
  let frontend: TestPeer;
  let frontend2: TestPeer;
  let inventory: TestPeer;
  let issuer: TestTokenIssuer;

  beforeAll(async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SPIFFE_IDS.orders);
    issuer = await pki.tokenIssuer({ issuer: DEFAULT_JWT_ISSUER });
    const tokens = tokensFromEnv({ JWT_JWKS_FILE: await issuer.writeJwks() });
    app = await NestFactory.create(OrdersModule.register(server.credentials, 'https://127.0.0.1:1', tokens), {
      httpsOptions: mtlsHttpsOptions(),
      logger: false,
    });
    await app.listen(0, '127.0.0.1');
    frontend = await pki.peer(SPIFFE_IDS.frontend);
    frontend2 = await pki.peer(SPIFFE_IDS.frontend);
    inventory = await pki.peer(SPIFFE_IDS.inventory);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('places an order for the frontend with a user token: 201 { sku, user, caller }', async () => {
    const res = await callAs(app, frontend, { token: await issuer.mint({ sub: 'alice', aud: 'orders' }) }).post('/orders/42');
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ sku: '42', user: 'alice', caller: SPIFFE_IDS.frontend });
  });

  it('refunds with a token bound to the caller certificate, and refuses it from another certificate of the same identity', async () => {
    const token = await issuer.mint({
      sub: 'alice',
      aud: 'orders',
      cnf: { 'x5t#S256': certificateThumbprint(frontend.certPem) },
    });
    const ok = await callAs(app, frontend, { token }).post('/orders/42/refund');
    expect(ok.status).toBe(201);
    expect(ok.json()).toEqual({ sku: '42', user: 'alice', caller: SPIFFE_IDS.frontend });
    const replayed = await callAs(app, frontend2, { token }).post('/orders/42/refund');
    expect([replayed.status, replayed.json<{ code: string }>().code]).toEqual([401, 'ERR_MTLS_TOKEN_UNBOUND']);
  });

  it.each([
    ['no token', () => Promise.resolve(undefined), 'frontend', 401, 'ERR_MTLS_TOKEN_MISSING'],
    [
      'an unbound token on /refund',
      () => issuer.mint({ sub: 'alice', aud: 'orders' }),
      'frontend',
      401,
      'ERR_MTLS_TOKEN_UNBOUND',
    ],
    [
      'a token for another audience',
      () => issuer.mint({ sub: 'alice', aud: 'inventory' }),
      'frontend',
      401,
      'ERR_MTLS_TOKEN_INVALID',
    ],
    [
      'a valid token from inventory',
      () => issuer.mint({ sub: 'alice', aud: 'orders' }),
      'inventory',
      403,
      'ERR_MTLS_PEER_DENIED',
    ],
  ])('refuses %s', async (_name, mint, caller, status, code) => {
    const token = await mint();
    const peer = caller === 'frontend' ? frontend : inventory;
    const res = await callAs(app, peer, token === undefined ? {} : { token }).post('/orders/42/refund');
    expect([res.status, res.json<{ code: string }>().code]).toEqual([status, code]);
  });
});
