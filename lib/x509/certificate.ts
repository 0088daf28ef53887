import { hash } from 'node:crypto';
import { contextConstructed, contextPrimitive, DerError, DerReader, hex2, malformed, Tag } from './der.js';
import { CertificateParseError } from '../errors/mtls.errors.js';
import { formatName } from './names.js';

/*
 * X.509 (RFC 5280 §4.1) read straight from the DER with a strict reader, once per distinct certificate. Node 20 exposes
 * neither key-usage bits nor a structured SAN list, and its `subjectaltname` string is escaped text that must not be
 * parsed (CVE-2021-44532). @peculiar/asn1-schema was measured at ~340 µs per leaf (asn1js alone ~150 µs); this reader
 * takes a few µs and rejects what Go's crypto/x509 rejects: BER lengths, trailing bytes, duplicate extensions,
 * non-ASCII SANs, malformed IP SANs. The field readers shared with CRLs (Name, Time, serial number, Extensions) are
 * exported for `x509/crl.ts`, so one renderer and one serial format exist.
 */

/** Key usage bits (RFC 5280 §4.2.1.3) as read from the DER. */
export interface KeyUsageBits {
  readonly digitalSignature: boolean;
  readonly nonRepudiation: boolean;
  readonly keyEncipherment: boolean;
  readonly dataEncipherment: boolean;
  readonly keyAgreement: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
  readonly encipherOnly: boolean;
  readonly decipherOnly: boolean;
}

/** Everything this package needs from one X.509 certificate, read from its DER with an ASN.1 parser. */
export interface CertificateInfo {
  /** The DER bytes. */
  readonly der: Buffer;
  /** Subject as an RFC 4514 string (for logs only; never match on it). */
  readonly subject: string;
  /**
   * The subject Name exactly as encoded (tag, length and contents), a view into {@link der}. Chain building compares
   * names as these bytes, as Go's crypto/x509 does: an issuer copies its subject verbatim, and byte equality cannot be
   * fooled by a lenient rendering.
   */
  readonly subjectDer: Buffer;
  /** Every commonName attribute of the subject, in order. */
  readonly subjectCommonNames: readonly string[];
  /** Issuer as an RFC 4514 string. */
  readonly issuer: string;
  /** The issuer Name exactly as encoded, a view into {@link der}; `c.issuerDer.equals(ca.subjectDer)` names `ca` as issuer. */
  readonly issuerDer: Buffer;
  /** Serial number, lower-case hex without separators or leading zero bytes. */
  readonly serialNumber: string;
  /** Start of the validity period. */
  readonly notBefore: Date;
  /** End of the validity period. */
  readonly notAfter: Date;
  /** SHA-256 of the DER, upper-case hex pairs joined by `:` (Node's `fingerprint256` format). */
  readonly fingerprint256: string;
  /** URI SANs, exactly as encoded, in certificate order. */
  readonly uris: readonly string[];
  /** DNS SANs, exactly as encoded. */
  readonly dnsNames: readonly string[];
  /** IP SANs in textual form (IPv4 dotted, IPv6 RFC 5952). */
  readonly ipAddresses: readonly string[];
  /** rfc822Name SANs. */
  readonly emails: readonly string[];
  /** basicConstraints cA, read from the DER (false when the extension is absent). */
  readonly isCa: boolean;
  /** basicConstraints pathLenConstraint, when present. */
  readonly pathLength: number | undefined;
  /** Key usage bits, or undefined when the extension is absent. */
  readonly keyUsage: KeyUsageBits | undefined;
  /** Whether the key usage extension is marked critical. */
  readonly keyUsageCritical: boolean;
  /** Extended key usage OIDs, or undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** Whether the subjectAltName extension is marked critical. */
  readonly subjectAltNameCritical: boolean;
  /**
   * OIDs of the extensions marked critical that this parser does not read (anything but subjectAltName,
   * basicConstraints, keyUsage and extKeyUsage), in certificate order. OpenSSL enforces some of them itself (e.g.
   * nameConstraints); any other makes it reject the certificate in every handshake.
   */
  readonly unhandledCriticalExtensions: readonly string[];
  /** True when subject and issuer are the same Name, byte for byte. */
  readonly selfIssued: boolean;
}

