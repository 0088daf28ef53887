import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { authorizeMemberOf } from '../../lib/authorization/authorizer.js';
import { parseCrlPem, type RevocationList } from '../../lib/x509/crl.js';
import { PeerError } from '../../lib/errors/mtls.errors.js';
import { parseCertificatesPem, type CertificateInfo } from '../../lib/x509/certificate.js';
import {
  chainDeadline,
  decideAdmission,
  issuedByRoot,
  MAX_PEER_CHAIN,
  PeerCertificates,
  type AdmissionInput,
  type PeerChain,
} from '../../lib/server/connection-admission.js';
import type { TrustGeneration } from '../../lib/server/trust-generation.js';
import { CertificateAuthority } from '../../lib/testing/index.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const one = (pem: string): CertificateInfo => parseCertificatesPem(pem)[0]!;
const crl = (pem: string): RevocationList => {
  const parsed = parseCrlPem(pem);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.crl;
};

/*
 * The connection-level decision as a table: real certificates from the package's CA, no socket. Each row names the
 * input that differs from an ordinary admitted peer and the outcome.
 */
describe('decideAdmission', () => {
  let root: CertificateInfo;
  let certificates: PeerCertificates;
  let orders: CertificateInfo;
  let ordersCa: CertificateInfo;
  let elsewhereId: CertificateInfo;
  let generation: TrustGeneration;
  let revokingGeneration: TrustGeneration;
  let otherRootGeneration: TrustGeneration;
  const now = Date.now();

  beforeAll(async () => {
    const ca = await CertificateAuthority.create({ commonName: 'shop.test root', trustDomain: 'shop.test' });
    const other = await CertificateAuthority.create({ commonName: 'other root', trustDomain: 'shop.test' });
    root = one(ca.rootPem);
    certificates = new PeerCertificates();
    const ordersPeer = await ca.issue({ spiffeId: ORDERS });
    orders = one(ordersPeer.certPem);
    ordersCa = one((await ca.issue({ spiffeId: ORDERS, isCa: true })).certPem);
    elsewhereId = one((await ca.issue({ spiffeId: 'spiffe://elsewhere.test/ns/x/sa/y' })).certPem);
    generation = { id: 2, roots: [root], crls: [crl(await ca.createCrl([]))], key: 'a' };
    revokingGeneration = { id: 3, roots: [root], crls: [crl(await ca.createCrl([ordersPeer.serialNumber]))], key: 'b' };
    otherRootGeneration = { id: 4, roots: [one(other.rootPem)], crls: [], key: 'c' };
  });

  const chainOf = (leaf: CertificateInfo): PeerChain => certificates.chain(leaf, []);
  const input = (overrides: Partial<AdmissionInput> & { leaf?: CertificateInfo | null } = {}): AdmissionInput => {
    const { leaf, ...rest } = overrides;
    return {
      chain: leaf === null ? undefined : chainOf(leaf ?? orders),
      tlsError: undefined,
      reverify: false,
      generation,
      now,
      authorizer: undefined,
      ...rest,
    };
  };

  type Row = [
    name: string,
    make: () => AdmissionInput,
    kind: 'admitted' | 'unauthenticated' | 'refused',
    label: string | undefined,
  ];
  const rows: Row[] = [
    ['an SVID verified by OpenSSL under the current trust', () => input(), 'admitted', undefined],
    [
      'no certificate (TLS 1.3 resumption, node#35317)',
      () => input({ leaf: null }),
      'unauthenticated',
      'ERR_MTLS_PEER_UNAUTHENTICATED',
    ],
    ['OpenSSL refused it (permissive mode)', () => input({ tlsError: 'CERT_REVOKED' }), 'unauthenticated', 'CERT_REVOKED'],
    ['began under an older trust, still valid under the new one', () => input({ reverify: true }), 'admitted', undefined],
    [
      'began under an older trust, revoked by the new one',
      () => input({ reverify: true, generation: revokingGeneration }),
      'unauthenticated',
      'CERT_REVOKED',
    ],
    [
      'began under an older trust, its root removed since',
      () => input({ reverify: true, generation: otherRootGeneration }),
      'unauthenticated',
      'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    ],
    [
      'a resumed session after its notAfter',
      () => input({ now: orders.notAfter.getTime() + 1 }),
      'unauthenticated',
      'CERT_HAS_EXPIRED',
    ],
    ['a CA:TRUE leaf', () => input({ leaf: ordersCa }), 'refused', 'ERR_MTLS_PEER_INVALID'],
    [
      'a SPIFFE ID of a trust domain its root does not vouch for',
      () => input({ leaf: elsewhereId }),
      'refused',
      'ERR_MTLS_PEER_INVALID',
    ],
    [
      'refused by connectionAuthorizer',
      () => input({ authorizer: authorizeMemberOf('elsewhere.test') }),
      'refused',
      'ERR_MTLS_PEER_DENIED',
    ],
    ['admitted by connectionAuthorizer', () => input({ authorizer: authorizeMemberOf('shop.test') }), 'admitted', undefined],
  ];

  it.each(rows)('%s → %s', (_name, make, kind, label) => {
    const admission = decideAdmission(make());
    expect(admission.kind).toBe(kind);
    if (admission.kind === 'admitted') {
      expect(admission.identity.spiffeId).toBe(ORDERS);
      expect(admission.deadline).toBe(orders.notAfter.getTime());
    } else {
      expect(admission.label).toBe(label);
      expect(admission.error).toBeInstanceOf(PeerError);
    }
  });

  it('says which rule refused the connection', () => {
    const admission = decideAdmission(input({ authorizer: authorizeMemberOf('elsewhere.test') }));
    expect(admission).toMatchObject({
      kind: 'refused',
      error: {
        code: 'ERR_MTLS_PEER_DENIED',
        message: 'connection refused: unexpected trust domain "shop.test"',
        rule: 'member of [elsewhere.test]',
      },
    });
  });
});

describe('peer chains', () => {
  it('reads no intermediate for a leaf signed by a root of the bundle, and knows one signed by an intermediate is not', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'root' });
    const intermediate = await ca.createIntermediate({ commonName: 'intermediate' });
    const roots = [one(ca.rootPem)];
    expect(issuedByRoot(one((await ca.issue({ spiffeId: ORDERS })).certPem), roots)).toBe(true);
    expect(issuedByRoot(one((await intermediate.issue({ spiffeId: ORDERS })).certPem), roots)).toBe(false);
    // A look-alike root (same name, another key) does not count.
    const lookalike = await CertificateAuthority.create({ commonName: 'root' });
    expect(issuedByRoot(one((await lookalike.issue({ spiffeId: ORDERS })).certPem), roots)).toBe(false);
  });

  it('keeps one object per distinct chain, and a resumed session gets the chain its leaf presented last', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'root' });
    const intermediate = await ca.createIntermediate({ commonName: 'intermediate' });
    const peer = await intermediate.issue({ spiffeId: ORDERS });
    const certificates = new PeerCertificates();
    const [leafDer, interDer] = parseCertificatesPem(peer.chainPem).map((c) => c.der);
    const leaf = certificates.parse(leafDer!);
    expect(certificates.parse(Buffer.from(leafDer!))).toBe(leaf);
    const inter = certificates.parse(interDer!);
    const full = certificates.chain(leaf, [inter]);
    expect(certificates.chain(leaf, [inter])).toBe(full);
    expect(certificates.lastChain(leaf)).toBe(full);
    // A resumed session presents the leaf alone: that does not replace what the leaf sent before.
    certificates.chain(leaf, []);
    expect(certificates.lastChain(leaf)).toBe(full);
    expect(chainDeadline(full)).toBe(Math.min(leaf.notAfter.getTime(), inter.notAfter.getTime()));
    expect(MAX_PEER_CHAIN).toBe(10);
  });
});
