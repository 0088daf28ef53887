import { verify as verifySignature } from 'node:crypto';
import { contextConstructed, contextPrimitive, DerError, DerReader, malformed, Tag } from './der.js';
import { readExtensions, readSerialNumber, readTime } from './certificate.js';
import { formatName } from './names.js';
import type { CertificateInfo } from './certificate.js';
import { certificateLabel, nodeCertificate } from './certificate-checks.js';
import { decodePemBlock, findPemBlocks } from './pem.js';

/*
 * X.509 CRLs (RFC 5280 §5) read with the same strict DER reader and field readers as certificates, so issuer text,
 * times and serial numbers have one format across the package. Every CRL is checked as the complete list of its
 * issuer's revocations, as Node's `crl` option is used here: a CRL that is only part of that list (delta, partitioned,
 * indirect) or that carries a critical extension this code does not understand is refused, never half-used.
 */

/** A parsed X.509 CRL (RFC 5280 §5): what revocation checks need, nothing more. */
export interface RevocationList {
  /** The CRL's DER. */
  readonly der: Buffer;
  /** Issuer as RFC 4514 text (for messages only). */
  readonly issuer: string;
  /** The issuer Name exactly as encoded, compared byte for byte with a CA's {@link CertificateInfo.subjectDer}. */
  readonly issuerDer: Buffer;
  /** When this CRL was issued. */
  readonly thisUpdate: Date;
  /** Absent in a CRL that never expires (RFC 5280 requires it; OpenSSL tolerates its absence). */
  readonly nextUpdate: Date | undefined;
  /** The cRLNumber extension (RFC 5280 §5.2.3), which increases with every CRL of the issuer; absent in v1 CRLs. */
  readonly crlNumber: bigint | undefined;
  /** The authorityKeyIdentifier's keyIdentifier as lower-case hex, telling apart CAs that share a name. */
  readonly authorityKeyId: string | undefined;
  /** Revoked serial numbers, in the format of {@link CertificateInfo.serialNumber}. */
  readonly revokedSerials: ReadonlySet<string>;
  /** The signed TBSCertList bytes. */
  readonly tbs: Buffer;
  /** The signature over {@link tbs}. */
  readonly signature: Buffer;
  /** Hash for `crypto.verify`: `null` for EdDSA. */
  readonly hash: string | null;
}

/** Why {@link parseCrl} refused a CRL. */
export interface CrlRefusal {
  readonly ok: false;
  /** `malformed`: not a DER X.509 CRL. `unsupported`: well formed, but not one this package relies on. */
  readonly kind: 'malformed' | 'unsupported';
  readonly reason: string;
  /** What to configure instead. */
  readonly fix: string;
  /** The CRL's issuer as RFC 4514 text, when the CRL was well formed enough to read it. */
  readonly issuer: string | undefined;
}

/** Result of {@link parseCrl}. */
export type CrlParseResult = { readonly ok: true; readonly crl: RevocationList } | CrlRefusal;

/** Signature algorithms accepted on CRLs (OID → digest for `crypto.verify`). SHA-1 and RSASSA-PSS are refused. */
const SIGNATURE_HASHES: ReadonlyMap<string, string | null> = new Map([
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.3.101.112', null],
  ['1.3.101.113', null],
]);

const OID_CRL_NUMBER = '2.5.29.20';
const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const OID_DELTA_CRL_INDICATOR = '2.5.29.27';
const OID_ISSUING_DISTRIBUTION_POINT = '2.5.29.28';
const OID_CERTIFICATE_ISSUER = '2.5.29.29';

/** CRL extensions (RFC 5280 §5.2) that do not change which certificates the CRL covers. */
const NEUTRAL_CRL_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.18', // issuerAltName
  '2.5.29.20', // cRLNumber
  '2.5.29.46', // freshestCRL: where delta CRLs are, which are not used
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
]);

