import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificateDer, type CertificateInfo } from '../../lib/x509/certificate.js';
import { claimsSpiffeId, hasSpiffeScheme, svidProblems, type SvidProblem } from '../../lib/identity/svid-rules.js';
import { OpensslCertificates, SVID_LEAF_EXTENSIONS } from '../x509/fixtures/openssl.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const LEAF = SVID_LEAF_EXTENSIONS;
const CA_EXTENSIONS = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];

let openssl: OpensslCertificates;
beforeAll(() => {
  openssl = OpensslCertificates.create();
});
afterAll(() => openssl?.dispose());

function leaf(extensions: readonly string[]): CertificateInfo {
  return parseCertificateDer(openssl.issue({ subject: '/CN=leaf', extensions }).der);
}

const id = (message: string): SvidProblem => ({ kind: 'spiffe-id', message });
const endEntity = (message: string): SvidProblem => ({ kind: 'end-entity', message });

describe('hasSpiffeScheme', () => {
  it.each([
    [ORDERS, true],
    ['SPIFFE://shop.test/x', true],
    ['sPiFfE:x', true],
    ['spiffe:', true],
    ['spiffe', false],
    ['spiffe\u001a//shop.test/x', false],
    ['spiffey://shop.test/x', false],
    [' spiffe://shop.test/x', false],
    ['https://shop.test/', false],
    ['', false],
  ])('%j → %s', (uri, expected) => {
    expect(hasSpiffeScheme(uri)).toBe(expected);
  });
});

describe('svidProblems', () => {
  // [name, leaf extensions, problems as a peer (x509svid.Verify wording), problems as our own SVID (x509svid.Load)]
  const table: [string, () => readonly string[], SvidProblem[], SvidProblem[]][] = [
    ['a valid SVID', () => [...LEAF, `subjectAltName=URI:${ORDERS}`], [], []],
    ['a legacy leaf with a DNS SAN', () => [...LEAF, 'subjectAltName=DNS:orders.shop.svc'], [], []],
    ['a legacy leaf with an https URI SAN', () => [...LEAF, 'subjectAltName=URI:https://orders.shop.test/'], [], []],
    [
      'two URI SANs',
      () => [...LEAF, `subjectAltName=URI:${ORDERS},URI:https://x.test/`],
      [id('could not get leaf SPIFFE ID: certificate contains more than one URI SAN')],
      [id('cannot get leaf certificate SPIFFE ID: certificate contains more than one URI SAN')],
    ],
    [
      'an upper-case scheme',
      () => [...LEAF, 'subjectAltName=URI:SPIFFE://shop.test/x'],
      [id('could not get leaf SPIFFE ID: scheme is missing or invalid')],
      [id('cannot get leaf certificate SPIFFE ID: scheme is missing or invalid')],
    ],
    [
      'a root ID',
      () => [...LEAF, 'subjectAltName=URI:spiffe://shop.test'],
      [id('leaf certificate SPIFFE ID must have a non-root path')],
      [id('leaf certificate SPIFFE ID must have a non-root path')],
    ],
    [
      'an SVID without key usage',
      () => ['basicConstraints=critical,CA:FALSE', `subjectAltName=URI:${ORDERS}`],
      // go-spiffe's verifier leaves digitalSignature to the TLS stack; its loader requires it.
      [],
      [endEntity("leaf certificate must have 'digitalSignature' set as key usage")],
    ],
    [
      'an SVID that is a CA with every forbidden bit',
      () => [...CA_EXTENSIONS, `subjectAltName=URI:${ORDERS}`],
      [
        endEntity('leaf certificate with CA flag set to true'),
        endEntity('leaf certificate with KeyCertSign key usage'),
        endEntity('leaf certificate with KeyCrlSign key usage'),
      ],
      [
        endEntity('leaf certificate must not have CA flag set to true'),
        endEntity("leaf certificate must have 'digitalSignature' set as key usage"),
        endEntity("leaf certificate must not have 'keyCertSign' set as key usage"),
        endEntity("leaf certificate must not have 'cRLSign' set as key usage"),
      ],
    ],
    [
      'an invalid SVID that is also a CA: the ID first, as go-spiffe',
      () => [...CA_EXTENSIONS, 'subjectAltName=URI:spiffe://shop.test/a/../b'],
      [
        id('could not get leaf SPIFFE ID: path cannot contain dot segments'),
        endEntity('leaf certificate with CA flag set to true'),
        endEntity('leaf certificate with KeyCertSign key usage'),
        endEntity('leaf certificate with KeyCrlSign key usage'),
      ],
      [
        id('cannot get leaf certificate SPIFFE ID: path cannot contain dot segments'),
        endEntity('leaf certificate must not have CA flag set to true'),
        endEntity("leaf certificate must have 'digitalSignature' set as key usage"),
        endEntity("leaf certificate must not have 'keyCertSign' set as key usage"),
        endEntity("leaf certificate must not have 'cRLSign' set as key usage"),
      ],
    ],
    [
      'a legacy leaf with keyCertSign',
      () => ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyCertSign', 'subjectAltName=DNS:x.test'],
      [endEntity('leaf certificate with KeyCertSign key usage')],
      [endEntity("leaf certificate must not have 'keyCertSign' set as key usage")],
    ],
    [
      'a legacy CA:TRUE leaf without keyCertSign (Node reads x509.ca as false here)',
      () => ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
      [endEntity('leaf certificate with CA flag set to true')],
      [endEntity('leaf certificate must not have CA flag set to true')],
    ],
  ];

  it.each(table)('%s', (_, extensions, asPeer, asOwn) => {
    const certificate = leaf(extensions());
    expect(svidProblems(certificate, 'peer')).toEqual(asPeer);
    expect(svidProblems(certificate, 'own')).toEqual(asOwn);
    expect(claimsSpiffeId(certificate)).toBe(certificate.uris.some(hasSpiffeScheme));
  });

  it('checks the signing certificates of our own SVID only', () => {
    const svid = leaf([...LEAF, `subjectAltName=URI:${ORDERS}`]);
    const notCa = leaf(['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,keyCertSign']);
    const noKeyCertSign = leaf(['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,cRLSign']);
    const good = parseCertificateDer(openssl.ca.der);
    expect(svidProblems(svid, 'own', [good, notCa, noKeyCertSign])).toEqual([
      { kind: 'signing', message: 'signing certificate must have CA flag set to true' },
      { kind: 'signing', message: "signing certificate must have 'keyCertSign' set as key usage" },
    ]);
    expect(svidProblems(svid, 'peer', [notCa])).toEqual([]);
    // A legacy leaf's chain is the chain verifier's business, not the SVID profile's.
    expect(svidProblems(leaf([...LEAF, 'subjectAltName=DNS:x.test']), 'own', [notCa])).toEqual([]);
  });

  it('returns one frozen empty list for the common case', () => {
    const problems = svidProblems(leaf([...LEAF, `subjectAltName=URI:${ORDERS}`]), 'peer');
    expect(Object.isFrozen(problems)).toBe(true);
    expect(problems).toBe(svidProblems(leaf([...LEAF, 'subjectAltName=DNS:x.test']), 'peer'));
  });
});
