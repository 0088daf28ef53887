import { Controller, Get, Req } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsHttpClient } from '../../lib/index.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { TestPki, writeKubernetesSecret } from '../../lib/testing/index.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { startMtlsApp } from '../support/app.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const BILLING = 'spiffe://partner.test/billing';

@Controller('caller')
class CallerController {
  @Get()
  @AllowAnyPeer()
  caller(@Req() req: { socket: TLSSocket }): { fingerprint256: string } {
    return { fingerprint256: req.socket.getPeerCertificate().fingerprint256 };
  }
}

function url(app: INestApplication, path: string): string {
  return `https://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}${path}`;
}

describe('client.credentials from the Workload API (MtlsHttpClient)', () => {
  let pki: TestPki;
  let partnerCa: CertificateAuthority;
  const cleanup: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    partnerCa = await CertificateAuthority.create({ commonName: 'partner.test root' });
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** An upstream served from files, trusting `trustPem`. */
  async function upstream(identity: { chainPem: string; keyPem: string }, trustPem: string): Promise<INestApplication> {
    const dir = await temporaryDir('nestjs-mtls-upstream-');
    await writeKubernetesSecret(dir, { 'tls.crt': identity.chainPem, 'tls.key': identity.keyPem, 'ca.crt': trustPem });
    const app = await startMtlsApp({ credentials: { dir } }, [CallerController]);
    cleanup.push(() => app.close());
    return app;
  }

  async function caller(agent: WorkloadApiTestServer): Promise<MtlsHttpClient> {
    const app = await startMtlsApp(
      {
        credentials: { dir: (await pki.credentials(INVENTORY)).dir },
        client: { credentials: { workloadApi: { socket: agent.address } } },
      },
      [],
    );
    cleanup.push(() => app.close());
    return app.get(MtlsHttpClient);
  }

  it('presents the SVID from the agent, and the rotated one on new connections', async () => {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    const first = await pki.peer(ORDERS);
    agent.setSvids([{ peer: first }]);
    const inventory = await upstream(await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'] }), pki.bundlePem);
    const http = await caller(agent);
    const seen = async (): Promise<string> =>
      ((await http.get(url(inventory, '/caller'), { expectPeer: INVENTORY })).body as { fingerprint256: string }).fingerprint256;
    expect(await seen()).toBe(first.fingerprint256);
    const next = await pki.peer(ORDERS);
    agent.setSvids([{ peer: next }]);
    await expect.poll(seen, { timeout: 5_000 }).toBe(next.fingerprint256);
  });

  it('verifies a federated upstream against its own trust domain bundle only', async () => {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    agent.setSvids([{ peer: await pki.peer(ORDERS) }]);
    const billing = await upstream(
      await partnerCa.issue({ spiffeId: BILLING, ipAddresses: ['127.0.0.1'] }),
      partnerCa.rootPem + pki.bundlePem,
    );
    // The partner CA minting one of our IDs: the chain is trusted once federated, the trust domain is not its to vouch for.
    const impostor = await upstream(
      await partnerCa.issue({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'] }),
      partnerCa.rootPem + pki.bundlePem,
    );
    const http = await caller(agent);
    await expect(http.get(url(billing, '/caller'), { expectPeer: BILLING })).rejects.toMatchObject({
      code: 'ERR_MTLS_UPSTREAM_TLS',
    });
    agent.setFederatedBundle('partner.test', partnerCa.rootPem);
    await expect
      .poll(async () => (await http.get(url(billing, '/caller'), { expectPeer: BILLING }).catch(() => undefined))?.status, {
        timeout: 5_000,
      })
      .toBe(200);
    await expect(http.get(url(impostor, '/caller'), { expectPeer: INVENTORY })).rejects.toMatchObject({
      code: 'ERR_MTLS_UPSTREAM_IDENTITY',
    });
  });
});
