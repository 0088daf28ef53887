import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustAnchors } from '../../lib/identity/trust-anchors.js';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { expectHostName, expectSpiffePeer, type UpstreamExpectation } from '../../lib/client/upstream-identity.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { UpstreamError } from '../../lib/errors/mtls.errors.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import type { IssueOptions } from '../../lib/x509/certificate-authority.js';
import { TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { expectNothingReceived, startUpstream, type UpstreamServer } from './upstream-server.js';

/*
 * P0-4 on the client side: with the shop.test and elsewhere.test roots in one bundle, a server whose certificate the
 * elsewhere.test CA issued must not pass as a shop.test workload. Real node:https servers, real handshakes; the
 * expectation's `checkServerIdentity` is the one the client installs, fed with or without the bundle's anchors.
 */

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const NAMED = new Map([['inventory', INVENTORY]]);

let shop: TestPki;
let elsewhere: TestPki;
let orders: TestPeer;
let bundlePem: string;
let anchors: TrustAnchors;
const servers = new Map<string, UpstreamServer>();

/** Server certificates, each with IP SAN 127.0.0.1 and DNS SAN localhost unless the case says otherwise. */
const SERVERS: Record<string, { issuer: 'shop' | 'elsewhere'; options: IssueOptions }> = {
  genuine: { issuer: 'shop', options: { spiffeId: INVENTORY } },
  impostor: { issuer: 'elsewhere', options: { spiffeId: INVENTORY } },
  elsewhereWorkload: { issuer: 'elsewhere', options: { spiffeId: 'spiffe://elsewhere.test/ns/stock/sa/inventory' } },
  legacyElsewhere: { issuer: 'elsewhere', options: {} },
  caLeaf: { issuer: 'shop', options: { isCa: true } },
  keyCertSignLeaf: { issuer: 'shop', options: { keyUsage: ['digitalSignature', 'keyCertSign'] } },
  twoUris: { issuer: 'shop', options: { spiffeId: INVENTORY, uris: ['https://localhost/'] } },
};

beforeAll(async () => {
  shop = await TestPki.create({ trustDomain: 'shop.test' });
  elsewhere = await TestPki.create({ trustDomain: 'elsewhere.test' });
  bundlePem = shop.bundlePem + elsewhere.bundlePem;
  anchors = TrustAnchors.of(parseCertificatesPem(bundlePem));
  orders = await shop.peer(ORDERS);
  for (const [name, { issuer, options }] of Object.entries(SERVERS)) {
    const identity = await (issuer === 'shop' ? shop : elsewhere).peer({
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
      ...options,
    });
    servers.set(name, await startUpstream(identity, shop.bundlePem));
  }
});

afterAll(async () => {
  await Promise.all([...servers.values()].map((server) => server.close()));
});

/** One GET over a fresh connection, checked by `expectation` as the client checks it; resolves the status or the error. */
function get(
  server: UpstreamServer,
  expectation: UpstreamExpectation,
  withAnchors: boolean,
  host = '127.0.0.1',
): Promise<number | Error> {
  const origin = new URL(server.origin.replace('127.0.0.1', host));
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: origin.port,
        path: '/',
        agent: false,
        ca: bundlePem,
        cert: orders.chainPem,
        key: orders.keyPem,
        ...(expectation.servername === undefined ? {} : { servername: expectation.servername }),
        checkServerIdentity: expectation.verifier('inventory', origin, withAnchors ? anchors : undefined),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', resolve);
    req.end();
  });
}

const ELSEWHERE_ROOT = '"CN=elsewhere.test test root CA"';
const impostorReason = `SPIFFE ID "${INVENTORY}" is in trust domain shop.test but the certificate chains to the trust anchor of elsewhere.test (${ELSEWHERE_ROOT})`;