/** OID of the `id-kp-serverAuth` extended key usage. */
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
/** OID of the `id-kp-clientAuth` extended key usage. */
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';

const SAN_OTHER_NAME = contextConstructed(0);
const SAN_RFC822_NAME = contextPrimitive(1);
const SAN_DNS_NAME = contextPrimitive(2);
const SAN_X400_ADDRESS = contextConstructed(3);
const SAN_DIRECTORY_NAME = contextConstructed(4);
const SAN_EDI_PARTY_NAME = contextConstructed(5);
const SAN_URI = contextPrimitive(6);
const SAN_IP_ADDRESS = contextPrimitive(7);
const SAN_REGISTERED_ID = contextPrimitive(8);

const EMPTY: readonly string[] = Object.freeze([]);

/** Parses one certificate's DER. Throws {@link CertificateParseError} on anything that is not a well-formed X.509 certificate. */
export function parseCertificateDer(der: Uint8Array): CertificateInfo {
  if (!(der instanceof Uint8Array)) throw new CertificateParseError('certificate DER must be a Buffer or Uint8Array');
  // A private copy: the caller's buffer may be reused or changed after we return.
  const buf = Buffer.from(der);
  try {
    return readCertificate(buf);
  } catch (error) {
    if (error instanceof DerError) throw new CertificateParseError(`malformed certificate: ${error.message}`, { cause: error });
    throw error;
  }
}

function readCertificate(buf: Buffer): CertificateInfo {
  const top = DerReader.of(buf);
  const certificate = top.read(Tag.SEQUENCE, 'Certificate');
  top.finish('Certificate');

  const tbs = certificate.read(Tag.SEQUENCE, 'tbsCertificate');
  certificate.read(Tag.SEQUENCE, 'signatureAlgorithm');
  certificate.read(Tag.BIT_STRING, 'signatureValue');
  certificate.finish('Certificate');

  const versionField = tbs.readOptional(contextConstructed(0), 'tbsCertificate.version');
  let version = 0;
  if (versionField !== undefined) {
    version = versionField.read(Tag.INTEGER, 'tbsCertificate.version').smallUnsigned('tbsCertificate.version');
    versionField.finish('tbsCertificate.version');
    if (version > 2) malformed('tbsCertificate.version', `unknown version ${version + 1}`);
  }
  const serialNumber = readSerialNumber(tbs, 'tbsCertificate.serialNumber');
  tbs.read(Tag.SEQUENCE, 'tbsCertificate.signature');
  const issuerDer = tbs.readEncoded(Tag.SEQUENCE, 'tbsCertificate.issuer');
  const validity = tbs.read(Tag.SEQUENCE, 'tbsCertificate.validity');
  const notBefore = readTime(validity, 'tbsCertificate.validity.notBefore');
  const notAfter = readTime(validity, 'tbsCertificate.validity.notAfter');
  validity.finish('tbsCertificate.validity');
  const subjectDer = tbs.readEncoded(Tag.SEQUENCE, 'tbsCertificate.subject');
  tbs.read(Tag.SEQUENCE, 'tbsCertificate.subjectPublicKeyInfo');
  if (version >= 1) {
    tbs.readOptional(contextPrimitive(1), 'tbsCertificate.issuerUniqueID');
    tbs.readOptional(contextPrimitive(2), 'tbsCertificate.subjectUniqueID');
  }
  const extensionsField = tbs.readOptional(contextConstructed(3), 'tbsCertificate.extensions');
  if (extensionsField !== undefined && version !== 2) {
    malformed('tbsCertificate.extensions', `only allowed in version 3, this is version ${version + 1}`);
  }
  tbs.finish('tbsCertificate');

  const subjectCommonNames: string[] = [];
  const subject = formatName(subjectDer, 'tbsCertificate.subject', subjectCommonNames);
  const issuer = formatName(issuerDer, 'tbsCertificate.issuer');
  const extensions = newExtensionFields();
  if (extensionsField !== undefined) {
    const list = extensionsField.read(Tag.SEQUENCE, 'tbsCertificate.extensions');
    extensionsField.finish('tbsCertificate.extensions');
    if (list.done) malformed('tbsCertificate.extensions', 'empty extension list');
    readExtensions(list, 'tbsCertificate.extensions', extensions, readCertificateExtension);
  }

  // One literal with every field (no spread): V8 keeps a single shape for all certificates.
  return Object.freeze({
    der: buf,
    subject,
    subjectDer,
    subjectCommonNames: Object.freeze(subjectCommonNames),
    issuer,
    issuerDer,
    serialNumber,
    notBefore,
    notAfter,
    fingerprint256: fingerprint(buf),
    uris: extensions.uris,
    dnsNames: extensions.dnsNames,
    ipAddresses: extensions.ipAddresses,
    emails: extensions.emails,
    isCa: extensions.isCa,
    pathLength: extensions.pathLength,
    keyUsage: extensions.keyUsage,
    keyUsageCritical: extensions.keyUsageCritical,
    extKeyUsage: extensions.extKeyUsage,
    subjectAltNameCritical: extensions.subjectAltNameCritical,
    unhandledCriticalExtensions: extensions.unhandledCritical === undefined ? EMPTY : Object.freeze(extensions.unhandledCritical),
    selfIssued: subjectDer.equals(issuerDer),
  });
}

