import 'reflect-metadata';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialsStatus, MtlsEvents, type CredentialsError } from '../../lib/index.js';
import { MTLS_METRIC_NAMES, MtlsMetrics } from '../../lib/observability/prometheus/index.js';
import { parseCrlPem } from '../../lib/x509/crl.js';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { metricValue } from '../observability/fixtures.js';
import { get, keepAliveAgent, sleep, startLifecycleApp, waitFor, type LifecycleApp } from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const PAYMENTS = 'spiffe://shop.test/ns/shop/sa/payments';

function crlNumber(pem: string): bigint {
  const parsed = parseCrlPem(pem);
  if (!parsed.ok || parsed.crl.crlNumber === undefined) throw new Error('the test CA writes a cRLNumber');
  return parsed.crl.crlNumber;
}

/*
 * CRLs often travel over plain HTTP: whoever can replay an old, validly signed and still unexpired CRL must not be able
 * to un-revoke a peer by getting it written over the current one.
 */
describe('an older CRL written over a newer one', () => {
  let pki: TestPki;
  let dir: string;
  let serverPeer: TestPeer;
  let orders: TestPeer;
  let payments: TestPeer;
  let server: LifecycleApp;
  let metrics: MtlsMetrics;
  const registry = new Registry();

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    serverPeer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    orders = await pki.peer(ORDERS);
    payments = await pki.peer(PAYMENTS);
    dir = await temporaryDir('nestjs-mtls-crl-freshness-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
    server = await startLifecycleApp({
      credentials: { dir, crlFiles: ['ca.crl'] },
      reload: { debounceMs: 20, maxRetryDelayMs: 100 },
    });
    metrics = new MtlsMetrics(server.app.get(MtlsEvents), server.app.get(CredentialsStatus), registry);
  });

  afterAll(async () => {
    metrics?.close();
    await server?.close();
  });

  it('is refused as a rotation: the revoked peer stays out, the refusal is logged once and counted', async () => {
    // Both CRLs are real, signed by the CA and unexpired; the old one predates the revocation.
    const older = await pki.ca.createCrl([]);
    await sleep(5);
    const newer = await pki.ca.createCrl([orders.serialNumber]);
    expect(crlNumber(newer)).toBeGreaterThan(crlNumber(older));

    const agent = keepAliveAgent(orders);
    try {
      const socket: TLSSocket = (await get(server.port, orders, '/ping', { agent })).socket;
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      let version = server.store.version;
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': newer });
      await waitFor('the newer CRL', () => (server.store.version > version ? true : undefined), 3_000);
      await closed;
      await expect(get(server.port, orders, '/ping')).rejects.toThrow();

      version = server.store.version;
      const logsBefore = server.logs.length;
      // With a renewed server certificate in the same write: the whole set is refused, not only the CRL.
      const renewed = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
      await writeKubernetesSecret(dir, { ...secretFiles(renewed), 'ca.crl': older });
      const event = await waitFor(
        'the refusal',
        () =>
          server.events.find(
            (e): e is { type: 'credentials.refused'; set: 'identity'; error: CredentialsError } =>
              e.type === 'credentials.refused',
          ),
        3_000,
      );
      // Retries (20 ms, then up to 100 ms apart) read the same files: no second log line, no second count.
      await sleep(500);

      const file = join(dir, 'ca.crl');
      expect(event.error).toMatchObject({ code: 'ERR_MTLS_CRL_ROLLBACK', file, field: 'crl' });
      expect(event.error.message).toContain(`${file} (crl): `);
      expect(event.error.message).toContain(`"${pki.ca.subject}"`);
      expect(event.error.message).toContain(`cRLNumber ${crlNumber(older)}`);
      expect(event.error.message).toContain(`cRLNumber ${crlNumber(newer)}`);
      expect(event.error.fix).toMatch(/current CRL/);
      expect(server.store.version).toBe(version);
      expect(server.store.current.crlPems).toEqual([newer]);
      const warnings = server.logs.slice(logsBefore).filter((line) => line.level === 'warn');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.message).toContain(
        `identity credentials on disk refused, still serving sha256 ${serverPeer.fingerprint256}`,
      );
      expect(warnings[0]!.message).toContain(event.error.message);
      expect(await metricValue(registry, MTLS_METRIC_NAMES.credentialReloads, { set: 'identity', result: 'refused' })).toBe(1);

      // Still revoked: no new handshake, no way back onto a kept-alive connection; the others are served.
      await expect(get(server.port, orders, '/ping')).rejects.toThrow();
      await expect(get(server.port, orders, '/ping', { agent })).rejects.toThrow();
      const served = await get(server.port, payments, '/ping');
      expect(served.status).toBe(200);
      expect(served.serverFingerprint).toBe(serverPeer.fingerprint256);

      // The CA's next CRL is taken as usual.
      version = server.store.version;
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
      await waitFor('the next CRL', () => (server.store.version > version ? true : undefined), 3_000);
      expect((await get(server.port, orders, '/ping')).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });
});