/** CRL entry extensions (RFC 5280 §5.3) that do not change what the entry revokes. */
const NEUTRAL_ENTRY_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.5.29.21', // reasonCode
  '2.5.29.23', // holdInstructionCode
  '2.5.29.24', // invalidityDate
]);

const REFETCH_FIX = 'fetch the CRL again from its CA';
const COMPLETE_CRL_FIX =
  "configure the CA's complete CRL, the one that lists every certificate it revoked (no deltaCRLIndicator, issuingDistributionPoint or certificateIssuer)";

/** What the extensions contribute, and the problems found while reading (reported once the structure is known to be well formed). */
interface ExtensionScan {
  unsupported: string | undefined;
  crlNumber: bigint | undefined;
  authorityKeyId: string | undefined;
}

/**
 * Parses one CRL's DER. Never throws: a malformed CRL, and a well-formed one this package will not rely on, yield
 * `{ ok: false, kind, reason, fix }`.
 */
export function parseCrl(der: Uint8Array): CrlParseResult {
  if (!(der instanceof Uint8Array)) {
    return refusal('malformed', 'CRL DER must be a Buffer or Uint8Array', REFETCH_FIX);
  }
  // A private copy: the result keeps views into it.
  const buf = Buffer.from(der);
  try {
    return readCertificateList(buf);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    return refusal('malformed', `not a DER-encoded X.509 CRL: ${error.message}`, REFETCH_FIX);
  }
}

function readCertificateList(buf: Buffer): CrlParseResult {
  const top = DerReader.of(buf);
  const list = top.read(Tag.SEQUENCE, 'CertificateList');
  top.finish('CertificateList');
  const tbsDer = list.readEncoded(Tag.SEQUENCE, 'tbsCertList');
  const outerAlgorithm = list.readEncoded(Tag.SEQUENCE, 'signatureAlgorithm');
  const signature = list.read(Tag.BIT_STRING, 'signatureValue').octetAlignedBitString('signatureValue');
  list.finish('CertificateList');

  const tbs = DerReader.of(tbsDer).read(Tag.SEQUENCE, 'tbsCertList');
  // RFC 5280 §5.1.2.1: v1 CRLs omit the version; when present it is v2 (1), the only version with extensions.
  const versionField = tbs.readOptional(Tag.INTEGER, 'tbsCertList.version');
  const v2 = versionField !== undefined;
  if (v2 && versionField.smallUnsigned('tbsCertList.version') !== 1)
    malformed('tbsCertList.version', 'must be v2 (1) when present');
  const innerAlgorithm = tbs.readEncoded(Tag.SEQUENCE, 'tbsCertList.signature');
  const issuerDer = tbs.readEncoded(Tag.SEQUENCE, 'tbsCertList.issuer');
  const thisUpdate = readTime(tbs, 'tbsCertList.thisUpdate');
  const next = tbs.peekTag();
  const nextUpdate = next === Tag.UTC_TIME || next === Tag.GENERALIZED_TIME ? readTime(tbs, 'tbsCertList.nextUpdate') : undefined;

  const scan: ExtensionScan = { unsupported: undefined, crlNumber: undefined, authorityKeyId: undefined };
  const revokedSerials = new Set<string>();
  const entries = tbs.readOptional(Tag.SEQUENCE, 'tbsCertList.revokedCertificates');
  for (let n = 1; entries !== undefined && !entries.done; n++) {
    const what = `tbsCertList.revokedCertificates #${n}`;
    const entry = entries.read(Tag.SEQUENCE, what);
    const serial = readSerialNumber(entry, `${what}.userCertificate`);
    readTime(entry, `${what}.revocationDate`);
    if (!entry.done) {
      if (!v2) malformed(`${what}.crlEntryExtensions`, 'only allowed in a v2 CRL');
      // An empty list breaks SIZE (1..MAX), but common generators write one and OpenSSL accepts it.
      readExtensions(
        entry.read(Tag.SEQUENCE, `${what}.crlEntryExtensions`),
        `${what}.crlEntryExtensions`,
        scan,
        checkEntryExtension,
      );
    }
    entry.finish(what);
    revokedSerials.add(serial);
  }
  const extensions = tbs.readOptional(contextConstructed(0), 'tbsCertList.crlExtensions');
  if (extensions !== undefined) {
    if (!v2) malformed('tbsCertList.crlExtensions', 'only allowed in a v2 CRL');
    readExtensions(
      extensions.read(Tag.SEQUENCE, 'tbsCertList.crlExtensions'),
      'tbsCertList.crlExtensions',
      scan,
      checkCrlExtension,
    );
    extensions.finish('tbsCertList.crlExtensions');
  }
  tbs.finish('tbsCertList');
  const issuer = formatName(issuerDer, 'tbsCertList.issuer');

  // RFC 5280 §5.1.1.2: the signed and unsigned algorithm identifiers must be the same.
  if (!innerAlgorithm.equals(outerAlgorithm)) {
    return refusal('malformed', 'signatureAlgorithm differs from the signature field of tbsCertList', REFETCH_FIX, issuer);
  }
  const algorithm = DerReader.of(outerAlgorithm)
    .read(Tag.SEQUENCE, 'signatureAlgorithm')
    .read(Tag.OID, 'signatureAlgorithm.algorithm')
    .oid('signatureAlgorithm.algorithm');
  const hash = SIGNATURE_HASHES.get(algorithm);
  if (hash === undefined) {
    return refusal(
      'unsupported',
      `signature algorithm ${algorithm} is not accepted (use ECDSA, Ed25519 or RSA PKCS#1 v1.5 with SHA-256 or stronger)`,
      'have the CA sign its CRLs with one of those algorithms',
      issuer,
    );
  }
  if (scan.unsupported !== undefined) return refusal('unsupported', scan.unsupported, COMPLETE_CRL_FIX, issuer);
  return {
    ok: true,
    crl: {
      der: buf,
      issuer,
      issuerDer,
      thisUpdate,
      nextUpdate,
      crlNumber: scan.crlNumber,
      authorityKeyId: scan.authorityKeyId,
      revokedSerials,
      tbs: tbsDer,
      signature,
      hash,
    },
  };
}

