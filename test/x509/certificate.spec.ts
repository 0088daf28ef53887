import { X509Certificate } from 'node:crypto';
import { AsnParser, AsnSerializer } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DerError } from '../../lib/x509/der.js';
import { CertificateParseError } from '../../lib/errors/mtls.errors.js';
import {
  EKU_CLIENT_AUTH,
  EKU_SERVER_AUTH,
  parseCertificateDer,
  parseCertificatesPem,
  type CertificateInfo,
} from '../../lib/x509/certificate.js';
import {
  CN,
  O,
  bool,
  extension,
  generalizedTime,
  gn,
  int,
  name,
  oid,
  printable,
  seq,
  subjectAltName,
  syntheticCertificate,
  tlv,
  utcTime,
  utf8,
} from './fixtures/der-builder.js';
import { OpensslCertificates, sanDer, type TestCertificate } from './fixtures/openssl.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const HOSTILE_DNS = `x.example, URI:${ORDERS}`;
const LEAF_USAGE = ['keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth'];

let openssl: OpensslCertificates;
const fixtures = {} as Record<
  | 'leaf'
  | 'hostileDns'
  | 'twoUris'
  | 'noSan'
  | 'caTrueLeaf'
  | 'ips'
  | 'twoCns'
  | 'multiValued'
  | 'escaping'
  | 'email'
  | 'v1'
  | 'longLived'
  | 'pathLen',
  TestCertificate
>;

beforeAll(() => {
  openssl = OpensslCertificates.create();
  const issue = openssl.issue.bind(openssl);
  fixtures.leaf = issue({
    subject: '/O=shop/CN=orders',
    extensions: [
      'basicConstraints=critical,CA:FALSE',
      ...LEAF_USAGE,
      `subjectAltName=critical,URI:${ORDERS},DNS:orders.shop.svc`,
    ],
  });
  fixtures.hostileDns = issue({
    subject: '/CN=x.example',
    extensions: [...LEAF_USAGE, sanDer(subjectAltName(gn.dns(HOSTILE_DNS)))],
  });
  fixtures.twoUris = issue({
    subject: '/CN=two',
    extensions: [...LEAF_USAGE, `subjectAltName=URI:spiffe://shop.test/ns/shop/sa/attacker,URI:${ORDERS}`],
  });
  fixtures.noSan = issue({ subject: '/CN=orders', extensions: ['basicConstraints=critical,CA:FALSE', ...LEAF_USAGE] });
  fixtures.caTrueLeaf = issue({
    subject: '/CN=sneaky',
    extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature', `subjectAltName=URI:${ORDERS}`],
  });
  fixtures.ips = issue({
    subject: '/CN=ips',
    extensions: [
      'subjectAltName=IP:10.0.0.1,IP:2001:db8::1,IP:::1,IP:2001:db8:0:1:1:1:1:1,IP:2001:0:0:1:0:0:0:1,IP:2001:db8:0:0:1:0:0:1,IP:::ffff:192.0.2.1,IP:fe80::,IP:::,IP:2001:DB8:AAAA:0:0:0:0:0',
    ],
  });
  fixtures.twoCns = issue({ subject: '/CN=evil/CN=good', extensions: LEAF_USAGE });
  fixtures.multiValued = issue({ subject: '/O=shop/L=x+CN=good', multiValueRdn: true, extensions: LEAF_USAGE });
  fixtures.escaping = issue({ subject: '/O= lead/CN=#a, b\\+c;d<e>"f"\\\\', extensions: LEAF_USAGE });
  fixtures.email = issue({ subject: '/CN=ops', extensions: ['subjectAltName=email:ops@shop.test,DNS:ops.shop.test'] });
  fixtures.v1 = issue({ subject: '/CN=v1', selfSigned: true });
  fixtures.longLived = issue({ subject: '/CN=long', days: 12_000, extensions: LEAF_USAGE });
  fixtures.pathLen = issue({
    subject: '/CN=Intermediate',
    extensions: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'],
  });
});

afterAll(() => openssl?.dispose());

