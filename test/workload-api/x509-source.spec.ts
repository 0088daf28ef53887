import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestPki } from '../../lib/testing/test-pki.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { parseWorkloadApiEndpoint } from '../../lib/workload-api/workload-api.endpoint.js';
import { WorkloadX509Source } from '../../lib/workload-api/x509-source.js';
import type { MtlsEvent } from '../../lib/observability/mtls-events.js';

const ID = 'spiffe://shop.test/ns/shop/sa/inventory';

function recordingLogger() {
  const lines: string[] = [];
  return {
    lines,
    logger: { log: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) },
  };
}

describe('WorkloadX509Source', () => {
  let pki: TestPki;
  const cleanup: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(options: { svid?: string; timeoutMs?: number } = {}) {
    const agent = await WorkloadApiTestServer.start();
    cleanup.push(() => agent.close());
    const events: MtlsEvent[] = [];
    const { lines, logger } = recordingLogger();
    const source = new WorkloadX509Source({
      endpoint: parseWorkloadApiEndpoint(agent.address, 'test'),
      set: 'identity',
      usages: ['serverAuth', 'clientAuth'],
      events: { emit: (e) => events.push(e) },
      logger,
      backoff: { initialMs: 20, maxMs: 100 },
      ...(options.svid === undefined ? {} : { svid: options.svid }),
    });
    cleanup.push(() => source.stop());
    return { agent, source, events, lines };
  }

  it('installs the first SVID and sends the workload.spiffe.io metadata', async () => {
    const { agent, source } = await setup();
    const peer = await pki.peer(ID);
    agent.setSvids([{ peer }]);
    const store = await source.start(5_000);
    expect(store.current.identity.spiffeId).toBe(ID);
    expect(store.current.leaf.fingerprint256).toBe(peer.fingerprint256);
    expect(agent.lastSecurityHeader).toBe('true');
    expect(source.status().state).toBe('streaming');
  });

  it('fails startup with a clear error naming the socket when no SVID comes', async () => {
    const { agent, source } = await setup();
    const error = await source.start(300).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_WORKLOAD_API_TIMEOUT', endpoint: agent.address });
    expect((error as Error).message).toContain(agent.address);
  });

  it('rotates through the same install path (event, store version) on a pushed SVID', async () => {
    const { agent, source, events } = await setup();
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    const store = await source.start(5_000);
    const next = await pki.peer(ID);
    agent.setSvids([{ peer: next }]);
    await expect.poll(() => store.current.leaf.fingerprint256).toBe(next.fingerprint256);
    expect(store.version).toBe(2);
    expect(events.map((e) => e.type)).toContain('credentials.rotated');
  });

  it('an SVID whose SPIFFE ID differs from the one served is installed and says so: log line and event', async () => {
    const { agent, source, events, lines } = await setup();
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    const store = await source.start(5_000);
    const other = 'spiffe://shop.test/ns/shop/sa/other';
    agent.setSvids([{ peer: await pki.peer(other) }]);
    await expect.poll(() => store.current.identity.spiffeId).toBe(other);
    expect(lines).toContainEqual(expect.stringContaining(`identity ${ID} → ${other}`));
    const rotated = events.find((e) => e.type === 'credentials.rotated') as
      { previous: { identity: { spiffeId?: string } }; current: { identity: { spiffeId?: string } } } | undefined;
    expect(rotated?.previous.identity.spiffeId).toBe(ID);
    expect(rotated?.current.identity.spiffeId).toBe(other);
  });

  it('keeps serving through an agent restart and picks up the SVID pushed after it', async () => {
    const { agent, source, lines } = await setup();
    const first = await pki.peer(ID);
    agent.setSvids([{ peer: first }]);
    const store = await source.start(5_000);
    await agent.goAway();
    await expect.poll(() => source.status().state).toBe('reconnecting');
    expect(store.current.leaf.fingerprint256).toBe(first.fingerprint256);
    const next = await pki.peer(ID);
    agent.setSvids([{ peer: next }]);
    await agent.comeBack();
    await expect.poll(() => store.current.leaf.fingerprint256, { timeout: 5_000 }).toBe(next.fingerprint256);
    expect(source.status().state).toBe('streaming');
    expect(lines.some((l) => l.includes('reconnecting in'))).toBe(true);
  });

  it('retries on PermissionDenied and recovers when the workload is registered', async () => {
    const { agent, source, lines } = await setup();
    agent.refuse('permission-denied');
    const started = source.start(10_000);
    await expect.poll(() => agent.calls.get('FetchX509SVID') ?? 0).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.includes('PERMISSION_DENIED'))).toBe(true);
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    agent.refuse(undefined);
    const store = await started;
    expect(store.current.identity.spiffeId).toBe(ID);
  });

  it('stops and fails on InvalidArgument', async () => {
    const { agent, source } = await setup();
    agent.refuse('invalid-argument');
    const error = await source.start(10_000).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_WORKLOAD_API_INVALID_ARGUMENT', endpoint: agent.address });
    const calls = agent.calls.get('FetchX509SVID');
    await new Promise((r) => setTimeout(r, 200));
    expect(agent.calls.get('FetchX509SVID')).toBe(calls);
  });

  it('picks an SVID by hint or by SPIFFE ID, else the first', async () => {
    const other = 'spiffe://shop.test/ns/shop/sa/inventory-external';
    const svids = [
      { peer: await pki.peer(ID), hint: 'internal' },
      { peer: await pki.peer(other), hint: 'external' },
    ];
    for (const [selector, expected] of [
      [undefined, ID],
      ['external', other],
      [ID, ID],
      [other, other],
    ] as const) {
      const { agent, source } = await setup(selector === undefined ? {} : { svid: selector });
      agent.setSvids(svids);
      const store = await source.start(5_000);
      expect(store.current.identity.spiffeId).toBe(expected);
    }
  });

  it('refuses a selector that matches nothing, naming what the agent serves', async () => {
    const { agent, source, lines } = await setup({ svid: 'nope' });
    agent.setSvids([{ peer: await pki.peer(ID), hint: 'internal' }]);
    const error = await source.start(500).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_WORKLOAD_API_TIMEOUT' });
    expect((error as Error).message).toContain('no X509-SVID with hint "nope"');
    expect(lines.join('\n')).toContain(`${ID} (hint "internal")`);
  });

  it('refuses an SVID whose certificate carries another ID than announced, keeping the last good one', async () => {
    const { agent, source, events } = await setup();
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    const store = await source.start(5_000);
    const liar = await pki.peer('spiffe://shop.test/ns/shop/sa/admin');
    agent.setSvids([{ peer: { ...liar, spiffeId: ID } }]);
    await expect.poll(() => events.filter((e) => e.type === 'credentials.refused').length).toBe(1);
    const refused = events.find((e) => e.type === 'credentials.refused');
    expect(refused).toMatchObject({ error: { code: 'ERR_MTLS_SVID_INVALID' } });
    expect(store.version).toBe(1);
  });

  it.each([
    ['another trust domain', 'other.test'],
    ['our own trust domain', 'shop.test'],
  ])('refuses a federated bundle of partner.test whose CA declares %s, keeping the previous bundles', async (_, declared) => {
    const { agent, source, events, lines } = await setup();
    const partner = await CertificateAuthority.create({ commonName: 'partner root', trustDomain: 'partner.test' });
    const impostor = await CertificateAuthority.create({ commonName: 'impostor root', trustDomain: declared });
    agent.setSvids([{ peer: await pki.peer(ID) }]);
    agent.setFederatedBundle('partner.test', partner.rootPem);
    const store = await source.start(5_000);
    await expect.poll(() => store.current.trustDomainBundles?.get('partner.test')?.[0]?.subject).toBe('CN=partner root');
    const version = store.version;
    agent.setFederatedBundle('partner.test', impostor.rootPem);
    await expect.poll(() => events.filter((e) => e.type === 'credentials.refused').length).toBe(1);
    expect(events.find((e) => e.type === 'credentials.refused')).toMatchObject({
      error: {
        code: 'ERR_MTLS_CHAIN_UNTRUSTED',
        message: expect.stringContaining(
          `the bundle of trust domain partner.test holds "CN=impostor root", a CA of trust domain ${declared}`,
        ),
      },
    });
    expect(lines.some((line) => line.includes('refused') && line.includes('CN=impostor root'))).toBe(true);
    expect(store.version).toBe(version);
    expect(store.current.trustDomainBundles?.get('partner.test')?.map((ca) => ca.subject)).toEqual(['CN=partner root']);
  });
});
