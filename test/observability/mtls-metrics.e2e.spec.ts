import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { X509Certificate } from 'node:crypto';
import { register, Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CredentialsStatus, MtlsConfigError, MtlsEvents } from '../../lib/index.js';
import { callAs, TestPki, type TestPeer } from '../../lib/testing/index.js';
import { MTLS_METRIC_NAMES, MtlsMetrics, MtlsMetricsModule, OTHER_LABEL } from '../../lib/observability/prometheus/index.js';
import {
  ADMIN,
  HOUR,
  INVENTORY,
  metricValue,
  ORDERS,
  reloadFromDisk,
  serverCredentials,
  startObservedApp,
  StockController,
  writeMismatchedSet,
  writeNewSet,
} from './fixtures.js';

const seconds = (date: Date): number => date.getTime() / 1000;
const caNotAfter = (pki: TestPki): Date => new Date(new X509Certificate(pki.bundlePem).validTo);

describe('MtlsMetrics in a real mTLS app', () => {
  let pki: TestPki;
  let server: Awaited<ReturnType<typeof serverCredentials>>;
  let app: INestApplication;
  const registry = new Registry();
  let peers: Record<'orders' | 'admin' | 'foreign', TestPeer>;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    server = await serverCredentials(pki, 24 * HOUR);
    peers = {
      orders: await pki.peer(ORDERS),
      admin: await pki.peer(ADMIN),
      foreign: await pki.foreignPeer(ORDERS),
    };
    ({ app } = await startObservedApp(
      { credentials: server.credentials, peers: { orders: ORDERS } },
      { imports: [MtlsMetricsModule.forRoot({ registry })], controllers: [StockController] },
    ));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('exposes the NotAfter of the certificate and of the CA bundle, read at scrape time', async () => {
    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'identity' })).toBe(
      seconds(server.peer.notAfter),
    );
    expect(await metricValue(registry, MTLS_METRIC_NAMES.caNotAfter, { set: 'identity' })).toBe(seconds(caNotAfter(pki)));
    // No separate client set: no client series.
    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'client' })).toBeUndefined();

    const text = await registry.metrics();
    expect(text).toContain(`# TYPE ${MTLS_METRIC_NAMES.certificateNotAfter} gauge`);
    expect(text).toContain(`${MTLS_METRIC_NAMES.certificateNotAfter}{set="identity"} ${seconds(server.peer.notAfter)}\n`);
  });

  it('starts every reload series at zero', async () => {
    for (const result of ['success', 'refused']) {
      expect(await metricValue(registry, MTLS_METRIC_NAMES.credentialReloads, { set: 'identity', result })).toBe(0);
    }
  });

  it('counts a denied peer by code and route', async () => {
    expect((await callAs(app, peers.orders).get('/stock')).status).toBe(200);
    expect((await callAs(app, peers.admin).get('/stock')).status).toBe(403);
    expect((await callAs(app, peers.admin).get('/stock')).status).toBe(403);

    const denied = { reason: 'ERR_MTLS_PEER_DENIED', route: 'StockController.get' };
    expect(await metricValue(registry, MTLS_METRIC_NAMES.peerDenied, denied)).toBe(2);
  });

  it('counts rejected handshakes by reason: a client of another CA, a client without a certificate', async () => {
    await expect(callAs(app, peers.foreign).get('/stock')).rejects.toThrow();
    await expect(callAs(app, undefined, { ca: pki.bundlePem }).get('/stock')).rejects.toThrow();

    // The server learns of the failure on its own schedule; the client may see the reset first.
    await expect
      .poll(() => metricValue(registry, MTLS_METRIC_NAMES.handshakeFailures, { reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }))
      .toBe(1);
    await expect
      .poll(() =>
        metricValue(registry, MTLS_METRIC_NAMES.handshakeFailures, { reason: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' }),
      )
      .toBe(1);
  });

  it('counts a refused reload, and keeps the gauges on the set that still serves', async () => {
    await writeMismatchedSet(pki, server.dir);
    await reloadFromDisk(app);

    const reloads = (result: string) => metricValue(registry, MTLS_METRIC_NAMES.credentialReloads, { set: 'identity', result });
    expect(await reloads('refused')).toBe(1);
    expect(await reloads('success')).toBe(0);
    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'identity' })).toBe(
      seconds(server.peer.notAfter),
    );
  });

  it('counts a successful reload, and the gauge follows the new certificate', async () => {
    const next = await writeNewSet(pki, server.dir, 48 * HOUR);
    await reloadFromDisk(app);

    expect(await metricValue(registry, MTLS_METRIC_NAMES.credentialReloads, { set: 'identity', result: 'success' })).toBe(1);
    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'identity' })).toBe(seconds(next.notAfter));
  });

  it('maps unknown handshake reasons and denial codes to other', async () => {
    const events = app.get(MtlsEvents);
    events.emit({ type: 'handshake.rejected', reason: 'some new OpenSSL text', remoteAddress: '127.0.0.1' });
    events.emit({ type: 'peer.denied', code: 'ERR_SOMETHING_ELSE', route: 'StockController.get', peer: undefined });

    expect(await metricValue(registry, MTLS_METRIC_NAMES.handshakeFailures, { reason: OTHER_LABEL })).toBe(1);
    const denied = { reason: OTHER_LABEL, route: 'StockController.get' };
    expect(await metricValue(registry, MTLS_METRIC_NAMES.peerDenied, denied)).toBe(1);
  });

  it('refuses a second MtlsMetrics on the same registry, naming the metrics and the fix', () => {
    const second = () => new MtlsMetrics(app.get(MtlsEvents), app.get(CredentialsStatus), registry);
    expect(second).toThrow(MtlsConfigError);
    expect(second).toThrow(
      `MtlsMetrics: ${Object.values(MTLS_METRIC_NAMES).join(', ')} already registered in this prom-client Registry; ` +
        'close the other MtlsMetrics first, or give each application its own Registry',
    );
  });
});

