import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateParseError, PeerError } from '../../lib/errors/mtls.errors.js';
import { parseCertificateDer } from '../../lib/identity/certificate.js';
import { peerIdentityFromCertificate, peerIdentityFromDer, type PeerIdentity } from '../../lib/identity/peer-identity.js';
import { gn, subjectAltName } from './fixtures/der-builder.js';
import { OpensslCertificates, SVID_LEAF_EXTENSIONS, sanDer } from './fixtures/openssl.js';

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
    const identity = identityOf('/O=shop/CN=orders', [...LEAF, `subjectAltName=critical,URI:${ORDERS},DNS:orders.shop.svc,IP:10.1.2.3`]);
    expect(identity).toMatchObject({
      spiffeId: ORDERS,
      trustDomain: 'shop.test',
      svidError: undefined,
      uris: [ORDERS],
      dnsNames: ['orders.shop.svc'],
      ipAddresses: ['10.1.2.3'],
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
    [
      'two URI SANs (X509-SVID §5.2)',
      [`subjectAltName=URI:spiffe://shop.test/ns/shop/sa/attacker,URI:${ORDERS}`],
      'certificate contains more than one URI SAN',
    ],
    ['a non-SPIFFE URI', ['subjectAltName=URI:https://orders.shop.test/'], 'scheme is missing or invalid'],
    [
      'an upper-case trust domain',
      ['subjectAltName=URI:spiffe://Shop.test/ns/shop/sa/orders'],
      'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    ['a `..` segment', ['subjectAltName=URI:spiffe://shop.test/ns/shop/sa/x/../orders'], 'path cannot contain dot segments'],
    [
      'a percent-encoded path',
      ['subjectAltName=URI:spiffe://shop.test/ns/shop/sa/%6Frders'],
      'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
    ['the trust domain ID itself (X509-SVID §3.1)', ['subjectAltName=URI:spiffe://shop.test'], 'leaf certificate SPIFFE ID must have a non-root path'],
    [
      'a hostile DNS SAN that spells out a URI SAN',
      [sanDer(subjectAltName(gn.dns(`x.example, URI:${ORDERS}`)))],
      'certificate contains no URI SAN',
    ],
    [
      'a URI with a NUL before a suffix',
      [sanDer(subjectAltName(gn.uri(Buffer.from(`${ORDERS}\0.evil`, 'latin1'))))],
      'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
  ])('has no SPIFFE ID with %s', (_, san, svidError) => {
    const identity = identityOf('/CN=peer', [...LEAF, ...san]);
    expect(identity).toMatchObject({ spiffeId: undefined, trustDomain: undefined, svidError });
  });

  it('keeps every SAN of a certificate that is no SVID, for DNS and CN rules', () => {
    const identity = identityOf('/CN=peer', [...LEAF, `subjectAltName=URI:spiffe://a.test/x,URI:spiffe://b.test/y,DNS:peer.test`]);
    expect(identity).toMatchObject({ uris: ['spiffe://a.test/x', 'spiffe://b.test/y'], dnsNames: ['peer.test'] });
  });

  it.each([
    ['cA=true, even without keyCertSign', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'], 'leaf certificate with CA flag set to true'],
    ['keyCertSign', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyCertSign'], 'leaf certificate with KeyCertSign key usage'],
    ['cRLSign', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,cRLSign'], 'leaf certificate with KeyCrlSign key usage'],
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