/** The same fields as read by @peculiar/asn1-x509, an independent ASN.1 implementation. */
function oracle(der: Buffer) {
  const cert = AsnParser.parse(der, Certificate);
  const tbs = cert.tbsCertificate;
  const extension = <T>(id: string, type: new () => T) => {
    const ext = tbs.extensions?.find((e) => e.extnID === id);
    return ext && { critical: ext.critical, value: AsnParser.parse(ext.extnValue, type) };
  };
  const san = extension('2.5.29.17', SubjectAlternativeName);
  const names = san?.value ?? [];
  const basic = extension('2.5.29.19', BasicConstraints);
  const keyUsage = extension('2.5.29.15', KeyUsage);
  const eku = extension('2.5.29.37', ExtendedKeyUsage);
  const flags = keyUsage?.value.toNumber() ?? 0;
  const read = new Set(['2.5.29.17', '2.5.29.19', '2.5.29.15', '2.5.29.37']);
  return {
    subjectDer: Buffer.from(AsnSerializer.serialize(tbs.subject)),
    issuerDer: Buffer.from(AsnSerializer.serialize(tbs.issuer)),
    unhandledCriticalExtensions: (tbs.extensions ?? []).filter((e) => e.critical && !read.has(e.extnID)).map((e) => e.extnID),
    uris: names.flatMap((n) => n.uniformResourceIdentifier ?? []),
    dnsNames: names.flatMap((n) => n.dNSName ?? []),
    emails: names.flatMap((n) => n.rfc822Name ?? []),
    ipCount: names.filter((n) => n.iPAddress !== undefined).length,
    subjectAltNameCritical: san?.critical ?? false,
    isCa: basic?.value.cA ?? false,
    pathLength: basic?.value.pathLenConstraint,
    keyUsage: keyUsage && {
      digitalSignature: (flags & KeyUsageFlags.digitalSignature) !== 0,
      nonRepudiation: (flags & KeyUsageFlags.nonRepudiation) !== 0,
      keyEncipherment: (flags & KeyUsageFlags.keyEncipherment) !== 0,
      dataEncipherment: (flags & KeyUsageFlags.dataEncipherment) !== 0,
      keyAgreement: (flags & KeyUsageFlags.keyAgreement) !== 0,
      keyCertSign: (flags & KeyUsageFlags.keyCertSign) !== 0,
      cRLSign: (flags & KeyUsageFlags.cRLSign) !== 0,
      encipherOnly: (flags & KeyUsageFlags.encipherOnly) !== 0,
      decipherOnly: (flags & KeyUsageFlags.decipherOnly) !== 0,
    },
    keyUsageCritical: keyUsage?.critical ?? false,
    extKeyUsage: eku && [...eku.value],
    subjectCommonNames: tbs.subject.flatMap((rdn) => rdn.filter((a) => a.type === CN).map((a) => a.value.toString())),
    notBefore: tbs.validity.notBefore.getTime().getTime(),
    notAfter: tbs.validity.notAfter.getTime().getTime(),
  };
}

