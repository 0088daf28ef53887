import { beforeAll, describe, expect, it } from 'vitest';
import { TrustAnchors } from '../../lib/identity/trust-anchors.js';
import { validateCredentials } from '../../lib/credentials/credentials-validation.js';
import { PrivateKeyMaterial } from '../../lib/credentials/private-key.js';
import type { Credentials, RawCredentials } from '../../lib/credentials/credentials.interfaces.js';
import { parseCertificatesPem, type CertificateInfo } from '../../lib/x509/certificate.js';
import { peerIdentityFromCertificate } from '../../lib/identity/peer-identity.js';
import { CertificateAuthority, type IssueOptions } from '../../lib/x509/certificate-authority.js';
import { workloadApiLabels } from '../../lib/workload-api/x509-svid-response.js';

/*
 * Explicit per-trust-domain bundles (Workload API federation), go-spiffe's x509svid.Verify: a peer is verified against
 * the bundle of its own SPIFFE ID's trust domain only. The partner root names no trust domain on purpose: with file
 * bundles such a root "vouches for any trust domain"; with explicit bundles it vouches for partner.test alone.
 */

const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const BILLING = 'spiffe://partner.test/billing';

interface Leaf {
  readonly leaf: CertificateInfo;
  readonly presented: readonly CertificateInfo[];
}

let shop: CertificateAuthority;
let partner: CertificateAuthority;
let credentials: Credentials;
let leaves: Record<string, Leaf>;

async function mint(ca: CertificateAuthority, options: IssueOptions): Promise<Leaf> {
  const [leaf, ...presented] = parseCertificatesPem((await ca.issue(options)).chainPem);
  return { leaf: leaf!, presented };
}

function raw(federated: Map<string, string>, own: { chainPem: string; keyPem: string }, caPem: string): RawCredentials {
  const files = workloadApiLabels('unix:///agent.sock');
  return {
    files,
    certPem: own.chainPem,
    key: new PrivateKeyMaterial(Buffer.from(own.keyPem)),
    caPem,
    crlPems: [],
    crlFiles: [],
    contentHash: 'x',
    federatedBundlePems: federated,
  };
}

beforeAll(async () => {
  shop = await CertificateAuthority.create({ commonName: 'shop root', trustDomain: 'shop.test' });
  partner = await CertificateAuthority.create({ commonName: 'partner root' });
  const own = await shop.issue({ spiffeId: INVENTORY });
  credentials = validateCredentials(raw(new Map([['partner.test', partner.rootPem]]), own, shop.rootPem));
  const partnerIntermediate = await partner.createIntermediate({ commonName: 'partner issuing CA' });
  leaves = {
    orders: await mint(shop, { spiffeId: ORDERS }),
    billing: await mint(partner, { spiffeId: BILLING }),
    billingViaIntermediate: await mint(partnerIntermediate, { spiffeId: BILLING }),
    partnerMintsOurs: await mint(partner, { spiffeId: ORDERS }),
    shopMintsTheirs: await mint(shop, { spiffeId: BILLING }),
    unknownDomain: await mint(partner, { spiffeId: 'spiffe://other.test/x' }),
    legacyPartner: await mint(partner, { dnsNames: ['billing.partner.test'] }),
    legacyShop: await mint(shop, { dnsNames: ['orders.shop.test'] }),
  };
});

describe('explicit per-trust-domain bundles', () => {
  it('records each trust domain with its own bundle, ours first, and gives OpenSSL their union', () => {
    expect([...credentials.trustDomainBundles!.keys()]).toEqual(['shop.test', 'partner.test']);
    expect(credentials.caCertificates.map((c) => c.subject)).toEqual(['CN=shop root', 'CN=partner root']);
  });

  it.each([
    ['orders', undefined],
    ['billing', undefined],
    ['billingViaIntermediate', undefined],
    [
      'partnerMintsOurs',
      /^SPIFFE ID "spiffe:\/\/shop\.test\/ns\/shop\/sa\/orders": the certificate does not chain to the bundle of trust domain shop\.test: /,
    ],
    [
      'shopMintsTheirs',
      /^SPIFFE ID "spiffe:\/\/partner\.test\/billing": the certificate does not chain to the bundle of trust domain partner\.test: /,
    ],
    [
      'unknownDomain',
      /^SPIFFE ID "spiffe:\/\/other\.test\/x": no bundle for trust domain other\.test \(trusted: shop\.test, partner\.test\)$/,
    ],
    ['legacyPartner', /^a peer without a SPIFFE ID: the certificate does not chain to the bundle of trust domain shop\.test: /],
    ['legacyShop', undefined],
  ])('%s → %s', (name, expected) => {
    const { leaf, presented } = leaves[name]!;
    const problem = TrustAnchors.of(credentials.caCertificates).problem(peerIdentityFromCertificate(leaf), leaf, () => presented);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });

  it('refuses a federated bundle keyed by our own trust domain', async () => {
    const own = await shop.issue({ spiffeId: INVENTORY });
    expect(() => validateCredentials(raw(new Map([['shop.test', partner.rootPem]]), own, shop.rootPem))).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_CHAIN_UNTRUSTED',
        message: expect.stringContaining('a federated bundle is keyed by our own trust domain shop.test'),
      }),
    );
  });

  it('binds a single trust domain too: a peer of another trust domain minted by our CA is refused', async () => {
    const own = await shop.issue({ spiffeId: INVENTORY });
    const alone = validateCredentials(raw(new Map(), own, shop.rootPem));
    const { leaf, presented } = leaves.shopMintsTheirs!;
    expect(TrustAnchors.of(alone.caCertificates).problem(peerIdentityFromCertificate(leaf), leaf, () => presented)).toBe(
      'SPIFFE ID "spiffe://partner.test/billing": no bundle for trust domain partner.test (trusted: shop.test)',
    );
  });
});
