import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateParseError, PeerError } from '../../lib/errors/mtls.errors.js';
import { parseCertificateDer } from '../../lib/x509/certificate.js';
import { peerIdentityFromCertificate, peerIdentityFromDer, type PeerIdentity } from '../../lib/identity/peer-identity.js';
import { gn, subjectAltName } from '../x509/fixtures/der-builder.js';
import { OpensslCertificates, SVID_LEAF_EXTENSIONS, sanDer } from '../x509/fixtures/openssl.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const LEAF = SVID_LEAF_EXTENSIONS;

let openssl: OpensslCertificates;
beforeAll(() => {
  openssl = OpensslCertificates.create();
});
afterAll(() => openssl?.dispose());

function identityOf(subject: string, extensions: readonly string[]): PeerIdentity {
  return peerIdentityFromDer(openssl.issue({ subject, extensions }).der);
}

describe('peerIdentityFromCertificate', () => {
  it('derives the SPIFFE ID of a valid X509-SVID', () => {
    const identity = identityOf('/O=shop/CN=orders', [
      ...LEAF,
      `subjectAltName=critical,URI:${ORDERS},DNS:Orders.Shop.SVC,DNS:*.shop.svc,IP:10.1.2.3,email:ops@shop.test`,
    ]);
    expect(identity).toMatchObject({
      spiffeId: ORDERS,
      trustDomain: 'shop.test',
      svidError: undefined,
      uris: [ORDERS],
      dnsNames: ['Orders.Shop.SVC', '*.shop.svc'],
      normalizedDnsNames: ['orders.shop.svc'],
      ipAddresses: ['10.1.2.3'],
      emails: ['ops@shop.test'],
      subject: 'CN=orders,O=shop',
      commonName: 'orders',
      issuer: 'CN=Test CA,O=Test',
    });
    expect(identity.serialNumber).toMatch(/^[0-9a-f]+$/);
    expect(identity.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(identity.notAfter.getTime()).toBeGreaterThan(identity.notBefore.getTime());
  });

  it.each([
    ['no URI SAN', [`subjectAltName=DNS:orders.shop.svc`], 'certificate contains no URI SAN'],
    ['no SAN at all', [], 'certificate contains no URI SAN'],
    ['a non-SPIFFE URI', ['subjectAltName=URI:https://orders.shop.test/'], 'scheme is missing or invalid'],
    ['two non-SPIFFE URIs', ['subjectAltName=URI:https://a.test/,URI:urn:x:y'], 'certificate contains more than one URI SAN'],
    [
      'a URI whose scheme only starts like spiffe',
      ['subjectAltName=URI:spiffey://shop.test/ns/shop/sa/orders'],
      'scheme is missing or invalid',
    ],
    [
      'a hostile DNS SAN that spells out a URI SAN',
      [sanDer(subjectAltName(gn.dns(`x.example, URI:${ORDERS}`)))],
      'certificate contains no URI SAN',
    ],
  ])('is a legacy peer, without SPIFFE ID, with %s', (_, san, svidError) => {
    const identity = identityOf('/CN=peer', [...LEAF, ...san]);
    expect(identity).toMatchObject({ spiffeId: undefined, trustDomain: undefined, svidError });
  });

  it('keeps every SAN of a legacy peer, for DNS and CN rules', () => {
    const identity = identityOf('/CN=peer', [
      ...LEAF,
      'subjectAltName=URI:https://a.test/x,URI:urn:b,DNS:Peer.TEST,DNS:bad_,DNS:peer.test',
    ]);
    expect(identity).toMatchObject({
      uris: ['https://a.test/x', 'urn:b'],
      dnsNames: ['Peer.TEST', 'bad_', 'peer.test'],
      normalizedDnsNames: ['peer.test', 'bad_'],
    });
  });

  const SVID_RULE = 'a certificate with a spiffe URI SAN authenticates only as a valid X509-SVID (X509-SVID §5.2)';

  it.each([
    [
      'two SPIFFE URI SANs (X509-SVID §5.2)',
      [`subjectAltName=URI:spiffe://shop.test/ns/shop/sa/attacker,URI:${ORDERS},DNS:orders.shop.svc`],
      'could not get leaf SPIFFE ID: certificate contains more than one URI SAN',
    ],
    [
      'a SPIFFE and an https URI SAN',
      [`subjectAltName=URI:https://orders.shop.test/,URI:${ORDERS},DNS:orders.shop.svc`],
      'could not get leaf SPIFFE ID: certificate contains more than one URI SAN',
    ],
    [
      'an upper-case trust domain',
      ['subjectAltName=URI:spiffe://SHOP.test/ns/shop/sa/orders,DNS:orders.shop.svc'],
      'could not get leaf SPIFFE ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'an upper-case scheme',
      ['subjectAltName=URI:SPIFFE://shop.test/ns/shop/sa/orders'],
      'could not get leaf SPIFFE ID: scheme is missing or invalid',
    ],
    [
      'a mixed-case scheme',
      ['subjectAltName=URI:Spiffe://shop.test/ns/shop/sa/orders'],
      'could not get leaf SPIFFE ID: scheme is missing or invalid',
    ],
    [
      'no authority',
      ['subjectAltName=URI:spiffe:shop.test/ns/shop/sa/orders'],
      'could not get leaf SPIFFE ID: scheme is missing or invalid',
    ],
    [
      'a `..` segment',
      ['subjectAltName=URI:spiffe://shop.test/ns/shop/sa/x/../orders'],
      'could not get leaf SPIFFE ID: path cannot contain dot segments',
    ],
    [
      'a percent-encoded path',
      ['subjectAltName=URI:spiffe://shop.test/ns/shop/sa/%6Frders'],
      'could not get leaf SPIFFE ID: path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    ['a trailing slash', [`subjectAltName=URI:${ORDERS}/`], 'could not get leaf SPIFFE ID: path cannot have a trailing slash'],
    [
      'a port',
      ['subjectAltName=URI:spiffe://shop.test:443/ns/shop/sa/orders'],
      'could not get leaf SPIFFE ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'the trust domain ID itself (X509-SVID §3.1)',
      ['subjectAltName=URI:spiffe://shop.test,DNS:orders.shop.svc'],
      'leaf certificate SPIFFE ID must have a non-root path',
    ],
    [
      'a URI with a NUL before a suffix',
      [sanDer(subjectAltName(gn.uri(Buffer.from(`${ORDERS}\0.evil`, 'latin1'))))],
      'could not get leaf SPIFFE ID: path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
  ])('refuses a leaf that claims a SPIFFE ID with %s, whatever its other SANs', (_, san, reason) => {
    const { der } = openssl.issue({ subject: '/CN=orders', extensions: [...LEAF, ...san] });
    expect(() => peerIdentityFromDer(der)).toThrow(
      expect.objectContaining({
        name: 'PeerError',
        code: 'ERR_MTLS_PEER_INVALID',
        message: `${reason}: ${SVID_RULE} (subject "CN=orders", serial ${parseCertificateDer(der).serialNumber})`,
      }),
    );
  });

  it.each([
    [
      'cA=true, even without keyCertSign',
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
      'leaf certificate with CA flag set to true',
    ],
    [
      'keyCertSign',
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyCertSign'],
      'leaf certificate with KeyCertSign key usage',
    ],
    [
      'cRLSign',
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,cRLSign'],
      'leaf certificate with KeyCrlSign key usage',
    ],
  ])('refuses a leaf with %s (X509-SVID §4.1, §4.3)', (_, extensions, reason) => {
    const { der } = openssl.issue({ subject: '/CN=sneaky', extensions: [...extensions, `subjectAltName=URI:${ORDERS}`] });
    expect(() => peerIdentityFromDer(der)).toThrow(
      expect.objectContaining({
        name: 'PeerError',
        code: 'ERR_MTLS_PEER_INVALID',
        message: `${reason}: a certificate that can sign certificates or CRLs never authenticates a peer (subject "CN=sneaky", serial ${parseCertificateDer(der).serialNumber})`,
      }),
    );
  });

  it('refuses the CA certificate itself', () => {
    expect(() => peerIdentityFromDer(openssl.ca.der)).toThrow(PeerError);
  });

  it.each([
    ['/CN=orders', 'orders'],
    ['/O=shop', undefined],
    ['/CN=evil/CN=good', undefined],
  ])('takes commonName only from a subject with exactly one CN: %s', (subject, commonName) => {
    expect(identityOf(subject, LEAF).commonName).toBe(commonName);
  });

  it('is frozen, holds no DER and serialises to JSON', () => {
    const identity = identityOf('/CN=orders', [...LEAF, `subjectAltName=URI:${ORDERS}`]);
    expect(Object.isFrozen(identity)).toBe(true);
    expect(Object.isFrozen(identity.uris)).toBe(true);
    expect(Object.isFrozen(identity.normalizedDnsNames)).toBe(true);
    expect(identity).not.toHaveProperty('der');
    expect(JSON.parse(JSON.stringify(identity))).toMatchObject({ spiffeId: ORDERS, commonName: 'orders' });
  });

  it('gives the same identity from DER as from a parsed certificate', () => {
    const { der } = openssl.issue({ subject: '/CN=orders', extensions: [...LEAF, `subjectAltName=URI:${ORDERS}`] });
    expect(peerIdentityFromDer(der)).toEqual(peerIdentityFromCertificate(parseCertificateDer(der)));
  });

  it('reports unparseable DER as a certificate error', () => {
    expect(() => peerIdentityFromDer(Buffer.from('junk'))).toThrow(CertificateParseError);
  });
});
