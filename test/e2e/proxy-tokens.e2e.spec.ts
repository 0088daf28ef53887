import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, RequireToken } from '../../lib/index.js';
import { certificateThumbprint, TestPki, xfccElement, type TestPeer, type TestTokenIssuer } from '../../lib/testing/index.js';
import { cellRequest } from '../support/raw-http.js';
import { LOOPBACK_CELLS, ORDERS, startProxyApp } from '../support/proxy-app.js';

@Controller('bound')
@AllowPeers('orders')
class BoundController {
  @Get()
  @RequireToken('shop', { bind: 'certificate' })
  get(): { ok: true } {
    return { ok: true };
  }
}

describe.each(LOOPBACK_CELLS)('proxy mode: tokens bound to the forwarded certificate (RFC 8705 cnf) ($name)', (cell) => {
  const send = cellRequest(cell);
  let pki: TestPki;
  let app: INestApplication;
  let issuer: TestTokenIssuer;
  let orders: TestPeer;
  let other: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    issuer = await pki.tokenIssuer({ issuer: 'https://issuer.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    [orders, other] = await Promise.all([pki.peer(ORDERS), pki.peer(ORDERS)]);
    app = await startProxyApp(
      cell,
      {
        credentials: server.credentials,
        proxy: { header: 'xfcc', trust: 'loopback' },
        tokens: { issuers: { shop: { issuer: 'https://issuer.test', audience: 'orders', jwks: await issuer.writeJwks() } } },
      },
      [BoundController],
    );
  });

  afterAll(async () => {
    await app?.close();
  });

  const call = async (xfcc: string, cnfOf: TestPeer) => {
    const token = await issuer.mint({ sub: 'u', aud: 'orders', cnf: { 'x5t#S256': certificateThumbprint(cnfOf.certPem) } });
    return send(app, '/bound', [
      ['x-forwarded-client-cert', xfcc],
      ['authorization', `Bearer ${token}`],
    ]);
  };

  it('admits a token whose cnf is the forwarded certificate', async () => {
    expect((await call(xfccElement(orders, { cert: true }), orders)).status).toBe(200);
  });

  it('refuses the same token with another certificate of the same SPIFFE ID forwarded', async () => {
    const res = await call(xfccElement(other, { cert: true }), orders);
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'ERR_MTLS_TOKEN_UNBOUND' });
  });

  it('a text-only element without Hash binds nothing: refused', async () => {
    const res = await call(xfccElement(orders).replace(/Hash=[0-9a-f]+;/, ''), orders);
    expect(res.status).toBe(401);
  });
});
