import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { SERVER_CELLS } from '../support/cells.js';
import { get, keepAliveAgent, sleep, startLifecycleApp, startLoad, waitFor, type LifecycleApp } from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const PAYMENTS = 'spiffe://shop.test/ns/shop/sa/payments';

/** Resolves with the time (performance.now()) at which the socket closes. */
function closedAt(socket: TLSSocket): Promise<number> {
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now())));
}

describe.each(SERVER_CELLS)('a CRL update that revokes a connected peer ($name)', (cell) => {
  let pki: TestPki;
  let dir: string;
  let serverPeer: TestPeer;
  let orders: TestPeer;
  let payments: TestPeer;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    serverPeer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    orders = await pki.peer(ORDERS);
    payments = await pki.peer(PAYMENTS);
    dir = await temporaryDir('nestjs-mtls-crl-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
    // Default reload settings: the 2 s bound holds with what ships.
    server = await startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] } }, undefined, { cell });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('closes the revoked peer’s keep-alive connection within 2 s and lets the others finish', async () => {
    // Over HTTP/2, one session per peer: revoking orders must destroy its whole session, every stream on it.
    const ordersAgent = keepAliveAgent(orders, { http2: cell.http2 });
    const paymentsAgent = keepAliveAgent(payments, { http2: cell.http2 });
    try {
      const ordersSocket = (await get(server.port, orders, '/ping', { agent: ordersAgent })).socket;
      const paymentsSocket = (await get(server.port, payments, '/ping', { agent: paymentsAgent })).socket;
      expect(server.binding.connections.size).toBe(2);
      const ordersClosed = closedAt(ordersSocket);
      // In flight on the revoked connection: over HTTP/2 another stream of the same session, cut off with it.
      const revokedInFlight = cell.http2 ? get(server.port, orders, '/slow?ms=3000', { agent: ordersAgent }) : undefined;
      let paymentsClosed = false;
      paymentsSocket.once('close', () => (paymentsClosed = true));
      // In flight across the trust change, on the connection that must survive it.
      const slow = get(server.port, payments, '/slow?ms=1500', { agent: paymentsAgent });
      await sleep(50);

      const writtenAt = performance.now();
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([orders.serialNumber]) });
      const closed = await ordersClosed;
      const latency = closed - writtenAt;
      console.info(`revoked peer's keep-alive connection closed ${latency.toFixed(0)} ms after the CRL write`);
      expect(latency).toBeLessThan(2_000);
      if (revokedInFlight !== undefined) await expect(revokedInFlight).rejects.toThrow();

      const inFlight = await slow;
      expect(inFlight).toMatchObject({ status: 200, body: 'done' });
      expect(inFlight.socket).toBe(paymentsSocket);
      const after = await get(server.port, payments, '/ping', { agent: paymentsAgent });
      expect(after.status).toBe(200);
      expect(after.socket).toBe(paymentsSocket);
      expect(paymentsClosed).toBe(false);

      // New handshakes use the new CRL at once.
      await expect(get(server.port, orders, '/ping', { http2: cell.http2 })).rejects.toThrow();
      expect((await get(server.port, payments, '/ping', { http2: cell.http2 })).status).toBe(200);

      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'revoked', peer: ORDERS },
      ]);
      const line = server.logs.find((entry) => entry.message.startsWith('closed the connection of'));
      expect(line?.message).toMatch(
        new RegExp(
          `^closed the connection of ${ORDERS} from 127\\.0\\.0\\.1 after a trust change: .*\\(serial ${orders.serialNumber}\\) is revoked`,
        ),
      );
    } finally {
      ordersAgent.destroy();
      paymentsAgent.destroy();
    }
  });
});

describe('a CRL update with an intermediate CA', () => {
  it('keeps a resumed connection of a peer that is not revoked (its chain is completed from the others’)', async () => {
    const root = await CertificateAuthority.create({ commonName: 'shop.test root', trustDomain: 'shop.test' });
    const intermediate = await root.createIntermediate({ commonName: 'shop.test intermediate' });
    const issue = async (spiffeId: string, ipAddresses: string[] = []): Promise<TestPeer> => ({
      ...(await intermediate.issue({ spiffeId, ipAddresses })),
      caPem: root.rootPem,
    });
    const serverPeer = await issue(SERVER, ['127.0.0.1']);
    const orders = await issue(ORDERS);
    const payments = await issue(PAYMENTS);
    // With any CRL configured every CA of a chain needs one: the root's for the intermediate, the intermediate's for leaves.
    const crls = async (revoked: string[]) => `${await root.createCrl([])}${await intermediate.createCrl(revoked)}`;
    const dir = await temporaryDir('nestjs-mtls-crl-chain-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await crls([]) });
    const server = await startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] }, reload: { debounceMs: 50 } });
    const ordersAgent = keepAliveAgent(orders);
    const paymentsAgent = keepAliveAgent(payments);
    try {
      // A first connection gives the agent a session ticket; the second connection resumes it and stays open.
      const first = await get(server.port, orders, '/ping', { agent: ordersAgent });
      first.socket.destroy();
      await sleep(50);
      const resumed = (await get(server.port, orders, '/ping', { agent: ordersAgent })).socket;
      expect(resumed.isSessionReused()).toBe(true);
      const paymentsSocket = (await get(server.port, payments, '/ping', { agent: paymentsAgent })).socket;
      const paymentsClosed = closedAt(paymentsSocket);
      let resumedClosed = false;
      resumed.once('close', () => (resumedClosed = true));

      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await crls([payments.serialNumber]) });
      await paymentsClosed;
      await sleep(100);
      expect(resumedClosed).toBe(false);
      expect((await get(server.port, orders, '/ping', { agent: ordersAgent })).socket).toBe(resumed);
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'revoked', peer: PAYMENTS },
      ]);
    } finally {
      ordersAgent.destroy();
      paymentsAgent.destroy();
      await server.close();
    }
  });
});