describe.each([
  ['with the bundle anchors', true],
  ['without them (the chain Node rebuilt)', false],
])('checkServerIdentity %s', (_, withAnchors) => {
  // [expected identity, server, refusal reason (undefined: admitted), expectation, host name to dial]
  // [expected identity, server, refusal reason (undefined: admitted), the expectation, host name to expect]
  const cases: [string, string, string | undefined, () => UpstreamExpectation, string?][] = [
    ['a named SPIFFE peer', 'genuine', undefined, () => expectSpiffePeer('inventory', NAMED)],
    ['a SPIFFE pattern', 'genuine', undefined, () => expectSpiffePeer('spiffe://shop.test/ns/*/sa/inventory', NAMED)],
    ['the host name 127.0.0.1', 'genuine', undefined, () => expectHostName('127.0.0.1')],
    ['a named SPIFFE peer', 'impostor', impostorReason, () => expectSpiffePeer('inventory', NAMED)],
    ['a SPIFFE pattern', 'impostor', impostorReason, () => expectSpiffePeer('spiffe://shop.test/ns/*/sa/inventory', NAMED)],
    ['a host name', 'impostor', impostorReason, () => expectHostName('localhost'), 'localhost'],
    ['the host name 127.0.0.1', 'impostor', impostorReason, () => expectHostName('127.0.0.1')],
    [
      'its own SPIFFE ID',
      'elsewhereWorkload',
      undefined,
      () => expectSpiffePeer('spiffe://elsewhere.test/ns/stock/sa/inventory', NAMED),
    ],
    ['a host name, legacy server of the other CA', 'legacyElsewhere', undefined, () => expectHostName('localhost'), 'localhost'],
    [
      'a host name, CA:TRUE leaf (P1-23)',
      'caLeaf',
      'leaf certificate with CA flag set to true: a certificate that can sign certificates or CRLs never authenticates a peer',
      () => expectHostName('localhost'),
      'localhost',
    ],
    [
      'the host name 127.0.0.1, keyCertSign leaf (P1-23)',
      'keyCertSignLeaf',
      'leaf certificate with KeyCertSign key usage: a certificate that can sign certificates or CRLs never authenticates a peer',
      () => expectHostName('127.0.0.1'),
    ],
    [
      'the host name 127.0.0.1, invalid SVID',
      'twoUris',
      'could not get leaf SPIFFE ID: certificate contains more than one URI SAN: a certificate with a spiffe URI SAN authenticates only as a valid X509-SVID (X509-SVID §5.2)',
      () => expectHostName('127.0.0.1'),
    ],
  ];

  it.each(cases)('expecting %s from the %s server → %j', async (_, name, reason, expectation, host) => {
    const server = servers.get(name)!;
    const before = { bytesReceived: server.bytesReceived, requestHeads: server.requestHeads };
    const result = await get(server, expectation(), withAnchors, host);
    if (reason === undefined) {
      expect(result).toBe(200);
      return;
    }
    expect(result).toBeInstanceOf(UpstreamError);
    const error = result as UpstreamError;
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.message).toContain(`: ${reason}`);
    expect(error.message).toMatch(/; no request was sent$/);
    await expectNothingReceived(server, before);
  });
});

describe('MtlsHttpClient with both roots in its bundle', () => {
  let dir: string;
  let client: MtlsHttpClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-client-td-'));
    await writeKubernetesSecret(dir, { 'tls.crt': orders.chainPem, 'tls.key': orders.keyPem, 'ca.crt': bundlePem });
    const resolved = resolveMtlsOptions({ credentials: { dir }, peers: { inventory: INVENTORY }, reload: { enabled: false } });
    client = new MtlsHttpClient(resolved, new CredentialStore(await loadCredentials(resolved.credentialFiles)));
  });

  afterAll(async () => {
    await client?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a server of the other trust domain claiming the expected SPIFFE ID, before sending anything', async () => {
    const server = servers.get('impostor')!;
    const before = { bytesReceived: server.bytesReceived, requestHeads: server.requestHeads };
    const error = await client.get(`${server.origin}/stock/1`, { expectPeer: 'inventory' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_UPSTREAM_IDENTITY', message: expect.stringContaining(impostorReason) });
    await expectNothingReceived(server, before);
  });

  it('still reaches the genuine server', async () => {
    const response = await client.get(`${servers.get('genuine')!.origin}/stock/1`, { expectPeer: 'inventory' });
    expect(response.status).toBe(200);
  });
});