describe('parseCertificateDer on openssl certificates', () => {
  const names = Object.keys({
    leaf: 0,
    hostileDns: 0,
    twoUris: 0,
    noSan: 0,
    caTrueLeaf: 0,
    ips: 0,
    twoCns: 0,
    multiValued: 0,
    escaping: 0,
    email: 0,
    v1: 0,
    longLived: 0,
    pathLen: 0,
  }) as (keyof typeof fixtures)[];

  it.each(names)('%s agrees with @peculiar/asn1-x509 and node:crypto', (fixture) => {
    const { der, pem } = fixtures[fixture];
    const info = parseCertificateDer(der);
    const expected = oracle(der);
    const { ipCount, notBefore, notAfter, ...fields } = expected;
    expect(info).toMatchObject(fields);
    expect(info.ipAddresses).toHaveLength(ipCount);
    expect(info.notBefore.getTime()).toBe(notBefore);
    expect(info.notAfter.getTime()).toBe(notAfter);

    const node = new X509Certificate(pem);
    expect(info.fingerprint256).toBe(node.fingerprint256);
    expect(info.serialNumber).toBe(node.serialNumber.toLowerCase().replace(/^(00)+(?=..)/, ''));
    expect(info.notBefore).toEqual(new Date(node.validFrom));
    expect(info.notAfter).toEqual(new Date(node.validTo));
    expect(info.der.equals(der)).toBe(true);
    // Views into the certificate's own copy, not copies.
    expect(info.subjectDer.buffer).toBe(info.der.buffer);
    expect(info.issuerDer.buffer).toBe(info.der.buffer);
    expect(info.selfIssued).toBe(info.subjectDer.equals(info.issuerDer));
    expect(Object.isFrozen(info)).toBe(true);
    expect(Object.isFrozen(info.uris)).toBe(true);
  });

  it('reads a typical SVID leaf', () => {
    expect(parseCertificateDer(fixtures.leaf.der)).toMatchObject({
      subject: 'CN=orders,O=shop',
      subjectCommonNames: ['orders'],
      issuer: 'CN=Test CA,O=Test',
      uris: [ORDERS],
      dnsNames: ['orders.shop.svc'],
      ipAddresses: [],
      emails: [],
      isCa: false,
      pathLength: undefined,
      keyUsage: { digitalSignature: true, keyEncipherment: true, keyCertSign: false, cRLSign: false },
      keyUsageCritical: true,
      extKeyUsage: [EKU_SERVER_AUTH, EKU_CLIENT_AUTH],
      subjectAltNameCritical: true,
      selfIssued: false,
    } satisfies Partial<Record<keyof CertificateInfo, unknown>>);
  });

  it('keeps a hostile DNS SAN as one DNS name and finds no URI in it', () => {
    const info = parseCertificateDer(fixtures.hostileDns.der);
    expect(info.dnsNames).toEqual([HOSTILE_DNS]);
    expect(info.uris).toEqual([]);
    // Node's own string escapes the comma; this is the text naive code splits.
    expect(new X509Certificate(fixtures.hostileDns.pem).subjectAltName).toBe(`DNS:"x.example\\u002c URI:${ORDERS}"`);
  });

  it('keeps every URI SAN in certificate order', () => {
    expect(parseCertificateDer(fixtures.twoUris.der).uris).toEqual(['spiffe://shop.test/ns/shop/sa/attacker', ORDERS]);
  });

  it('reports no SANs and no SAN criticality without the extension', () => {
    expect(parseCertificateDer(fixtures.noSan.der)).toMatchObject({
      uris: [],
      dnsNames: [],
      ipAddresses: [],
      emails: [],
      subjectAltNameCritical: false,
    });
  });

  it('reads cA=true from the DER where node:crypto says the leaf is no CA', () => {
    expect(parseCertificateDer(fixtures.caTrueLeaf.der)).toMatchObject({ isCa: true, keyUsage: { keyCertSign: false } });
    expect(new X509Certificate(fixtures.caTrueLeaf.pem).ca).toBe(false);
  });

  it('writes IP SANs as dotted IPv4 and RFC 5952 IPv6', () => {
    expect(parseCertificateDer(fixtures.ips.der).ipAddresses).toEqual([
      '10.0.0.1',
      '2001:db8::1',
      '::1',
      '2001:db8:0:1:1:1:1:1', // §4.2.2: a single zero group is not compressed
      '2001:0:0:1::1', // §4.2.3: the longest run
      '2001:db8::1:0:0:1', // §4.2.3: the first of equal runs
      '::ffff:192.0.2.1', // §5: IPv4-mapped keeps the dotted quad
      'fe80::',
      '::',
      '2001:db8:aaaa::', // §4.3: lower case
    ]);
  });

  it('lists every CN, in order, including those of a multi-valued RDN', () => {
    expect(parseCertificateDer(fixtures.twoCns.der)).toMatchObject({
      subject: 'CN=good,CN=evil',
      subjectCommonNames: ['evil', 'good'],
    });
    expect(parseCertificateDer(fixtures.multiValued.der)).toMatchObject({
      subject: 'L=x+CN=good,O=shop',
      subjectCommonNames: ['good'],
    });
  });

  it('escapes subject text per RFC 4514', () => {
    expect(parseCertificateDer(fixtures.escaping.der).subject).toBe('CN=\\#a\\, b\\+c\\;d\\<e\\>\\"f\\"\\\\,O=\\ lead');
  });

  it('reads rfc822Name SANs', () => {
    expect(parseCertificateDer(fixtures.email.der)).toMatchObject({ emails: ['ops@shop.test'], dnsNames: ['ops.shop.test'] });
  });

  it('reads a v1 certificate, which has no extensions', () => {
    expect(parseCertificateDer(fixtures.v1.der)).toMatchObject({
      selfIssued: true,
      isCa: false,
      keyUsage: undefined,
      extKeyUsage: undefined,
      uris: [],
    });
  });

  it('reads GeneralizedTime validity (after 2049)', () => {
    expect(parseCertificateDer(fixtures.longLived.der).notAfter.getUTCFullYear()).toBeGreaterThanOrEqual(2050);
  });

  it('reads CA certificates: cA, pathLenConstraint, keyCertSign, self-issued', () => {
    expect(parseCertificateDer(openssl.ca.der)).toMatchObject({
      isCa: true,
      pathLength: undefined,
      keyUsage: { keyCertSign: true, cRLSign: true, digitalSignature: false },
      selfIssued: true,
    });
    expect(parseCertificateDer(fixtures.pathLen.der)).toMatchObject({ isCa: true, pathLength: 0, selfIssued: false });
  });

  it('copies the input, so later changes to the caller buffer do not leak in', () => {
    const der = Buffer.from(fixtures.leaf.der);
    const info = parseCertificateDer(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
    der.fill(0);
    expect(info.der.equals(fixtures.leaf.der)).toBe(true);
  });
});

describe('parseCertificatesPem', () => {
  it('parses every CERTIFICATE block in order and skips other blocks', () => {
    const pem = `junk before\n${fixtures.leaf.pem}-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n${openssl.ca.pem}`;
    expect(parseCertificatesPem(pem).map((c) => c.subject)).toEqual(['CN=orders,O=shop', 'CN=Test CA,O=Test']);
  });

  it('accepts CRLF line ends', () => {
    expect(parseCertificatesPem(fixtures.leaf.pem.replace(/\n/g, '\r\n'))[0]!.uris).toEqual([ORDERS]);
  });

  it.each([
    ['no block', 'hello', 'no "-----BEGIN CERTIFICATE-----" block found'],
    [
      'a key only',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
      'no "-----BEGIN CERTIFICATE-----" block found',
    ],
    ['a block without END', '-----BEGIN CERTIFICATE-----\nMIIB\n', 'PEM certificate #1 has no "-----END CERTIFICATE-----" line'],
    ['bad base64', '-----BEGIN CERTIFICATE-----\nMII*B\n-----END CERTIFICATE-----\n', 'PEM certificate #1 is not valid base64'],
    ['an empty block', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'PEM certificate #1 is not valid base64'],
    [
      'base64 that is no certificate',
      '-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n',
      'PEM certificate #1: malformed certificate: Certificate: expected tag 0x30, found 0x68',
    ],
  ])('rejects %s', (_, pem, message) => {
    expect(() => parseCertificatesPem(pem)).toThrow(
      expect.objectContaining({ name: 'CertificateParseError', code: 'ERR_MTLS_CERTIFICATE_INVALID', message }),
    );
  });

  it('names the block that fails', () => {
    const broken = `-----BEGIN CERTIFICATE-----\n${syntheticCertificate().subarray(0, 40).toString('base64')}\n-----END CERTIFICATE-----\n`;
    expect(() => parseCertificatesPem(fixtures.leaf.pem + broken)).toThrow(/^PEM certificate #2: malformed certificate: /);
  });
});

describe('parseCertificateDer on hand-made DER', () => {
  const san = (...names: Buffer[]) => [extension('2.5.29.17', subjectAltName(...names))];

  it('reads a minimal synthetic certificate', () => {
    expect(parseCertificateDer(syntheticCertificate())).toMatchObject({
      subject: 'CN=synthetic',
      issuer: 'CN=Synthetic CA',
      serialNumber: '01',
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2027-01-01T00:00:00Z'),
      isCa: false,
    });
  });

  it.each([
    ['UTF8String', utf8('zoë 日本'), 'zoë 日本'],
    ['PrintableString', printable('orders'), 'orders'],
    ['TeletexString (Latin-1)', tlv(0x14, [0x63, 0x61, 0x66, 0xe9]), 'café'],
    ['BMPString', tlv(0x1e, [0x00, 0x7a, 0x00, 0x6f, 0x00, 0xeb]), 'zoë'],
    ['UniversalString', tlv(0x1c, [0, 0, 0, 0x61, 0, 1, 0xf6, 0x00]), 'a😀'],
  ])('decodes a %s commonName', (_, value, text) => {
    expect(parseCertificateDer(syntheticCertificate({ subject: name([CN, value]) })).subjectCommonNames).toEqual([text]);
  });

  it('writes a non-string attribute value as #hex and control characters as hex pairs', () => {
    const info = parseCertificateDer(
      syntheticCertificate({ subject: name([O, utf8('a\nb\u0085c')], [CN, tlv(0x04, [0xde, 0xad])]) }),
    );
    expect(info.subject).toBe('CN=#0402dead,O=a\\0ab\\c2\\85c');
    expect(info.subjectCommonNames).toEqual(['#0402dead']);
  });

  it('reads an empty subject as the empty string', () => {
    expect(parseCertificateDer(syntheticCertificate({ subject: seq() }))).toMatchObject({ subject: '', subjectCommonNames: [] });
  });

  it('accepts an explicit cA FALSE and a critical flag', () => {
    const info = parseCertificateDer(syntheticCertificate({ extensions: [extension('2.5.29.19', seq(bool(false)), true)] }));
    expect(info.isCa).toBe(false);
  });

  it('reads keyUsage bits across both bytes (decipherOnly is bit 8)', () => {
    const keyUsage = extension('2.5.29.15', tlv(0x03, [0x07, 0x80, 0x80]), true);
    expect(parseCertificateDer(syntheticCertificate({ extensions: [keyUsage] })).keyUsage).toEqual({
      digitalSignature: true,
      nonRepudiation: false,
      keyEncipherment: false,
      dataEncipherment: false,
      keyAgreement: false,
      keyCertSign: false,
      cRLSign: false,
      encipherOnly: false,
      decipherOnly: true,
    });
  });

  it('decodes OIDs with arcs beyond 2^53', () => {
    const uuidOid = '2.25.329800735698586629295641978511506172918';
    const eku = extension('2.5.29.37', seq(oid(uuidOid), oid(EKU_CLIENT_AUTH)));
    expect(parseCertificateDer(syntheticCertificate({ extensions: [eku] })).extKeyUsage).toEqual([uuidOid, EKU_CLIENT_AUTH]);
  });

  it('lists the critical extensions it does not read, in order, and ignores non-critical ones', () => {
    const info = parseCertificateDer(
      syntheticCertificate({
        extensions: [
          extension('1.2.3.4', seq(), true),
          extension('2.5.29.17', subjectAltName(gn.uri(ORDERS)), true),
          extension('1.2.3.5', seq(), false),
          extension('2.5.29.30', seq(), true),
          extension('2.5.29.19', seq(), true),
        ],
      }),
    );
    expect(info.unhandledCriticalExtensions).toEqual(['1.2.3.4', '2.5.29.30']);
    expect(Object.isFrozen(info.unhandledCriticalExtensions)).toBe(true);
    expect(parseCertificateDer(syntheticCertificate()).unhandledCriticalExtensions).toEqual([]);
  });

  it('slices issuer and subject as whole Name elements', () => {
    const issuer = name([O, utf8('Shop')], [CN, utf8('Synthetic CA')]);
    const subject = seq();
    const info = parseCertificateDer(syntheticCertificate({ issuer, subject }));
    expect(info.issuerDer).toEqual(issuer);
    expect(info.subjectDer).toEqual(Buffer.from([0x30, 0x00]));
    expect(info.selfIssued).toBe(false);
    expect(parseCertificateDer(syntheticCertificate({ issuer, subject: issuer })).selfIssued).toBe(true);
  });

  it('keeps the DER error as the cause', () => {
    let error: unknown;
    try {
      parseCertificateDer(Buffer.from([0x30, 0x81, 0x02, 0x05, 0x00]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CertificateParseError);
    expect((error as Error).cause).toBeInstanceOf(DerError);
    expect((error as Error).cause).toMatchObject({ what: 'Certificate', detail: 'length is not minimally encoded' });
  });

  it('strips the sign byte of the serial number', () => {
    expect(parseCertificateDer(syntheticCertificate({ serial: int(0x00, 0x80, 0x01) })).serialNumber).toBe('8001');
  });

  it('skips GeneralName forms it does not expose', () => {
    const info = parseCertificateDer(
      syntheticCertificate({ extensions: san(gn.directory(name([CN, utf8('dir')])), gn.uri(ORDERS), tlv(0x88, oid('1.2.3'))) }),
    );
    expect(info.uris).toEqual([ORDERS]);
  });

  it.each([
    ['empty input', Buffer.alloc(0), 'Certificate: missing'],
    ['random bytes', Buffer.from('not a certificate'), 'Certificate: expected tag 0x30, found 0x6e'],
    [
      'a truncated certificate',
      syntheticCertificate().subarray(0, 100),
      'Certificate: length 228 runs past the end of its container',
    ],
    ['trailing bytes', Buffer.concat([syntheticCertificate(), Buffer.from([0])]), 'Certificate: 1 unexpected trailing bytes'],
    ['an indefinite length', Buffer.from([0x30, 0x80, 0x00, 0x00]), 'Certificate: indefinite length is not DER'],
    ['a non-minimal length', Buffer.from([0x30, 0x81, 0x02, 0x05, 0x00]), 'Certificate: length is not minimally encoded'],
    [
      'a high tag number',
      syntheticCertificate({ extensions: san(Buffer.from([0x9f, 0x21, 0x01, 0x00])) }),
      'subjectAltName: high tag numbers are not used in X.509',
    ],
    [
      'a duplicate subjectAltName',
      syntheticCertificate({ extensions: [...san(gn.uri('spiffe://a.test/x')), ...san(gn.uri(ORDERS))] }),
      'extension 2.5.29.17: appears more than once',
    ],
    [
      'a non-ASCII dNSName',
      syntheticCertificate({ extensions: san(gn.dns(Buffer.from([0x61, 0xe9]))) }),
      'subjectAltName dNSName: IA5String holds a byte above 0x7F',
    ],
    [
      'a non-ASCII URI',
      syntheticCertificate({ extensions: san(gn.uri(Buffer.from(`${ORDERS}\u00e9`, 'utf8'))) }),
      'subjectAltName uniformResourceIdentifier: IA5String holds a byte above 0x7F',
    ],
    [
      'a 5-byte IP address',
      syntheticCertificate({ extensions: san(gn.ip(10, 0, 0, 1, 0)) }),
      'subjectAltName iPAddress: an IP address has 4 or 16 bytes, not 5',
    ],
    [
      'an unknown GeneralName tag',
      syntheticCertificate({ extensions: san(tlv(0x89, [1])) }),
      'subjectAltName: unknown GeneralName tag 0x89',
    ],
    [
      'a constructed dNSName',
      syntheticCertificate({ extensions: san(tlv(0xa2, gn.dns('a'))) }),
      'subjectAltName: unknown GeneralName tag 0xa2',
    ],
    [
      'a BOOLEAN that is neither 0x00 nor 0xFF',
      syntheticCertificate({ extensions: [seq(oid('2.5.29.19'), tlv(0x01, [0x01]), tlv(0x04, seq()))] }),
      'extension 2.5.29.19.critical: BOOLEAN must be 0x00 or 0xFF',
    ],
    [
      'extensions in a v1 certificate',
      syntheticCertificate({ version: null }),
      'tbsCertificate.extensions: only allowed in version 3, this is version 1',
    ],
    ['version 4', syntheticCertificate({ version: tlv(0xa0, int(3)) }), 'tbsCertificate.version: unknown version 4'],
    ['an empty extension list', syntheticCertificate({ extensions: [] }), 'tbsCertificate.extensions: empty extension list'],
    [
      'an unpadded serial',
      syntheticCertificate({ serial: int(0x00, 0x01) }),
      'tbsCertificate.serialNumber: INTEGER is not minimally encoded',
    ],
    [
      'February 30',
      syntheticCertificate({ validity: seq(utcTime('260230000000Z'), utcTime('270101000000Z')) }),
      'tbsCertificate.validity.notBefore: not a valid date and time',
    ],
    [
      'a local time',
      syntheticCertificate({ validity: seq(utcTime('2601010000000'), utcTime('270101000000Z')) }),
      'tbsCertificate.validity.notBefore: time must end in Z (UTC)',
    ],
    [
      'fractional seconds',
      syntheticCertificate({ validity: seq(utcTime('260101000000Z'), generalizedTime('20270101000000.5Z')) }),
      'tbsCertificate.validity.notAfter: GeneralizedTime must be YYYYMMDDHHMMSSZ',
    ],
    [
      'invalid UTF-8 in the subject',
      syntheticCertificate({ subject: name([CN, tlv(0x0c, [0xc3, 0x28])]) }),
      'tbsCertificate.subject 2.5.4.3: invalid UTF-8',
    ],
    [
      'an empty RDN',
      syntheticCertificate({ subject: seq(tlv(0x31)) }),
      'tbsCertificate.subject: empty RelativeDistinguishedName',
    ],
    [
      'an OID with a padded arc',
      syntheticCertificate({ extensions: [seq(tlv(0x06, [0x55, 0x80, 0x1d]), tlv(0x04, seq()))] }),
      'tbsCertificate.extensions.extnID: OBJECT IDENTIFIER arc is not minimally encoded',
    ],
    [
      'a keyUsage with 8 unused bits',
      syntheticCertificate({ extensions: [extension('2.5.29.15', tlv(0x03, [0x08, 0x80]))] }),
      'keyUsage: BIT STRING has an invalid unused-bits count',
    ],
    [
      'a negative pathLenConstraint',
      syntheticCertificate({ extensions: [extension('2.5.29.19', seq(bool(true), int(0xff)))] }),
      'basicConstraints.pathLenConstraint: must not be negative',
    ],
    [
      'bytes after basicConstraints',
      syntheticCertificate({ extensions: [extension('2.5.29.19', seq(bool(true), int(1), int(2)))] }),
      'basicConstraints: 3 unexpected trailing bytes',
    ],
    ['an empty extKeyUsage', syntheticCertificate({ extensions: [extension('2.5.29.37', seq())] }), 'extKeyUsage: empty list'],
    [
      'an OID arc of 2^128 or more (fuzzing: a 48 KB arc took 0.3 s)',
      syntheticCertificate({
        extensions: [extension('2.5.29.37', seq(tlv(0x06, [0x2a, ...Array<number>(19).fill(0xff), 0x7f])))],
      }),
      'extKeyUsage: OBJECT IDENTIFIER arc does not fit in 128 bits',
    ],
  ])('rejects %s', (_, der, detail) => {
    expect(() => parseCertificateDer(der)).toThrow(
      expect.objectContaining({
        name: 'CertificateParseError',
        code: 'ERR_MTLS_CERTIFICATE_INVALID',
        message: `malformed certificate: ${detail}`,
      }),
    );
  });

  // Found by test/x509/der-fuzz.spec.ts: work that grew with the square of the input. 64 KiB is what a proxy header
  // (XFCC, RFC 9440) may carry; each case must take microseconds per KiB, like a real certificate.
  it.each<[string, () => Buffer]>([
    [
      'one 60 KB OID arc',
      () =>
        syntheticCertificate({
          extensions: [extension('2.5.29.37', seq(tlv(0x06, [0x2a, ...Array<number>(60_000).fill(0xff), 0x7f])))],
        }),
    ],
    [
      '5,000 unhandled critical extensions',
      () => syntheticCertificate({ extensions: Array.from({ length: 5_000 }, (_, i) => extension(`1.2.3.${i}`, seq(), true)) }),
    ],
  ])('reads %s in linear time', (_, build) => {
    const der = build();
    parseCertificateDer(syntheticCertificate()); // warm the reader up: the bound is for the parse, not the JIT
    const start = performance.now();
    try {
      parseCertificateDer(der);
    } catch (error) {
      expect(error).toBeInstanceOf(CertificateParseError);
    }
    expect(performance.now() - start).toBeLessThan(25);
  });

  it('rejects input that is not bytes', () => {
    expect(() => parseCertificateDer('MIIB' as unknown as Uint8Array)).toThrow(
      new CertificateParseError('certificate DER must be a Buffer or Uint8Array'),
    );
  });
});
