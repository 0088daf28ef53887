import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPki, xfccElement, rfc9440Fields, type TestPeer } from '../../lib/testing/index.js';
import { proxyFromEnv, SampleConfigError, servesPlainHttp, SPIFFE_IDS } from '../../sample-app/common/sample-config.js';
import { createSampleApp } from '../../sample-app/common/http-adapter.js';
import { InventoryModule } from '../../sample-app/inventory/inventory.module.js';
import type { ServerCell } from '../support/cells.js';
import { LOOPBACK_CELLS, SPIFFE_CELLS } from '../support/proxy-app.js';
import { rawRequest } from '../support/raw-http.js';

const ENVOY = 'spiffe://shop.test/ns/edge/sa/envoy';

async function startInventory(dir: string, env: NodeJS.ProcessEnv, cell: ServerCell): Promise<INestApplication> {
  const proxy = proxyFromEnv(env);
  // The sample's own factory, on the cell's adapter (ADAPTER and HTTP2 as the sample reads them).
  const app = await createSampleApp(InventoryModule.register({ dir }, proxy), cell, servesPlainHttp(proxy));
  app.useLogger(false);
  await app.listen(0, '127.0.0.1');
  return app;
}

/** Behind a loopback sidecar the sample serves plain HTTP/1.1 on either adapter, whatever HTTP2 says. */
const SAMPLE_LOOPBACK_CELLS = LOOPBACK_CELLS.filter((cell) => !cell.http2);

describe('sample inventory behind a proxy (MTLS_PROXY)', () => {
  let pki: TestPki;
  let dir: string;
  let orders: TestPeer;
  let admin: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    dir = (await pki.credentials(SPIFFE_IDS.inventory)).dir;
    orders = await pki.peer(SPIFFE_IDS.orders);
    admin = await pki.peer(SPIFFE_IDS.admin);
  });

  describe.each(SAMPLE_LOOPBACK_CELLS)(
    'MTLS_PROXY=xfcc, loopback sidecar (Istio defaults: APPEND_FORWARD, Subject/URI/DNS) ($name)',
    (cell) => {
      let app: INestApplication;
      beforeAll(async () => {
        app = await startInventory(dir, { MTLS_PROXY: 'xfcc', MTLS_DIR: dir }, cell);
      });
      afterAll(async () => {
        await app?.close();
      });

      it('answers GET /stock/42 to orders exactly as over mTLS, on plain HTTP', async () => {
        const header = xfccElement(orders, { by: SPIFFE_IDS.inventory });
        const res = await rawRequest(app, '/stock/42', [['x-forwarded-client-cert', header]]);
        expect(res.status).toBe(200);
        expect(res.json()).toEqual({ sku: '42', available: 7, caller: SPIFFE_IDS.orders });
      });

      it("the sidecar's element wins over a client-supplied one claiming admin", async () => {
        const header = `URI=${SPIFFE_IDS.admin},${xfccElement(orders, { by: SPIFFE_IDS.inventory })}`;
        const ok = await rawRequest(app, '/stock/42', [['x-forwarded-client-cert', header]]);
        expect(ok.json()).toMatchObject({ caller: SPIFFE_IDS.orders });
        // A client-supplied first element claiming orders does not help admin, whose sidecar element comes last.
        const res = await rawRequest(app, '/stock/42', [
          ['x-forwarded-client-cert', `URI=${SPIFFE_IDS.orders},${xfccElement(admin)}`],
        ]);
        expect(res.status).toBe(403);
      });

      it('MTLS_DIR is set: a forwarded certificate from another CA is refused', async () => {
        const foreign = await pki.foreignPeer(SPIFFE_IDS.orders);
        const res = await rawRequest(app, '/stock/42', [['x-forwarded-client-cert', xfccElement(foreign, { cert: true })]]);
        expect(res.status).toBe(401);
      });
    },
  );

  it.each(SPIFFE_CELLS)(
    'MTLS_PROXY=rfc9440 with MTLS_PROXY_TRUST=spiffe://…: keeps the mTLS server, the proxy names the caller ($name)',
    async (cell) => {
      const app = await startInventory(dir, { MTLS_PROXY: 'rfc9440', MTLS_PROXY_TRUST: ENVOY, MTLS_DIR: dir }, cell);
      try {
        const envoy = await pki.peer(ENVOY);
        const fields: [string, string][] = [['Client-Cert', rfc9440Fields(orders).clientCert]];
        const res = await rawRequest(app, '/stock/42', fields, envoy, cell.http2);
        expect(res.json()).toEqual({ sku: '42', available: 7, caller: SPIFFE_IDS.orders });
        const forged = await rawRequest(app, '/stock/42', fields, admin, cell.http2);
        expect(forged.status).toBe(401);
      } finally {
        await app.close();
      }
    },
  );

  it.each<[NodeJS.ProcessEnv, unknown]>([
    [{}, undefined],
    [{ MTLS_PROXY: 'xfcc' }, { header: 'xfcc', trust: 'loopback', verifyChain: false }],
    [
      { MTLS_PROXY: 'xfcc', MTLS_CA_FILE: '/ca.pem' },
      { header: 'xfcc', trust: 'loopback', verifyChain: true },
    ],
    [
      { MTLS_PROXY: 'rfc9440', MTLS_PROXY_TRUST: ENVOY },
      { header: 'rfc9440', trust: { spiffeIds: [ENVOY] } },
    ],
  ])('proxyFromEnv(%j)', (env, expected) => {
    expect(proxyFromEnv(env)).toEqual(expected);
  });

  it.each<[NodeJS.ProcessEnv, RegExp]>([
    [{ MTLS_PROXY: 'envoy' }, /MTLS_PROXY must be xfcc or rfc9440, got "envoy"/],
    [{ MTLS_PROXY_TRUST: 'loopback' }, /MTLS_PROXY_TRUST is set but MTLS_PROXY is not/],
    [
      { MTLS_PROXY: 'xfcc', MTLS_PROXY_TRUST: 'any' },
      /MTLS_PROXY_TRUST must be loopback or the proxy's spiffe:\/\/ ID, got "any"/,
    ],
  ])('refuses %j', (env, message) => {
    expect(() => proxyFromEnv(env)).toThrow(SampleConfigError);
    expect(() => proxyFromEnv(env)).toThrow(message);
  });
});
