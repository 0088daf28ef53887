import { normalizeDnsName } from '../../lib/identity/dns-name.js';
import { parseSpiffeId } from '../../lib/identity/spiffe-id.js';
import { peerIdentityFromDer, type PeerIdentity } from '../../lib/identity/peer-identity.js';
import { gn, subjectAltName } from '../x509/fixtures/der-builder.js';
import { OpensslCertificates, SVID_LEAF_EXTENSIONS, sanDer } from '../x509/fixtures/openssl.js';

/*
 * One fixed set of peers, every authorizer is run against all of them (go-spiffe's table style). The attack
 * fixtures come from real certificates so that the identity derivation is part of what is tested. Certificates that
 * get no identity at all (invalid SVIDs, CA leaves) never reach an authorizer: peer-identity.spec.ts covers them.
 */

export const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
export const PAYMENTS = 'spiffe://shop.test/ns/shop/sa/payments';

/** A PeerIdentity with the fields a fixture does not care about filled in; DNS names normalised as the identity does. */
export function peer(fields: Partial<PeerIdentity>): PeerIdentity {
  const dnsNames = fields.dnsNames ?? [];
  return Object.freeze({
    spiffeId: undefined,
    trustDomain: undefined,
    svidError: 'certificate contains no URI SAN',
    uris: [],
    dnsNames,
    normalizedDnsNames: [...new Set(dnsNames.map((name) => normalizeDnsName(name)).filter((name) => name !== undefined))],
    ipAddresses: [],
    emails: [],
    subject: '',
    commonName: undefined,
    issuer: 'CN=Test CA',
    serialNumber: '01',
    fingerprint256: '00',
    notBefore: new Date(0),
    notAfter: new Date(0),
    ...fields,
  });
}

function svid(id: string, fields: Partial<PeerIdentity> = {}): PeerIdentity {
  return peer({ spiffeId: id, trustDomain: parseSpiffeId(id).trustDomain, svidError: undefined, uris: [id], ...fields });
}

export type FixtureName =
  | 'orders'
  | 'ordersEvil'
  | 'payments'
  | 'nested'
  | 'evilTrustDomain'
  | 'otherTrustDomain'
  | 'hostileDns'
  | 'legacy'
  | 'cnOnly'
  | 'twoCns';

const LEAF = SVID_LEAF_EXTENSIONS;

/** Builds the fixtures; the certificate-backed ones need openssl, so this runs in `beforeAll`. */
export function buildFixtures(): Record<FixtureName, PeerIdentity> {
  const openssl = OpensslCertificates.create();
  try {
    const fromCertificate = (subject: string, san: string) =>
      peerIdentityFromDer(openssl.issue({ subject, extensions: [...LEAF, san] }).der);
    return {
      orders: svid(ORDERS, { dnsNames: ['orders.shop.svc'], commonName: 'orders' }),
      ordersEvil: svid(`${ORDERS}-evil`),
      payments: svid(PAYMENTS),
      nested: svid(`${ORDERS}/extra`),
      evilTrustDomain: svid('spiffe://shop.test.evil/ns/shop/sa/orders'),
      otherTrustDomain: svid('spiffe://bank.test/ns/shop/sa/orders'),
      hostileDns: fromCertificate('/CN=orders', sanDer(subjectAltName(gn.dns(`x.example, URI:${ORDERS}`)))),
      legacy: fromCertificate('/CN=legacy-batch', 'subjectAltName=DNS:billing.internal.example.com'),
      cnOnly: peerIdentityFromDer(openssl.issue({ subject: '/O=batch/CN=legacy-batch', extensions: LEAF }).der),
      twoCns: peerIdentityFromDer(openssl.issue({ subject: '/CN=evil/CN=legacy-batch', extensions: LEAF }).der),
    };
  } finally {
    openssl.dispose();
  }
}