describe.each(SERVER_CELLS)('CA rotation by overlap ($name)', (cell) => {
  it('fails no request from peers that already rotated, and cuts off those that did not once the old CA goes', async () => {
    const oldPki = await TestPki.create({ trustDomain: 'shop.test' });
    const newPki = await TestPki.create({ trustDomain: 'shop.test' });
    const both = `${oldPki.bundlePem}${newPki.bundlePem}`;
    const issue = (pki: TestPki, spiffeId: string) => pki.peer({ spiffeId, ipAddresses: ['127.0.0.1'] });
    const secret = (server: TestPeer, bundle: string) => ({
      'tls.crt': server.chainPem,
      'tls.key': server.keyPem,
      'ca.crt': bundle,
    });
    const serverOld = await issue(oldPki, SERVER);
    const serverNew = await issue(newPki, SERVER);
    // Clients trust both CAs for the whole procedure, as the overlap requires.
    const rotated = { ...(await newPki.peer(ORDERS)), caPem: both };
    const stale = { ...(await oldPki.peer(PAYMENTS)), caPem: both };

    const dir = await temporaryDir('nestjs-mtls-ca-rotation-');
    await writeKubernetesSecret(dir, secret(serverOld, oldPki.bundlePem));
    const server = await startLifecycleApp({ credentials: { dir }, reload: { debounceMs: 50 } }, undefined, { cell });
    const staleAgent = keepAliveAgent(stale, { http2: cell.http2 });
    const rotatedAgent = keepAliveAgent(rotated, { http2: cell.http2 });
    const step = async (serving: TestPeer, bundle: string) => {
      const version = server.store.version;
      await writeKubernetesSecret(dir, secret(serving, bundle));
      await waitFor('the rotation', () => (server.store.version > version ? true : undefined), 3_000);
    };
    try {
      // 1. Both CAs trusted; the server still presents its old-CA certificate.
      await step(serverOld, both);
      const load = await Promise.all([
        startLoad(server.port, rotated, { keepAlive: true, pauseMs: 5, http2: cell.http2 }),
        startLoad(server.port, rotated, { keepAlive: false, pauseMs: 5, http2: cell.http2 }),
      ]);
      const rotatedSocket = (await get(server.port, rotated, '/ping', { agent: rotatedAgent })).socket;
      const staleSocket = (await get(server.port, stale, '/ping', { agent: staleAgent })).socket;
      const staleClosed = closedAt(staleSocket);
      let rotatedClosed = false;
      rotatedSocket.once('close', () => (rotatedClosed = true));
      await sleep(200);
      // 2. The server's own certificate moves to the new CA.
      await step(serverNew, both);
      await sleep(200);
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([]);
      // 3. The old CA leaves the bundle.
      const removedAt = performance.now();
      await step(serverNew, newPki.bundlePem);
      const closed = await staleClosed;
      expect(closed - removedAt).toBeLessThan(2_000);
      await sleep(200);
      const [keepAliveStats, freshStats] = await Promise.all(load.map((l) => l.stop()));

      expect(keepAliveStats!.failures).toEqual([]);
      expect(freshStats!.failures).toEqual([]);
      expect(keepAliveStats!.ok).toBeGreaterThan(0);
      expect(freshStats!.fingerprints).toEqual([serverOld.fingerprint256, serverNew.fingerprint256]);
      expect((await get(server.port, rotated, '/ping', { agent: rotatedAgent })).socket).toBe(rotatedSocket);
      expect(rotatedClosed).toBe(false);
      await expect(get(server.port, stale, '/ping', { http2: cell.http2 })).rejects.toThrow();
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'no-path', peer: PAYMENTS },
      ]);
    } finally {
      staleAgent.destroy();
      rotatedAgent.destroy();
      await server.close();
    }
  });
});