describe('MtlsMetrics lifecycle and sets', () => {
  let pki: TestPki;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('has a series per set when the client set is separate', async () => {
    const registry = new Registry();
    const server = await serverCredentials(pki, 24 * HOUR);
    const client = await serverCredentials(pki, 12 * HOUR, ORDERS);
    ({ app } = await startObservedApp(
      { credentials: server.credentials, client: { credentials: client.credentials } },
      { imports: [MtlsMetricsModule.forRoot({ registry })] },
    ));

    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'identity' })).toBe(
      seconds(server.peer.notAfter),
    );
    expect(await metricValue(registry, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'client' })).toBe(
      seconds(client.peer.notAfter),
    );
    expect(await metricValue(registry, MTLS_METRIC_NAMES.credentialReloads, { set: 'client', result: 'refused' })).toBe(0);
  });

  it('registers in the global registry by default and unregisters when the app closes', async () => {
    const server = await serverCredentials(pki, 24 * HOUR, INVENTORY);
    ({ app } = await startObservedApp({ credentials: server.credentials }, { imports: [MtlsMetricsModule.forRoot()] }));
    expect(await metricValue(register, MTLS_METRIC_NAMES.certificateNotAfter, { set: 'identity' })).toBe(
      seconds(server.peer.notAfter),
    );

    await app.close();
    app = undefined;

    for (const name of Object.values(MTLS_METRIC_NAMES)) expect(register.getSingleMetric(name)).toBeUndefined();
  });

  it('works without Nest DI, and stops counting once closed', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials }));
    const registry = new Registry();
    const events = app.get(MtlsEvents);
    const metrics = new MtlsMetrics(events, app.get(CredentialsStatus), registry);

    events.emit({ type: 'connection.revoked', reason: 'CERT_REVOKED', peer: ORDERS });
    expect(await metricValue(registry, MTLS_METRIC_NAMES.connectionsRevoked)).toBe(1);

    metrics.close();
    metrics.close();
    events.emit({ type: 'connection.revoked', reason: 'CERT_REVOKED', peer: ORDERS });
    expect(registry.getMetricsAsArray()).toEqual([]);
  });
});
