import type { INestApplication } from '@nestjs/common';
import { Controller, Get } from '@nestjs/common';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, Peer, type PeerIdentity } from '../../lib/index.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { callAs } from '../../lib/testing/call-as.js';
import { TestPki, type TestPeer } from '../../lib/testing/test-pki.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { startMtlsApp } from '../support/app.js';

const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const PARTNER = 'spiffe://partner.test/billing';

@Controller('whoami')
class WhoAmIController {
  @Get()
  @AllowAnyPeer()
  who(@Peer() peer: PeerIdentity): { id: string | undefined } {
    return { id: peer.spiffeId };
  }
}

/** Refused at the handshake, or by the trust domain binding (before the route's rule is even looked at). */
const REFUSED = /^refused at handshake|^HTTP 403 ERR_MTLS_PEER_INVALID/;

async function outcomeOf(call: Promise<{ status: number; json<T>(): T }>): Promise<string> {
  try {
    const res = await call;
    return `HTTP ${res.status} ${res.json<{ code?: string }>().code ?? ''}`;
  } catch (error) {
    return `refused at handshake (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

function port(app: INestApplication): number {
  return (app.getHttpServer().address() as AddressInfo).port;
}

/** The fingerprint of the certificate the server presents to a new connection. */
function servedFingerprint(app: INestApplication, peer: TestPeer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port: port(app), cert: peer.chainPem, key: peer.keyPem, ca: peer.caPem, servername: 'localhost' },
      () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.destroy();
        resolve(fingerprint);
      },
    );
    socket.on('error', reject);
  });
}

/** Opens a TLS connection as `peer`, sends one keep-alive request, and resolves once the response came back. */
function openKeptAlive(
  app: INestApplication,
  peer: TestPeer,
  ca: string,
): Promise<{ socket: TLSSocket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: port(app),
      cert: peer.chainPem,
      key: peer.keyPem,
      ca,
      servername: 'localhost',
    });
    socket.on('error', () => {});
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
    socket.once('secureConnect', () => socket.write('GET /whoami HTTP/1.1\r\nhost: localhost\r\nconnection: keep-alive\r\n\r\n'));
    socket.once('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').startsWith('HTTP/1.1 200')) resolve({ socket, closed });
      else reject(new Error(`unexpected response: ${chunk.toString('latin1').split('\r\n')[0]}`));
    });
    closed.then(() => reject(new Error('closed before the response')));
  });
}

describe('MtlsModule with credentials from the SPIFFE Workload API', () => {
  let pki: TestPki;
  let partnerCa: CertificateAuthority;
  let orders: TestPeer;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    // A federated CA whose root names no trust domain: only the explicit per-trust-domain bundles can bind it.
    partnerCa = await CertificateAuthority.create({ commonName: 'partner.test root' });
    orders = await pki.peer(ORDERS);
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  afterAll(() => undefined);

  async function partnerPeer(spiffeId: string): Promise<TestPeer> {
    return { ...(await partnerCa.issue({ spiffeId })), caPem: pki.bundlePem };
  }

  async function start(options: { startupTimeoutMs?: number } = {}) {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    const svid = await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
    agent.setSvids([{ peer: svid }]);
    const app = await startMtlsApp(
      { credentials: { workloadApi: { socket: agent.address, ...options } }, reload: { pollIntervalMs: 0 } },
      [WhoAmIController],
    );
    cleanup.push(() => app.close());
    return { agent, app, svid };
  }

  it('starts with the first SVID from the agent and serves it', async () => {
    const { app, svid } = await start();
    expect(await servedFingerprint(app, orders)).toBe(svid.fingerprint256);
    const res = await callAs(app, orders).get('/whoami');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ id: ORDERS });
  });

  it('fails startup with an error naming the socket when the agent serves nothing', async () => {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    const error = await startMtlsApp({ credentials: { workloadApi: { socket: agent.address, startupTimeoutMs: 300 } } }, [
      WhoAmIController,
    ]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_WORKLOAD_API_TIMEOUT', endpoint: agent.address });
    expect((error as Error).message).toContain(agent.address);
  });

  it('rotates under keep-alive and new-connection load with no failed request', async () => {
    const { agent, app, svid } = await start();
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4, cert: orders.chainPem, key: orders.keyPem, ca: orders.caPem });
    cleanup.push(async () => keepAlive.destroy());
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const viaAgent = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: port(app), path: '/whoami', agent: keepAlive, servername: 'localhost' },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const loop = async (call: () => Promise<number>): Promise<void> => {
      while (running) {
        try {
          const status = await call();
          if (status === 200) ok++;
          else failures.push(`HTTP ${status}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    const loops = [
      loop(viaAgent),
      loop(viaAgent),
      loop(async () => (await callAs(app, orders).get('/whoami')).status),
      loop(async () => (await callAs(app, orders).get('/whoami')).status),
    ];
    await expect.poll(() => ok).toBeGreaterThan(20);
    const before = await servedFingerprint(app, orders);
    const next = await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
    agent.setSvids([{ peer: next }]);
    await expect.poll(() => servedFingerprint(app, orders), { timeout: 5_000 }).not.toBe(before);
    const afterRotation = ok;
    await expect.poll(() => ok).toBeGreaterThan(afterRotation + 20);
    running = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(svid.fingerprint256).not.toBe(next.fingerprint256);
  });

  it('keeps serving the last good SVID while the agent is away, and rotates after it comes back', async () => {
    const { agent, app } = await start();
    const before = await servedFingerprint(app, orders);
    await agent.goAway();
    expect((await callAs(app, orders).get('/whoami')).status).toBe(200);
    expect(await servedFingerprint(app, orders)).toBe(before);
    agent.setSvids([{ peer: await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] }) }]);
    await agent.comeBack();
    await expect.poll(() => servedFingerprint(app, orders), { timeout: 10_000 }).not.toBe(before);
  });

  it('admits a federated peer only with its own trust domain bundle, and never as an identity of ours', async () => {
    const { agent, app } = await start();
    const partner = await partnerPeer(PARTNER);
    // No bundle for partner.test yet: the handshake fails.
    await expect(callAs(app, partner).get('/whoami')).rejects.toThrow();
    agent.setFederatedBundle('partner.test', partnerCa.rootPem);
    await expect
      .poll(
        async () =>
          (
            await callAs(app, partner)
              .get('/whoami')
              .catch(() => undefined)
          )?.status,
      )
      .toBe(200);
    expect((await callAs(app, partner).get('/whoami')).json()).toEqual({ id: PARTNER });
    // The federated CA mints an ID in our trust domain: OpenSSL accepts the chain (its root is trusted), the trust
    // domain binding must not.
    const impostor = await partnerPeer(ORDERS);
    expect(await outcomeOf(callAs(app, impostor).get('/whoami'))).toMatch(REFUSED);
    // And our own CA minting a partner.test ID is refused likewise.
    const forged = await pki.peer(PARTNER);
    expect(await outcomeOf(callAs(app, forged).get('/whoami'))).toMatch(REFUSED);
  });

  it('closes the open connections of a trust domain within 2 s when its bundle disappears', async () => {
    const { agent, app } = await start();
    agent.setFederatedBundle('partner.test', partnerCa.rootPem);
    const partner = await partnerPeer(PARTNER);
    await expect
      .poll(
        async () =>
          (
            await callAs(app, partner)
              .get('/whoami')
              .catch(() => undefined)
          )?.status,
      )
      .toBe(200);
    const federated = await openKeptAlive(app, partner, pki.bundlePem);
    const ours = await openKeptAlive(app, orders, pki.bundlePem);
    const removedAt = Date.now();
    agent.setFederatedBundle('partner.test', undefined);
    const closedAt = await Promise.race([federated.closed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt - removedAt).toBeLessThanOrEqual(2_000);
    // Our own trust domain's connection stays open.
    expect(ours.socket.destroyed).toBe(false);
    ours.socket.destroy();
    await expect(callAs(app, partner).get('/whoami')).rejects.toThrow();
  });
});