/**
 * Splits PEM text into its CERTIFICATE blocks and parses each. Throws {@link CertificateParseError}
 * when there is no CERTIFICATE block or a block does not parse.
 */
export function parseCertificatesPem(pem: string): CertificateInfo[] {
  if (typeof pem !== 'string') throw new CertificateParseError('certificate PEM must be a string');
  const certificates: CertificateInfo[] = [];
  let from = 0;
  for (;;) {
    const begin = pem.indexOf(PEM_BEGIN, from);
    if (begin === -1) break;
    const number = certificates.length + 1;
    const bodyStart = begin + PEM_BEGIN.length;
    const end = pem.indexOf(PEM_END, bodyStart);
    if (end === -1) throw new CertificateParseError(`PEM certificate #${number} has no "${PEM_END}" line`);
    const body = pem.slice(bodyStart, end).replace(PEM_WHITESPACE, '');
    if (body.length === 0 || body.length % 4 !== 0 || !BASE64.test(body)) {
      throw new CertificateParseError(`PEM certificate #${number} is not valid base64`);
    }
    try {
      certificates.push(parseCertificateDer(Buffer.from(body, 'base64')));
    } catch (err) {
      if (!(err instanceof CertificateParseError)) throw err;
      throw new CertificateParseError(`PEM certificate #${number}: ${err.message}`, { cause: err });
    }
    from = end + PEM_END.length;
  }
  if (certificates.length === 0) throw new CertificateParseError(`no "${PEM_BEGIN}" block found`);
  return certificates;
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';
const PEM_WHITESPACE = /[\t\n\v\f\r ]+/g;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Reads the contents of an `Extensions` SEQUENCE (RFC 5280 §4.1, also used by CRLs and CRL entries) and hands each
 * extension to `visit`. Rejects an extension that appears twice (§4.2: two SAN extensions would make "the" SAN list
 * ambiguous). Throws {@link DerError}.
 */
export function readExtensions<State>(
  list: DerReader,
  what: string,
  state: State,
  visit: (state: State, id: string, critical: boolean, value: DerReader, at: string) => void,
): void {
  const seen = new Set<string>();
  while (!list.done) {
    const extension = list.read(Tag.SEQUENCE, what);
    const id = extension.read(Tag.OID, `${what}.extnID`).oid(`${what}.extnID`);
    const at = `extension ${id}`;
    if (seen.has(id)) malformed(at, 'appears more than once');
    seen.add(id);
    const criticalField = extension.readOptional(Tag.BOOLEAN, `${at}.critical`);
    const critical = criticalField !== undefined && criticalField.boolean(`${at}.critical`);
    const value = extension.read(Tag.OCTET_STRING, `${at}.extnValue`);
    extension.finish(at);
    visit(state, id, critical, value, at);
  }
}

/** What the extensions contribute, filled in as they are read; defaults are those of an absent extension. */
interface ExtensionFields {
  uris: readonly string[];
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  emails: readonly string[];
  isCa: boolean;
  pathLength: number | undefined;
  keyUsage: KeyUsageBits | undefined;
  keyUsageCritical: boolean;
  extKeyUsage: readonly string[] | undefined;
  subjectAltNameCritical: boolean;
  /** Appended to in place while reading (a copy per extension would cost time growing with their square). */
  unhandledCritical: string[] | undefined;
}

function newExtensionFields(): ExtensionFields {
  return {
    uris: EMPTY,
    dnsNames: EMPTY,
    ipAddresses: EMPTY,
    emails: EMPTY,
    isCa: false,
    pathLength: undefined,
    keyUsage: undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined,
    subjectAltNameCritical: false,
    unhandledCritical: undefined,
  };
}

function readCertificateExtension(result: ExtensionFields, id: string, critical: boolean, value: DerReader): void {
  switch (id) {
    case OID_SUBJECT_ALT_NAME:
      readSubjectAltName(value, result);
      result.subjectAltNameCritical = critical;
      break;
    case OID_BASIC_CONSTRAINTS:
      readBasicConstraints(value, result);
      break;
    case OID_KEY_USAGE:
      result.keyUsage = readKeyUsage(value);
      result.keyUsageCritical = critical;
      break;
    case OID_EXT_KEY_USAGE:
      result.extKeyUsage = readExtKeyUsage(value);
      break;
    default:
      if (critical) (result.unhandledCritical ??= []).push(id);
  }
}

function readSubjectAltName(value: DerReader, result: ExtensionFields): void {
  const what = 'subjectAltName';
  const names = value.read(Tag.SEQUENCE, what);
  value.finish(what);
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const emails: string[] = [];
  while (!names.done) {
    const name = names.readAny(what);
    switch (names.tag) {
      case SAN_URI:
        uris.push(name.ia5(`${what} uniformResourceIdentifier`));
        break;
      case SAN_DNS_NAME:
        dnsNames.push(name.ia5(`${what} dNSName`));
        break;
      case SAN_IP_ADDRESS:
        ipAddresses.push(formatIp(name, `${what} iPAddress`));
        break;
      case SAN_RFC822_NAME:
        emails.push(name.ia5(`${what} rfc822Name`));
        break;
      case SAN_OTHER_NAME:
      case SAN_X400_ADDRESS:
      case SAN_DIRECTORY_NAME:
      case SAN_EDI_PARTY_NAME:
      case SAN_REGISTERED_ID:
        break;
      default:
        malformed(what, `unknown GeneralName tag 0x${hex2(names.tag)}`);
    }
  }
  result.uris = Object.freeze(uris);
  result.dnsNames = Object.freeze(dnsNames);
  result.ipAddresses = Object.freeze(ipAddresses);
  result.emails = Object.freeze(emails);
}

function readBasicConstraints(value: DerReader, result: ExtensionFields): void {
  const what = 'basicConstraints';
  const constraints = value.read(Tag.SEQUENCE, what);
  value.finish(what);
  const cA = constraints.readOptional(Tag.BOOLEAN, `${what}.cA`);
  result.isCa = cA !== undefined && cA.boolean(`${what}.cA`);
  const pathLength = constraints.readOptional(Tag.INTEGER, `${what}.pathLenConstraint`);
  result.pathLength = pathLength?.smallUnsigned(`${what}.pathLenConstraint`);
  constraints.finish(what);
}

function readKeyUsage(value: DerReader): KeyUsageBits {
  const what = 'keyUsage';
  const bits = value.read(Tag.BIT_STRING, what).bitStringData(what);
  value.finish(what);
  const { buf, pos, end } = bits;
  const bit = (n: number): boolean => {
    const index = pos + (n >> 3);
    return index < end && (buf[index]! & (0x80 >> (n & 7))) !== 0;
  };
  return Object.freeze({
    digitalSignature: bit(0),
    nonRepudiation: bit(1),
    keyEncipherment: bit(2),
    dataEncipherment: bit(3),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
    encipherOnly: bit(7),
    decipherOnly: bit(8),
  });
}

function readExtKeyUsage(value: DerReader): readonly string[] {
  const what = 'extKeyUsage';
  const purposes = value.read(Tag.SEQUENCE, what);
  value.finish(what);
  const oids: string[] = [];
  while (!purposes.done) oids.push(purposes.read(Tag.OID, what).oid(what));
  if (oids.length === 0) malformed(what, 'empty list');
  return Object.freeze(oids);
}

/**
 * Reads the next element of `container` as a UTCTime or GeneralizedTime in the DER forms RFC 5280 §4.1.2.5 allows
 * (`YYMMDDHHMMSSZ` / `YYYYMMDDHHMMSSZ`; CRLs use the same profile, §5.1.2.4). Throws {@link DerError}.
 */
export function readTime(container: DerReader, what: string): Date {
  const time = container.readAny(what);
  const { buf, pos, end } = time;
  const digits = (at: number, count: number): number => {
    let n = 0;
    for (let i = pos + at; i < pos + at + count; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) malformed(what, 'time holds a non-digit');
      n = n * 10 + d;
    }
    return n;
  };
  let year: number;
  let at: number;
  if (container.tag === Tag.UTC_TIME) {
    if (end - pos !== 13) malformed(what, 'UTCTime must be YYMMDDHHMMSSZ');
    const yy = digits(0, 2);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    at = 2;
  } else if (container.tag === Tag.GENERALIZED_TIME) {
    if (end - pos !== 15) malformed(what, 'GeneralizedTime must be YYYYMMDDHHMMSSZ');
    year = digits(0, 4);
    at = 4;
  } else {
    malformed(what, `expected UTCTime or GeneralizedTime, found tag 0x${hex2(container.tag)}`);
  }
  if (buf[end - 1] !== 0x5a) malformed(what, 'time must end in Z (UTC)');
  const month = digits(at, 2);
  const day = digits(at + 2, 2);
  const hour = digits(at + 4, 2);
  const minute = digits(at + 6, 2);
  const second = digits(at + 8, 2);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (year < 100) date.setUTCFullYear(year); // Date.UTC maps years 0–99 to 1900–1999.
  if (month < 1 || month > 12 || day < 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    malformed(what, 'not a valid date and time');
  }
  return date;
}

