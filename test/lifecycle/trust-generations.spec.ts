import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Module } from '@nestjs/common';
import type { HttpsOptions } from '@nestjs/common/interfaces/external/https-options.interface.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsModule, mtlsHttpsOptions } from '../../lib/index.js';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { rawRequest, sessionFrom, startRelay } from '../support/raw-tls.js';
import { ProbeController, startLifecycleApp, waitFor, type LifecycleApp } from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const PING = 'GET /ping HTTP/1.1\r\nhost: inventory\r\nconnection: close\r\n\r\n';

/*
 * Finding 1 (issue 8): a handshake whose ClientHello reached the server before a CRL update and whose second flight
 * arrives after it was verified by the old context. The connection records the trust generation in force when its
 * handshake began and is re-verified against the current one before any byte of HTTP is served.
 */
describe.each(['TLSv1.2', 'TLSv1.3'] as const)('a handshake that straddles a CRL update (%s)', (version) => {
  let pki: TestPki;
  let dir: string;
  let serverPeer: TestPeer;
  let orders: TestPeer;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    serverPeer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    orders = await pki.peer(ORDERS);
    dir = await temporaryDir('nestjs-mtls-straddle-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
    server = await startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] }, reload: { debounceMs: 20 } });
  });

  afterAll(async () => {
    await server?.close();
  });

  const client = (extra: { session?: Buffer } = {}) => ({
    ca: orders.caPem,
    cert: orders.chainPem,
    key: orders.keyPem,
    minVersion: version,
    maxVersion: version,
    ...extra,
  });

  async function straddle(extra: { session?: Buffer }): Promise<Awaited<ReturnType<typeof rawRequest>>> {
    const relay = await startRelay(server.port);
    try {
      const answer = rawRequest(relay.port, PING, client(extra), 5_000);
      await relay.holding;
      const version0 = server.store.version;
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([orders.serialNumber]) });
      await waitFor('the CRL reload', () => (server.store.version > version0 ? true : undefined), 5_000);
      relay.release();
      return await answer;
    } finally {
      await relay.close();
    }
  }

  it('re-verifies a full handshake that completes after the revocation, before HTTP', async () => {
    // Control: the peer is admitted before the revocation.
    expect((await rawRequest(server.port, PING, client())).status).toBe(200);
    const answer = await straddle({});
    expect(answer.status).toBeUndefined();
    expect(server.events).toContainEqual({ type: 'handshake.rejected', reason: 'CERT_REVOKED', remoteAddress: '127.0.0.1' });
    // A fresh handshake is refused by OpenSSL itself.
    expect((await rawRequest(server.port, PING, client())).status).toBeUndefined();
  });

  it('re-verifies a resumed handshake that completes after the revocation', async () => {
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
    await waitFor(
      'the CRL reload',
      async () => ((await rawRequest(server.port, PING, client())).status === 200 ? true : undefined),
      5_000,
      50,
    );
    const session = await sessionFrom(server.port, client());
    const answer = await straddle({ session });
    expect(answer.status).toBeUndefined();
  });
});

/*
 * Finding 2: `setSecureContext` keeps the ticket keys given to the server's constructor, so a session resumed after a
 * revocation keeps its old verdict. MtlsModule refuses them: Node's own per-context keys change with every trust change.
 */
describe('httpsOptions.ticketKeys', () => {
  it('is refused at startup with an error that says why', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const { credentials } = await pki.credentials(SERVER);
    @Module({ imports: [MtlsModule.forRoot({ credentials, reload: { enabled: false } })], controllers: [ProbeController] })
    class TicketKeysModule {}
    const ticketKeys = Buffer.alloc(48, 7);
    let app: Awaited<ReturnType<typeof NestFactory.create>> | undefined;
    const started = (async () => {
      app = await NestFactory.create(TicketKeysModule, {
        httpsOptions: { ...mtlsHttpsOptions(), ticketKeys } as HttpsOptions,
        logger: false,
        abortOnError: false,
      });
      await app.listen(0, '127.0.0.1');
    })();
    try {
      await expect(started).rejects.toMatchObject({
        code: 'ERR_MTLS_CONFIG_INVALID',
        message: expect.stringContaining('httpsOptions "ticketKeys"'),
      });
    } finally {
      await app?.close();
    }
  });
});
