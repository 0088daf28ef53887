import { beforeAll, describe, expect, it } from 'vitest';
import { chainTrustDomainProblem, TrustAnchors } from '../../lib/identity/trust-anchors.js';
import { parseCertificatesPem, type CertificateInfo } from '../../lib/x509/certificate.js';
import { peerIdentityFromCertificate } from '../../lib/identity/peer-identity.js';
import { CertificateAuthority, type IssueOptions } from '../../lib/x509/certificate-authority.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const BILLING = 'spiffe://elsewhere.test/ns/billing/sa/api';

/** A minted leaf: the parsed leaf and what its holder presents after it. */
interface Leaf {
  readonly leaf: CertificateInfo;
  readonly presented: readonly CertificateInfo[];
}

let roots: Record<'shop' | 'shop2' | 'elsewhere' | 'legacy' | 'impostor', CertificateInfo>;
let leaves: Record<'orders' | 'ordersViaIntermediate' | 'impostorOrders' | 'billing' | 'legacy' | 'forgedPath', Leaf>;

const parse = (pem: string): CertificateInfo[] => parseCertificatesPem(pem);
async function mint(ca: CertificateAuthority, options: IssueOptions): Promise<Leaf> {
  const [leaf, ...presented] = parse((await ca.issue(options)).chainPem);
  return { leaf: leaf!, presented };
}

beforeAll(async () => {
  const shop = await CertificateAuthority.create({ commonName: 'shop root', trustDomain: 'shop.test' });
  const shop2 = await CertificateAuthority.create({ commonName: 'shop root 2026', trustDomain: 'shop.test' });
  const elsewhere = await CertificateAuthority.create({ commonName: 'elsewhere root', trustDomain: 'elsewhere.test' });
  const legacy = await CertificateAuthority.create({ commonName: 'legacy root' });
  const shopIntermediate = await shop.createIntermediate({ commonName: 'shop issuing CA' });
  // Someone else's CA named like the shop root, and under it a CA named like the elsewhere root: the junk a server could
  // append so that a chain rebuilt by name runs from an elsewhere leaf up to the real shop root.
  const impostor = await CertificateAuthority.create({ commonName: 'shop root', trustDomain: 'shop.test' });
  const fakeElsewhere = await impostor.createIntermediate({ commonName: 'elsewhere root' });
  roots = {
    shop: parse(shop.rootPem)[0]!,
    shop2: parse(shop2.rootPem)[0]!,
    elsewhere: parse(elsewhere.rootPem)[0]!,
    legacy: parse(legacy.rootPem)[0]!,
    impostor: parse(impostor.rootPem)[0]!,
  };
  const impostorOrders = await mint(elsewhere, { spiffeId: ORDERS });
  leaves = {
    orders: await mint(shop, { spiffeId: ORDERS }),
    ordersViaIntermediate: await mint(shopIntermediate, { spiffeId: ORDERS }),
    impostorOrders,
    billing: await mint(elsewhere, { spiffeId: BILLING }),
    legacy: await mint(elsewhere, { dnsNames: ['legacy.shop.test'] }),
    forgedPath: { leaf: impostorOrders.leaf, presented: parse(fakeElsewhere.certPem) },
  };
});

const mismatch = (id: string, td: string, anchorTd: string, anchor: string) =>
  `SPIFFE ID "${id}" is in trust domain ${td} but the certificate chains to the trust anchor of ${anchorTd} ("CN=${anchor}")`;