/**
 * Reads the next element of `container` as a CertificateSerialNumber and returns it in the one format the package
 * uses ({@link CertificateInfo.serialNumber}): lower-case hex of the minimal two's-complement encoding, without the sign
 * byte of a positive number (at least one byte). Throws {@link DerError}.
 */
export function readSerialNumber(container: DerReader, what: string): string {
  const serial = container.read(Tag.INTEGER, what);
  serial.checkInteger(what);
  let { pos } = serial;
  while (pos < serial.end - 1 && serial.buf[pos] === 0) pos++;
  return serial.buf.toString('hex', pos, serial.end);
}

/** SHA-256 in Node's `fingerprint256` form: `AB:CD:…`. */
function fingerprint(der: Buffer): string {
  const digest = hash('sha256', der, 'hex').toUpperCase();
  let out = digest.slice(0, 2);
  for (let i = 2; i < digest.length; i += 2) out += `:${digest.slice(i, i + 2)}`;
  return out;
}

/** An iPAddress SAN as text: IPv4 dotted quad, IPv6 in RFC 5952 form. */
function formatIp(address: DerReader, what: string): string {
  const { buf, pos } = address;
  if (address.length === 4) return `${buf[pos]}.${buf[pos + 1]}.${buf[pos + 2]}.${buf[pos + 3]}`;
  if (address.length !== 16) malformed(what, `an IP address has 4 or 16 bytes, not ${address.length}`);

  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(pos + 2 * i));
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted quad.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${buf[pos + 12]}.${buf[pos + 13]}.${buf[pos + 14]}.${buf[pos + 15]}`;
  }
  // RFC 5952 §4.2: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hexGroups = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hexGroups.join(':');
  return `${hexGroups.slice(0, bestStart).join(':')}::${hexGroups.slice(bestStart + bestLength).join(':')}`;
}