function refusal(kind: CrlRefusal['kind'], reason: string, fix: string, issuer?: string): CrlRefusal {
  return { ok: false, kind, reason, fix, issuer };
}

function checkCrlExtension(scan: ExtensionScan, id: string, critical: boolean, value: DerReader, at: string): void {
  // Read even after a problem: a malformed value makes the CRL malformed, which outranks unsupported.
  if (id === OID_CRL_NUMBER) scan.crlNumber = readCrlNumber(value, at);
  if (id === OID_AUTHORITY_KEY_IDENTIFIER) scan.authorityKeyId = readAuthorityKeyId(value, at);
  if (scan.unsupported !== undefined || NEUTRAL_CRL_EXTENSIONS.has(id)) return;
  if (id === OID_DELTA_CRL_INDICATOR) {
    scan.unsupported =
      'it is a delta CRL (deltaCRLIndicator), which lists only the changes since a base CRL; only complete CRLs are supported';
  } else if (id === OID_ISSUING_DISTRIBUTION_POINT) {
    scan.unsupported =
      'it has an issuingDistributionPoint extension, so it may cover only some certificates of its CA (a partitioned CRL); only complete CRLs are supported';
  } else if (critical) {
    // RFC 5280 §5.2: a CRL with a critical extension that cannot be processed must not be used.
    scan.unsupported = `it has critical extension ${id}, which is not understood (RFC 5280 §5.2: such a CRL must not be used)`;
  }
}

