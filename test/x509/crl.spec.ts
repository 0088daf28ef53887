import { beforeAll, describe, expect, it } from 'vitest';
import { isRevokedBy, parseCrl, parseCrlPem } from '../../lib/x509/crl.js';
import type { CrlRefusal, RevocationList } from '../../lib/x509/crl.js';
import { parseCertificateDer, parseCertificatesPem } from '../../lib/x509/certificate.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import {
  CN,
  O,
  bits,
  bool,
  extension,
  generalizedTime,
  int,
  name,
  oid,
  seq,
  syntheticCertificate,
  tlv,
  utcTime,
  utf8,
} from './fixtures/der-builder.js';
import { signCrl, x509 } from '../credentials/fixtures.js';

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const SHA1_RSA = seq(oid('1.2.840.113549.1.1.5'), tlv(0x05));
const SHA256_RSA_NULL = seq(oid('1.2.840.113549.1.1.11'), tlv(0x05));
const SHA256_RSA_ABSENT = seq(oid('1.2.840.113549.1.1.11'));
const ISSUER = name([O, utf8('Shop')], [CN, utf8('Synthetic CA')]);

interface SyntheticCrl {
  /** `null` omits it (a v1 CRL). */
  version?: Buffer | null;
  signature?: Buffer;
  nextUpdate?: Buffer | null;
  thisUpdate?: Buffer;
  entries?: Buffer[];
  extensions?: Buffer[];
  outerAlgorithm?: Buffer;
  signatureValue?: Buffer;
  trailer?: Buffer;
}

/** A CRL with every field defaulted to a plain v2 CRL; override one field to test it. Its signature is a dummy. */
function syntheticCrl(fields: SyntheticCrl = {}): Buffer {
  const tbs = seq(
    ...(fields.version === null ? [] : [fields.version ?? int(1)]),
    fields.signature ?? ECDSA_SHA256,
    ISSUER,
    fields.thisUpdate ?? utcTime('260101000000Z'),
    ...(fields.nextUpdate === null ? [] : [fields.nextUpdate ?? utcTime('260201000000Z')]),
    ...(fields.entries === undefined ? [] : [seq(...fields.entries)]),
    ...(fields.extensions === undefined ? [] : [tlv(0xa0, seq(...fields.extensions))]),
  );
  return Buffer.concat([
    seq(tbs, fields.outerAlgorithm ?? ECDSA_SHA256, fields.signatureValue ?? bits(0, 0xaa, 0xbb)),
    fields.trailer ?? Buffer.alloc(0),
  ]);
}

/** One revokedCertificates entry. */
function entry(serial: Buffer, ...extensions: Buffer[]): Buffer {
  return seq(serial, utcTime('251231000000Z'), ...(extensions.length === 0 ? [] : [seq(...extensions)]));
}

function refusal(der: Uint8Array): CrlRefusal {
  const parsed = parseCrl(der);
  if (parsed.ok) throw new Error('expected the CRL to be refused');
  return parsed;
}

