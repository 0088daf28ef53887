import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPki, xfccElement, type TestPeer } from '../../lib/testing/index.js';
import { ADMIN, LOOPBACK_CELLS, ORDERS, startProxyApp } from '../support/proxy-app.js';
import { cellRequest } from '../support/raw-http.js';

/*
 * Fastify's inject() is denied on guarded routes (issue 12), in loopback proxy mode too: light-my-request's fake socket
 * reports remoteAddress 127.0.0.1, so "comes from loopback" must mean a real TCP connection from loopback.
 */

const XFCC = 'x-forwarded-client-cert';

/** The loopback cells whose adapter has inject(): Fastify's. */
const INJECT_CELLS = LOOPBACK_CELLS.filter((cell) => cell.adapter === 'fastify');

describe.each(INJECT_CELLS)('proxy mode, loopback trust, inject() ($name, plain HTTP on 127.0.0.1)', (cell) => {
  const send = cellRequest(cell);
  let pki: TestPki;
  let app: NestFastifyApplication;
  let admin: TestPeer;
  let orders: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    [admin, orders] = await Promise.all([pki.peer(ADMIN), pki.peer(ORDERS)]);
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = (await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'xfcc', trust: 'loopback' },
    })) as NestFastifyApplication;
  });

  afterAll(async () => {
    await app?.close();
  });

  it('control: a real loopback connection with the sidecar header → 200 (text identity)', async () => {
    const res = await send(app as unknown as INestApplication, '/orders-only', [
      [XFCC, `By=spiffe://shop.test/ns/edge/sa/envoy;URI=${ORDERS}`],
    ]);
    expect(res.status).toBe(200);
  });

  it('inject() (no socket at all) carrying an XFCC header naming the admin is denied', async () => {
    const res = await app
      .getHttpAdapter()
      .getInstance()
      .inject({ method: 'GET', url: '/admin-only', headers: { [XFCC]: xfccElement(admin) } });
    expect(res.statusCode).toBe(401);
  });

  it('inject() with a text-only element naming orders is denied', async () => {
    const res = await app
      .getHttpAdapter()
      .getInstance()
      .inject({ method: 'GET', url: '/orders-only', headers: { [XFCC]: `URI=${ORDERS}` } });
    expect(res.statusCode).toBe(401);
    void orders;
  });
});