describe.each(SERVER_CELLS)('a peer certificate that expires on an open connection ($name)', (cell) => {
  it('loses its keep-alive connection at its notAfter', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const initial = await pki.credentials(SERVER);
    const server = await startLifecycleApp({ credentials: initial.credentials, reload: { pollIntervalMs: 300 } }, undefined, {
      cell,
    });
    // Whole seconds are encoded: at least two seconds of validity left for the handshake.
    const notAfter = new Date(Math.ceil((Date.now() + 2_000) / 1000) * 1000);
    const shortLived = await pki.peer({ spiffeId: ORDERS, notAfter });
    const agent = keepAliveAgent(shortLived, { http2: cell.http2 });
    try {
      const socket = (await get(server.port, shortLived, '/ping', { agent })).socket;
      const closed = await closedAt(socket);
      const lateBy = performance.timeOrigin + closed - notAfter.getTime();
      expect(lateBy).toBeGreaterThan(0);
      expect(lateBy).toBeLessThan(1_500);
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'expired', peer: ORDERS },
      ]);
    } finally {
      agent.destroy();
      await server.close();
    }
  });
});

describe('a CRL update that revokes an intermediate CA (the root CRL lists it)', () => {
  it("closes the open connections of every peer it issued, keeps the other peers', and refuses new handshakes", async () => {
    const root = await CertificateAuthority.create({ commonName: 'shop.test root', trustDomain: 'shop.test' });
    const workloads = await root.createIntermediate({ commonName: 'shop.test workloads' });
    const serverPeer = { ...(await root.issue({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] })), caPem: root.rootPem };
    // Issued by the intermediate, which each sends in its handshake; payments comes from the root directly.
    const orders = { ...(await workloads.issue({ spiffeId: ORDERS })), caPem: root.rootPem };
    const payments = { ...(await root.issue({ spiffeId: PAYMENTS })), caPem: root.rootPem };
    const crls = async (revokedByRoot: string[]) => `${await root.createCrl(revokedByRoot)}${await workloads.createCrl([])}`;
    const dir = await temporaryDir('nestjs-mtls-intermediate-revoked-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await crls([]) });
    const server = await startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] }, reload: { debounceMs: 20 } });
    const ordersAgent = keepAliveAgent(orders);
    const paymentsAgent = keepAliveAgent(payments);
    try {
      const ordersSocket = (await get(server.port, orders, '/ping', { agent: ordersAgent })).socket;
      const paymentsSocket = (await get(server.port, payments, '/ping', { agent: paymentsAgent })).socket;
      const ordersClosed = closedAt(ordersSocket);

      const writtenAt = performance.now();
      const intermediateSerial = new X509Certificate(workloads.certPem).serialNumber;
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await crls([intermediateSerial]) });
      expect((await ordersClosed) - writtenAt).toBeLessThan(2_000);
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'revoked', peer: ORDERS },
      ]);

      const again = await get(server.port, payments, '/ping', { agent: paymentsAgent });
      expect([again.status, again.socket === paymentsSocket]).toEqual([200, true]);
      await expect(get(server.port, orders, '/ping', { agent: false })).rejects.toThrow();
    } finally {
      ordersAgent.destroy();
      paymentsAgent.destroy();
      await server.close();
    }
  });
});

describe('a CRL that lapses (its nextUpdate passes) on kept-alive connections', () => {
  async function start(nextUpdate: Date) {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const serverPeer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    const orders = await pki.peer(ORDERS);
    const dir = await temporaryDir('nestjs-mtls-crl-lapse-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([], { nextUpdate }) });
    const server = await startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] }, reload: { debounceMs: 20 } });
    return { pki, serverPeer, orders, dir, server };
  }

  it('closes them once it has lapsed, as a new handshake is refused then', async () => {
    // Whole seconds are encoded: the CRL lapses 3 to 4 seconds from now.
    const nextUpdate = new Date(Math.ceil((Date.now() + 3_000) / 1000) * 1000);
    const { orders, server } = await start(nextUpdate);
    const agent = keepAliveAgent(orders);
    try {
      const { status, socket } = await get(server.port, orders, '/ping', { agent });
      expect(status).toBe(200);
      const closed = await closedAt(socket);
      const closedAtEpoch = Date.now() - (performance.now() - closed);
      expect(closedAtEpoch).toBeGreaterThan(nextUpdate.getTime());
      expect(closedAtEpoch - nextUpdate.getTime()).toBeLessThan(2_000);
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
        { type: 'connection.revoked', reason: 'crl-expired', peer: ORDERS },
      ]);
      await expect(get(server.port, orders, '/ping', { agent: false })).rejects.toThrow();
    } finally {
      agent.destroy();
      await server.close();
    }
  });

  it('closes nothing when a newer CRL is written before it lapses', async () => {
    const nextUpdate = new Date(Math.ceil((Date.now() + 3_000) / 1000) * 1000);
    const { pki, serverPeer, orders, dir, server } = await start(nextUpdate);
    const agent = keepAliveAgent(orders);
    try {
      const { socket } = await get(server.port, orders, '/ping', { agent });
      const version = server.store.version;
      await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
      await waitFor('the CRL refresh', () => (server.store.version > version ? true : undefined), 5_000);
      // Busy until a second past the first CRL's nextUpdate: the same connection serves every request.
      while (Date.now() < nextUpdate.getTime() + 1_000) {
        const again = await get(server.port, orders, '/ping', { agent });
        expect([again.status, again.socket === socket]).toEqual([200, true]);
        await sleep(250);
      }
      expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([]);
    } finally {
      agent.destroy();
      await server.close();
    }
  });
});
