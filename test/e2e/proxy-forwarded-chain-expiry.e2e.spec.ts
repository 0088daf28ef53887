import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  rfc9440Fields,
  secretFiles,
  TestPki,
  writeKubernetesSecret,
  xfccElement,
  type IssuedCertificate,
  type TestPeer,
} from '../../lib/testing/index.js';
import { temporaryDir } from '../support/temporary-dirs.js';
import { cellRequest } from '../support/raw-http.js';
import { LOOPBACK_CELLS, ORDERS, startProxyApp } from '../support/proxy-app.js';

const SIDECAR = 'spiffe://shop.test/ns/shop/sa/inventory';
/** How long the forwarded chain's intermediate CA stays valid after it is made. */
const INTERMEDIATE_LIFETIME_MS = 2_500;

/*
 * A forwarded caller's verdict is cached by the header's text; on a TLS connection the peer is served only until the
 * earliest notAfter of its chain. A forwarded chain whose intermediate CA expires before the leaf must be refused from
 * then on, cached or not, as a handshake with the same chain would be.
 */
describe.each(LOOPBACK_CELLS)('proxy mode: a forwarded chain whose intermediate expires ($name)', (cell) => {
  const send = cellRequest(cell);
  let pki: TestPki;
  let app: INestApplication;
  let orders: IssuedCertificate;
  let intermediateNotAfter: number;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SIDECAR);
    app = await startProxyApp(cell, { credentials: server.credentials, proxy: { header: 'rfc9440', trust: 'loopback' } });
    const intermediate = await pki.ca.createIntermediate({
      commonName: 'short-lived intermediate',
      notAfter: new Date(Date.now() + INTERMEDIATE_LIFETIME_MS),
    });
    intermediateNotAfter = intermediate.notAfter.getTime();
    // The leaf outlives its issuer by a day: only the intermediate's notAfter ends the chain.
    orders = await intermediate.issue({ spiffeId: ORDERS });
  });

  afterAll(async () => {
    await app?.close();
    await pki?.dispose();
  });

  it('is admitted while the chain is valid, and refused once the intermediate has expired, though the leaf is cached', async () => {
    const { clientCert, clientCertChain } = rfc9440Fields(orders);
    const headers: [string, string][] = [
      ['Client-Cert', clientCert],
      ['Client-Cert-Chain', clientCertChain!],
    ];
    const before = await send(app, '/orders-only', headers);
    expect(before.status).toBe(200);
    expect(before.json()).toMatchObject({ spiffeId: ORDERS, source: 'rfc9440' });

    // Past the intermediate's notAfter (whole seconds in the certificate), the leaf still valid for a day.
    await sleep(Math.max(0, intermediateNotAfter - Date.now()) + 1_100);
    expect(orders.notAfter.getTime()).toBeGreaterThan(Date.now());

    const after = await send(app, '/orders-only', headers);
    expect(after.status).toBe(401);
    expect(after.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
  });

  it('a cached forwarded leaf is refused once it expires (held on main)', async () => {
    const leaf = await pki.peer({ spiffeId: ORDERS, notAfter: new Date(Date.now() + INTERMEDIATE_LIFETIME_MS) });
    const headers: [string, string][] = [['Client-Cert', rfc9440Fields(leaf).clientCert]];
    expect((await send(app, '/orders-only', headers)).status).toBe(200);
    await sleep(Math.max(0, leaf.notAfter.getTime() - Date.now()) + 1_100);
    const after = await send(app, '/orders-only', headers);
    expect(after.status).toBe(401);
    expect(after.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
  });
});

/*
 * A forwarded certificate is checked against the module's CRLs. A CRL update (a new credential set) must refuse a
 * caller whose verdict was cached under the previous set; a CRL whose nextUpdate passes without a successor must end a
 * cached verdict too, as a handshake and a fresh derivation refuse the chain then.
 */
describe.each(LOOPBACK_CELLS)('proxy mode: CRLs and a cached forwarded verdict ($name)', (cell) => {
  const send = cellRequest(cell);
  const CRL_LIFETIME_MS = 3_000;
  let pki: TestPki;
  let app: INestApplication;
  let dir: string;
  let server: TestPeer;
  let orders: TestPeer;
  let crlNextUpdate: number;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    server = await pki.peer(SIDECAR);
    orders = await pki.peer(ORDERS);
    dir = await temporaryDir('nestjs-mtls-proxy-crl-');
    // A CRL valid for a few seconds only: no successor is written for the nextUpdate test.
    crlNextUpdate = Date.now() + CRL_LIFETIME_MS;
    await writeKubernetesSecret(dir, {
      ...secretFiles(server),
      'ca.crl': await pki.ca.createCrl([], { nextUpdate: new Date(crlNextUpdate) }),
    });
    app = await startProxyApp(cell, {
      credentials: { dir, crlFiles: ['ca.crl'] },
      proxy: { header: 'xfcc', trust: 'loopback' },
    });
  });

  afterAll(async () => {
    await app?.close();
    await pki?.dispose();
  });

  it('refuses a cached caller once its CRL passes nextUpdate, as a fresh derivation does', async () => {
    const element: [string, string][] = [['X-Forwarded-Client-Cert', xfccElement(orders, { cert: true })]];
    expect((await send(app, '/orders-only', element)).status).toBe(200);
    await sleep(Math.max(0, crlNextUpdate - Date.now()) + 1_100);
    // Control: a caller never seen before (no cached verdict) is refused by the chain check's stale CRL.
    const fresh = await pki.peer(ORDERS);
    const control = await send(app, '/orders-only', [['X-Forwarded-Client-Cert', xfccElement(fresh, { cert: true })]]);
    expect(control.status).toBe(401);
    const cached = await send(app, '/orders-only', element);
    expect(cached.status).toBe(401);
    expect(cached.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
  });

  it('refuses a cached caller on the next request once a CRL update revokes it (Cert with Hash)', async () => {
    await writeKubernetesSecret(dir, { ...secretFiles(server), 'ca.crl': await pki.ca.createCrl([]) });
    const element: [string, string][] = [['X-Forwarded-Client-Cert', xfccElement(orders, { cert: true })]];
    await expect.poll(async () => (await send(app, '/orders-only', element)).status, { timeout: 10_000 }).toBe(200);
    await writeKubernetesSecret(dir, { ...secretFiles(server), 'ca.crl': await pki.ca.createCrl([orders.serialNumber]) });
    await expect.poll(async () => (await send(app, '/orders-only', element)).status, { timeout: 10_000 }).toBe(401);
  });
});