describe('parseCrl on hand-made DER', () => {
  it('reads issuer, dates, serials, the signed bytes and the signature', () => {
    const der = syntheticCrl({ entries: [entry(int(0x0a)), entry(int(0x00, 0x80, 0x01)), entry(int(0xff, 0x7f))] });
    const parsed = parseCrl(der);
    if (!parsed.ok) throw new Error(parsed.reason);
    const { crl } = parsed;
    expect(crl).toMatchObject({
      issuer: 'CN=Synthetic CA,O=Shop',
      thisUpdate: new Date('2026-01-01T00:00:00Z'),
      nextUpdate: new Date('2026-02-01T00:00:00Z'),
      hash: 'sha256',
    });
    expect(crl.issuerDer).toEqual(ISSUER);
    expect([...crl.revokedSerials]).toEqual(['0a', '8001', 'ff7f']);
    // The signed bytes are the whole TBSCertList element: what precedes the algorithm and the 5-byte signature.
    expect(der.indexOf(crl.tbs)).toBe(der.length - crl.tbs.length - ECDSA_SHA256.length - 5);
    expect(crl.tbs[0]).toBe(0x30);
    expect(crl.signature).toEqual(Buffer.from([0xaa, 0xbb]));
    expect(crl.der).toEqual(der);
  });

  it('formats revoked serials exactly as certificate serial numbers, so a padded serial matches', () => {
    const certificate = parseCertificateDer(syntheticCertificate({ serial: int(0x00, 0x80, 0x01) }));
    const parsed = parseCrl(syntheticCrl({ entries: [entry(int(0x00, 0x80, 0x01))] }));
    expect(parsed.ok && isRevokedBy(parsed.crl, certificate)).toBe(true);
    expect(certificate.serialNumber).toBe('8001');
  });

  it.each<[string, SyntheticCrl, Partial<Pick<RevocationList, 'nextUpdate' | 'thisUpdate' | 'crlNumber' | 'authorityKeyId'>>]>([
    ['a v1 CRL', { version: null, entries: [entry(int(1))] }, {}],
    ['a CRL without nextUpdate', { nextUpdate: null }, { nextUpdate: undefined }],
    [
      'GeneralizedTime dates',
      { thisUpdate: generalizedTime('20500101000000Z'), nextUpdate: generalizedTime('20500102000000Z') },
      { thisUpdate: new Date('2050-01-01T00:00:00Z') },
    ],
    ['an empty revokedCertificates list', { entries: [] }, {}],
    [
      'an entry with an empty extension list (as @peculiar/x509 writes it)',
      { entries: [seq(int(1), utcTime('251231000000Z'), seq())] },
      {},
    ],
    [
      'neutral extensions: cRLNumber, authorityKeyIdentifier, an unknown non-critical one',
      { extensions: [extension('2.5.29.20', int(7)), extension('2.5.29.35', seq()), extension('1.2.3.4', seq(), false)] },
      {},
    ],
    ['no cRLNumber, no authorityKeyIdentifier', {}, { crlNumber: undefined, authorityKeyId: undefined }],
    [
      'a cRLNumber and a key identifier',
      { extensions: [extension('2.5.29.20', int(0x00, 0x80, 0x01)), extension('2.5.29.35', seq(tlv(0x80, [0xab, 0xcd])))] },
      { crlNumber: 0x8001n, authorityKeyId: 'abcd' },
    ],
    [
      'a 20-octet cRLNumber',
      { extensions: [extension('2.5.29.20', int(0x7f, ...Array<number>(19).fill(0xff)))] },
      { crlNumber: 2n ** 159n - 1n },
    ],
    [
      'a 20-octet cRLNumber with its sign octet',
      { extensions: [extension('2.5.29.20', int(0x00, ...Array<number>(20).fill(0xff)))] },
      { crlNumber: 2n ** 160n - 1n },
    ],
    [
      'an authorityKeyIdentifier naming issuer and serial only',
      { extensions: [extension('2.5.29.35', seq(tlv(0xa1, seq()), tlv(0x82, [1])))] },
      { authorityKeyId: undefined },
    ],
    [
      'neutral entry extensions: reasonCode, invalidityDate',
      {
        entries: [
          entry(int(1), extension('2.5.29.21', tlv(0x0a, [1])), extension('2.5.29.24', generalizedTime('20251231000000Z'))),
        ],
      },
      {},
    ],
    ['RSA with NULL parameters on both sides', { signature: SHA256_RSA_NULL, outerAlgorithm: SHA256_RSA_NULL }, {}],
  ])('accepts %s', (_name, fields, expected) => {
    const parsed = parseCrl(syntheticCrl(fields));
    expect(parsed).toMatchObject({ ok: true, crl: expected });
  });

  it.each<[string, SyntheticCrl | Uint8Array, string]>([
    ['empty input', new Uint8Array(0), 'not a DER-encoded X.509 CRL: CertificateList: missing'],
    [
      'a certificate',
      syntheticCertificate(),
      'not a DER-encoded X.509 CRL: tbsCertList.signature: expected tag 0x30, found 0xa0',
    ],
    [
      'trailing bytes',
      { trailer: Buffer.from([0]) },
      'not a DER-encoded X.509 CRL: CertificateList: 1 unexpected trailing bytes',
    ],
    ['version 3', { version: int(2) }, 'not a DER-encoded X.509 CRL: tbsCertList.version: must be v2 (1) when present'],
    [
      'extensions in a v1 CRL',
      { version: null, extensions: [extension('2.5.29.20', int(1))] },
      'not a DER-encoded X.509 CRL: tbsCertList.crlExtensions: only allowed in a v2 CRL',
    ],
    [
      'entry extensions in a v1 CRL',
      { version: null, entries: [entry(int(1), extension('2.5.29.21', tlv(0x0a, [1])))] },
      'not a DER-encoded X.509 CRL: tbsCertList.revokedCertificates #1.crlEntryExtensions: only allowed in a v2 CRL',
    ],
    [
      'a padded serial',
      { entries: [entry(int(1)), entry(int(0x00, 0x01))] },
      'not a DER-encoded X.509 CRL: tbsCertList.revokedCertificates #2.userCertificate: INTEGER is not minimally encoded',
    ],
    [
      'a local time',
      { thisUpdate: utcTime('2601010000000') },
      'not a DER-encoded X.509 CRL: tbsCertList.thisUpdate: time must end in Z (UTC)',
    ],
    [
      'a signature with unused bits',
      { signatureValue: bits(1, 0x80) },
      'not a DER-encoded X.509 CRL: signatureValue: BIT STRING must hold whole bytes',
    ],
    [
      'a duplicate extension',
      { extensions: [extension('2.5.29.20', int(1)), extension('2.5.29.20', int(2))] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.20: appears more than once',
    ],
    [
      'a negative cRLNumber',
      { extensions: [extension('2.5.29.20', int(0xff))] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.20 (cRLNumber): must not be negative',
    ],
    [
      'a 21-octet cRLNumber',
      { extensions: [extension('2.5.29.20', int(0x01, ...Array<number>(20).fill(0)))] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.20 (cRLNumber): longer than 20 octets (RFC 5280 §5.2.3)',
    ],
    [
      'a cRLNumber that is not an INTEGER',
      { extensions: [extension('2.5.29.20', seq())] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.20 (cRLNumber): expected tag 0x02, found 0x30',
    ],
    [
      'a cRLNumber with trailing bytes',
      { extensions: [extension('2.5.29.20', Buffer.concat([int(1), int(2)]))] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.20 (cRLNumber): 3 unexpected trailing bytes',
    ],
    [
      'an authorityKeyIdentifier with an unknown field',
      { extensions: [extension('2.5.29.35', seq(tlv(0x83, [1])))] },
      'not a DER-encoded X.509 CRL: extension 2.5.29.35 (authorityKeyIdentifier): 3 unexpected trailing bytes',
    ],
    [
      'a non-minimal length',
      { extensions: [Buffer.from([0x30, 0x81, 0x03, 0x06, 0x01, 0x2a])] },
      'not a DER-encoded X.509 CRL: tbsCertList.crlExtensions: length is not minimally encoded',
    ],
    [
      'differing signature algorithms',
      { outerAlgorithm: seq(oid('1.2.840.10045.4.3.3')) },
      'signatureAlgorithm differs from the signature field of tbsCertList',
    ],
    [
      'the same algorithm with and without NULL parameters',
      { signature: SHA256_RSA_NULL, outerAlgorithm: SHA256_RSA_ABSENT },
      'signatureAlgorithm differs from the signature field of tbsCertList',
    ],
  ])('refuses %s as malformed', (_name, input, reason) => {
    const der = input instanceof Uint8Array ? input : syntheticCrl(input);
    expect(refusal(der)).toMatchObject({ ok: false, kind: 'malformed', reason, fix: 'fetch the CRL again from its CA' });
  });

  it.each<[string, SyntheticCrl, string]>([
    [
      'a delta CRL',
      { extensions: [extension('2.5.29.27', int(5), true)] },
      'it is a delta CRL (deltaCRLIndicator), which lists only the changes since a base CRL; only complete CRLs are supported',
    ],
    [
      'a partitioned CRL',
      { extensions: [extension('2.5.29.28', seq(tlv(0x81, [0xff])), true)] },
      'it has an issuingDistributionPoint extension, so it may cover only some certificates of its CA (a partitioned CRL); only complete CRLs are supported',
    ],
    [
      'an unknown critical extension',
      { extensions: [extension('2.5.29.20', int(1)), extension('1.2.3.4', seq(), true)] },
      'it has critical extension 1.2.3.4, which is not understood (RFC 5280 §5.2: such a CRL must not be used)',
    ],
    [
      'an indirect CRL',
      { entries: [entry(int(1), extension('2.5.29.29', seq(tlv(0xa4, ISSUER)), true))] },
      'it is an indirect CRL (certificateIssuer entry extension), which lists certificates of other issuers; only complete CRLs of one CA are supported',
    ],
    [
      'an unknown critical entry extension',
      { entries: [entry(int(1)), entry(int(2), extension('1.2.3.5', seq(), true))] },
      'an entry has critical extension 1.2.3.5, which is not understood (RFC 5280 §5.3: such a CRL must not be used)',
    ],
  ])('refuses %s as not complete', (_name, fields, reason) => {
    expect(refusal(syntheticCrl(fields))).toEqual({
      ok: false,
      kind: 'unsupported',
      reason,
      fix: "configure the CA's complete CRL, the one that lists every certificate it revoked (no deltaCRLIndicator, issuingDistributionPoint or certificateIssuer)",
      issuer: 'CN=Synthetic CA,O=Shop',
    });
  });

  it('refuses a signature algorithm it does not accept', () => {
    expect(refusal(syntheticCrl({ signature: SHA1_RSA, outerAlgorithm: SHA1_RSA }))).toMatchObject({
      kind: 'unsupported',
      reason:
        'signature algorithm 1.2.840.113549.1.1.5 is not accepted (use ECDSA, Ed25519 or RSA PKCS#1 v1.5 with SHA-256 or stronger)',
      issuer: 'CN=Synthetic CA,O=Shop',
    });
  });

  it('reports malformed bytes before an unsupported extension', () => {
    const der = syntheticCrl({ extensions: [extension('2.5.29.27', int(5), true)], trailer: Buffer.from([0]) });
    expect(refusal(der)).toMatchObject({ kind: 'malformed', issuer: undefined });
  });

  it('refuses input that is not bytes, and PEM without a CRL block', () => {
    expect(refusal('MIIB' as unknown as Uint8Array)).toMatchObject({
      kind: 'malformed',
      reason: 'CRL DER must be a Buffer or Uint8Array',
    });
    expect(parseCrlPem('-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n')).toMatchObject({
      ok: false,
      reason: 'not a PEM "X509 CRL" block',
    });
  });

  it('copies the input, so later changes to the caller buffer do not leak in', () => {
    const der = syntheticCrl({ entries: [entry(int(0x0a))] });
    const parsed = parseCrl(der);
    der.fill(0);
    expect(parsed.ok && parsed.crl.issuer).toBe('CN=Synthetic CA,O=Shop');
    expect(parsed.ok && parsed.crl.tbs[0]).toBe(0x30);
  });
});

describe('parseCrl on signed CRLs', () => {
  let ca: CertificateAuthority;
  beforeAll(async () => {
    ca = await CertificateAuthority.create({ commonName: 'CRL Root CA' });
  });

  it('names the issuer with the bytes of the CA subject', async () => {
    const parsed = parseCrlPem(await ca.createCrl(['00:80', '0a']));
    if (!parsed.ok) throw new Error(parsed.reason);
    const caInfo = parseCertificatesPem(ca.certPem)[0]!;
    expect(parsed.crl.issuerDer.equals(caInfo.subjectDer)).toBe(true);
    expect(parsed.crl.issuer).toBe(caInfo.subject);
    expect([...parsed.crl.revokedSerials].sort()).toEqual(['0a', '80']);
  });

  it.each<[string, () => x509.Extension, RegExp]>([
    ['a delta CRL', () => new x509.Extension('2.5.29.27', true, int(1)), /^it is a delta CRL/],
    [
      'a partitioned CRL',
      () => new x509.Extension('2.5.29.28', true, seq(tlv(0x84, [0xff]))),
      /^it has an issuingDistributionPoint extension/,
    ],
    [
      'a critical private extension',
      () => new x509.Extension('1.3.6.1.4.1.99999.1', true, seq(bool(true))),
      /^it has critical extension 1\.3\.6\.1\.4\.1\.99999\.1,/,
    ],
  ])('refuses %s written by @peculiar/x509', async (_name, make, reason) => {
    const pem = await signCrl({ certPem: ca.certPem, keyPem: ca.keyPem }, { extensions: [make()] });
    expect(parseCrlPem(pem)).toMatchObject({
      ok: false,
      kind: 'unsupported',
      reason: expect.stringMatching(reason),
      issuer: 'CN=CRL Root CA',
    });
  });
});
