import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { TestPki } from '../../lib/testing/test-pki.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { WorkloadX509BundleSource } from '../../lib/workload-api/x509-bundle-source.js';

describe('WorkloadX509BundleSource (FetchX509Bundles)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('follows the full state: a trust domain added, then dropped', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const partner = await CertificateAuthority.create({ commonName: 'partner root' });
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    agent.setSvids([{ peer: await pki.peer('spiffe://shop.test/auditor') }]);
    const source = await WorkloadX509BundleSource.connect({ socket: agent.address, backoff: { initialMs: 20, maxMs: 100 } });
    cleanup.push(() => source.close());
    expect((await source.bundleFor('shop.test'))?.map((c) => c.subject)).toEqual(['CN=shop.test test root CA']);
    expect(await source.bundleFor('spiffe://partner.test')).toBeUndefined();
    agent.setFederatedBundle('partner.test', partner.rootPem);
    await expect.poll(async () => (await source.bundleFor('partner.test'))?.[0]?.subject).toBe('CN=partner root');
    agent.setFederatedBundle('partner.test', undefined);
    await expect.poll(() => source.trustDomains()).toEqual(['shop.test']);
  });

  it('refuses a state whose partner.test bundle holds the CA of another trust domain, keeping the previous one', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const partner = await CertificateAuthority.create({ commonName: 'partner root', trustDomain: 'partner.test' });
    const impostor = await CertificateAuthority.create({ commonName: 'impostor root', trustDomain: 'other.test' });
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    agent.setSvids([{ peer: await pki.peer('spiffe://shop.test/auditor') }]);
    agent.setFederatedBundle('partner.test', partner.rootPem);
    const warnings: string[] = [];
    const source = await WorkloadX509BundleSource.connect({
      socket: agent.address,
      backoff: { initialMs: 20, maxMs: 100 },
      logger: { log: () => undefined, warn: (line: string) => warnings.push(line), error: () => undefined },
    });
    cleanup.push(() => source.close());
    expect((await source.bundleFor('partner.test'))?.map((c) => c.subject)).toEqual(['CN=partner root']);
    agent.setFederatedBundle('partner.test', impostor.rootPem);
    await expect.poll(() => warnings.length).toBe(1);
    expect(warnings[0]).toContain(
      'the bundle of trust domain partner.test holds "CN=impostor root", a CA of trust domain other.test',
    );
    expect((await source.bundleFor('partner.test'))?.map((c) => c.subject)).toEqual(['CN=partner root']);
  });
});