/** cRLNumber ::= INTEGER (0..MAX), at most 20 octets (RFC 5280 §5.2.3). */
function readCrlNumber(value: DerReader, at: string): bigint {
  const what = `${at} (cRLNumber)`;
  const number = value.read(Tag.INTEGER, what);
  value.finish(what);
  number.checkInteger(what);
  if (number.buf[number.pos]! & 0x80) malformed(what, 'must not be negative');
  // RFC 5280 §5.2.3: at most 20 octets (a leading zero octet only keeps the sign); this also bounds the BigInt.
  if (number.length - (number.buf[number.pos] === 0 ? 1 : 0) > 20) malformed(what, 'longer than 20 octets (RFC 5280 §5.2.3)');
  return BigInt(`0x${number.bytes().toString('hex')}`);
}

/** AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, [1] …, [2] … }. */
function readAuthorityKeyId(value: DerReader, at: string): string | undefined {
  const what = `${at} (authorityKeyIdentifier)`;
  const sequence = value.read(Tag.SEQUENCE, what);
  value.finish(what);
  const keyId = sequence.readOptional(contextPrimitive(0), `${what}.keyIdentifier`);
  sequence.readOptional(contextConstructed(1), `${what}.authorityCertIssuer`);
  sequence.readOptional(contextPrimitive(2), `${what}.authorityCertSerialNumber`);
  sequence.finish(what);
  return keyId === undefined ? undefined : keyId.bytes().toString('hex');
}

function checkEntryExtension(scan: ExtensionScan, id: string, critical: boolean): void {
  if (scan.unsupported !== undefined || NEUTRAL_ENTRY_EXTENSIONS.has(id)) return;
  if (id === OID_CERTIFICATE_ISSUER) {
    scan.unsupported =
      'it is an indirect CRL (certificateIssuer entry extension), which lists certificates of other issuers; only complete CRLs of one CA are supported';
  } else if (critical) {
    scan.unsupported = `an entry has critical extension ${id}, which is not understood (RFC 5280 §5.3: such a CRL must not be used)`;
  }
}

/** Parses the first `X509 CRL` block of a PEM string (each entry of `Credentials.crlPems` holds exactly one). */
export function parseCrlPem(pem: string): CrlParseResult {
  const data = Buffer.from(pem, 'utf8');
  const scan = findPemBlocks(data);
  const block = scan.ok ? scan.blocks.find((b) => b.label === 'X509 CRL') : undefined;
  const der = block === undefined ? undefined : decodePemBlock(data, block);
  return der === undefined ? refusal('malformed', 'not a PEM "X509 CRL" block', REFETCH_FIX) : parseCrl(der);
}

/** Why `ca` cannot be the issuer of `crl`, or undefined when it is (name, cRLSign key usage, signature). */
export function crlIssuerMismatch(crl: RevocationList, ca: CertificateInfo): string | undefined {
  if (!crl.issuerDer.equals(ca.subjectDer)) {
    return `issued by "${crl.issuer}", not by ${certificateLabel(ca)}`;
  }
  if (ca.keyUsage !== undefined && !ca.keyUsage.cRLSign) {
    return `${certificateLabel(ca)} lacks the cRLSign key usage`;
  }
  if (!crlSignatureVerifies(crl, ca)) {
    return `signature does not verify with the key of ${certificateLabel(ca)}`;
  }
  return undefined;
}

const crlSignatures = new WeakMap<RevocationList, WeakMap<CertificateInfo, boolean>>();

function crlSignatureVerifies(crl: RevocationList, ca: CertificateInfo): boolean {
  let byCa = crlSignatures.get(crl);
  if (byCa === undefined) {
    byCa = new WeakMap();
    crlSignatures.set(crl, byCa);
  }
  let verified = byCa.get(ca);
  if (verified === undefined) {
    try {
      verified = verifySignature(crl.hash, crl.tbs, nodeCertificate(ca).publicKey, crl.signature);
    } catch {
      // Key type and signature algorithm disagree (e.g. an RSA signature checked with an EC key).
      verified = false;
    }
    byCa.set(ca, verified);
  }
  return verified;
}

/** True when `crl` lists the certificate's serial number. */
export function isRevokedBy(crl: RevocationList, certificate: CertificateInfo): boolean {
  return crl.revokedSerials.has(certificate.serialNumber);
}