describe('TrustAnchors.problem', () => {
  // [bundle, leaf, expected]: only leaves that TLS verified against the bundle, which is the method's contract.
  const table: [string[], keyof typeof leaves, string | undefined][] = [
    [['shop'], 'orders', undefined],
    [['shop'], 'ordersViaIntermediate', undefined],
    [['shop', 'shop2'], 'orders', undefined],
    [
      ['elsewhere'],
      'impostorOrders',
      `SPIFFE ID "${ORDERS}" is in trust domain shop.test but the certificate chains to the trust anchor of elsewhere.test ("CN=elsewhere root")`,
    ],
    [['elsewhere'], 'billing', undefined],
    [['elsewhere'], 'legacy', undefined],
    [['shop', 'elsewhere'], 'orders', undefined],
    [['shop', 'elsewhere'], 'ordersViaIntermediate', undefined],
    [['shop', 'elsewhere'], 'billing', undefined],
    [['shop', 'elsewhere'], 'legacy', undefined],
    [['shop', 'elsewhere'], 'impostorOrders', mismatch(ORDERS, 'shop.test', 'elsewhere.test', 'elsewhere root')],
    [['elsewhere', 'shop'], 'impostorOrders', mismatch(ORDERS, 'shop.test', 'elsewhere.test', 'elsewhere root')],
    // Junk that names its way up to the shop root does not verify; the real path still leads to the elsewhere root.
    [['shop', 'elsewhere'], 'forgedPath', mismatch(ORDERS, 'shop.test', 'elsewhere.test', 'elsewhere root')],
    // A root without a SPIFFE ID binds nothing: the documented limitation.
    [['legacy'], 'orders', undefined],
    [['shop', 'legacy'], 'orders', undefined],
  ];

  it.each(table)('bundle %j, leaf %s → %j', (bundle, name, expected) => {
    const anchors = TrustAnchors.of(bundle.map((root) => roots[root as keyof typeof roots]));
    const { leaf, presented } = leaves[name];
    expect(anchors.problem(peerIdentityFromCertificate(leaf), leaf, () => presented)).toBe(expected);
  });

  it('never reads the chain when the bundle names one trust domain, or none', () => {
    const unread = () => expect.unreachable('presented() must not be called') as never;
    for (const bundle of [[roots.shop], [roots.shop, roots.shop2], [roots.legacy], []]) {
      const { leaf } = leaves.ordersViaIntermediate;
      expect(TrustAnchors.of(bundle).problem(peerIdentityFromCertificate(leaf), leaf, unread)).toBeUndefined();
    }
  });

  it('remembers a verified leaf, so a resumed session without intermediates passes', () => {
    const anchors = TrustAnchors.of([roots.elsewhere, roots.shop]);
    const { leaf, presented } = leaves.ordersViaIntermediate;
    const peer = peerIdentityFromCertificate(leaf);
    let reads = 0;
    expect(anchors.problem(peer, leaf, () => (reads++, []))).toMatch(
      /^SPIFFE ID ".*": no path from the certificate to a trust anchor of trust domain shop\.test: /,
    );
    expect(anchors.problem(peer, leaf, () => (reads++, presented))).toBeUndefined();
    expect(anchors.problem(peer, leaf, () => (reads++, []))).toBeUndefined();
    expect(reads).toBe(2);
  });

  it('binds nothing for a peer without a SPIFFE ID', () => {
    const { leaf } = leaves.legacy;
    expect(TrustAnchors.of([roots.shop]).problem(peerIdentityFromCertificate(leaf), leaf, () => [])).toBeUndefined();
  });

  it('is built once per bundle', () => {
    const bundle = [roots.shop, roots.elsewhere];
    expect(TrustAnchors.of(bundle)).toBe(TrustAnchors.of(bundle));
  });
});

describe('chainTrustDomainProblem (a client without its bundle)', () => {
  const chainOf = (name: keyof typeof leaves, root: keyof typeof roots) => [
    leaves[name].leaf,
    ...leaves[name].presented,
    roots[root],
  ];

  it.each<[string, () => CertificateInfo[], string | undefined]>([
    ['the shop chain', () => chainOf('orders', 'shop'), undefined],
    ['the shop chain through an intermediate', () => chainOf('ordersViaIntermediate', 'shop'), undefined],
    [
      'a legacy root',
      () => [leaves.orders.leaf, roots.legacy],
      `SPIFFE ID "${ORDERS}": the chain does not verify up to its trust anchor "CN=legacy root": no certificate in the chain or the trust bundle issued "${ORDERS}" (issuer "CN=shop root")`,
    ],
    [
      'an elsewhere leaf claiming shop.test',
      () => chainOf('impostorOrders', 'elsewhere'),
      mismatch(ORDERS, 'shop.test', 'elsewhere.test', 'elsewhere root'),
    ],
    [
      'junk linked by name up to the shop root',
      () => chainOf('forgedPath', 'shop'),
      expect.stringMatching(
        /^SPIFFE ID ".*": the chain does not verify up to its trust anchor "CN=shop root": /,
      ) as unknown as string,
    ],
    [
      'a chain Node could not complete',
      () => [leaves.orders.leaf],
      `SPIFFE ID "${ORDERS}": the chain ends at "${ORDERS}", which is not a self-issued trust anchor`,
    ],
  ])('%s', (_, chain, expected) => {
    const certificates = chain();
    expect(chainTrustDomainProblem(peerIdentityFromCertificate(certificates[0]!), certificates)).toEqual(expected);
  });
});
