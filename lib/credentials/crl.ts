import { verify as verifySignature } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import type { Name } from '@peculiar/asn1-x509';
import type { CertificateInfo } from '../identity/certificate.js';
import { certificateLabel, nodeCertificate, normalizeSerial, rawNames } from './certificate-cache.js';
import type { Credentials } from './credentials.interfaces.js';
import { crlIssuerName } from './der.js';
import { decodePemBlock, findPemBlocks } from './pem.js';

/** A parsed X.509 CRL (RFC 5280 §5): what revocation checks need, nothing more. */
export interface RevocationList {
  /** The CRL's DER. */
  readonly der: Buffer;
  /** Issuer as RFC 4514 text (for messages only). */
  readonly issuer: string;
  /** The encoded issuer Name, compared byte for byte with a CA's subject. */
  readonly issuerName: Buffer;
  readonly thisUpdate: Date;
  /** Absent in a CRL that never expires (RFC 5280 requires it; OpenSSL tolerates its absence). */
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers, normalised like {@link CertificateInfo.serialNumber}. */
  readonly revokedSerials: ReadonlySet<string>;
  /** The signed TBSCertList bytes and the signature over them. */
  readonly tbs: Buffer;
  readonly signature: Buffer;
  /** Hash for `crypto.verify`: `null` for EdDSA. */
  readonly hash: string | null;
}

/** Result of {@link parseCrl}. */
export type CrlParseResult = { readonly ok: true; readonly crl: RevocationList } | { readonly ok: false; readonly reason: string };

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

const ATTRIBUTE_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
]);

/** Parses one CRL's DER. Never throws: a malformed or unsupported CRL yields `{ ok: false, reason }`. */
export function parseCrl(der: Uint8Array): CrlParseResult {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch {
    return { ok: false, reason: 'not a DER-encoded X.509 CRL' };
  }
  const tbsRaw = list.tbsCertListRaw;
  const issuerName = tbsRaw === undefined ? undefined : crlIssuerName(new Uint8Array(tbsRaw));
  if (tbsRaw === undefined || issuerName === undefined) {
    return { ok: false, reason: 'not a DER-encoded X.509 CRL' };
  }
  const algorithm = list.signatureAlgorithm.algorithm;
  if (list.tbsCertList.signature.algorithm !== algorithm) {
    // RFC 5280 §5.1.1.2: the signed and unsigned algorithm fields must agree.
    return { ok: false, reason: 'signatureAlgorithm differs from the signature field of tbsCertList' };
  }
  const hash = SIGNATURE_HASHES.get(algorithm);
  if (hash === undefined) {
    return {
      ok: false,
      reason: `signature algorithm ${algorithm} is not accepted (use ECDSA, Ed25519 or RSA PKCS#1 v1.5 with SHA-256 or stronger)`,
    };
  }
  const tbs = list.tbsCertList;
  const revokedSerials = new Set(
    (tbs.revokedCertificates ?? []).map((entry) => normalizeSerial(Buffer.from(entry.userCertificate).toString('hex'))),
  );
  return {
    ok: true,
    crl: {
      der: Buffer.from(der),
      issuer: formatName(tbs.issuer),
      issuerName,
      thisUpdate: tbs.thisUpdate.getTime(),
      nextUpdate: tbs.nextUpdate?.getTime(),
      revokedSerials,
      tbs: Buffer.from(tbsRaw),
      signature: Buffer.from(list.signature),
      hash,
    },
  };
}

/** Parses the first `X509 CRL` block of a PEM string (each entry of `Credentials.crlPems` holds exactly one). */
export function parseCrlPem(pem: string): CrlParseResult {
  const data = Buffer.from(pem, 'utf8');
  const scan = findPemBlocks(data);
  const block = scan.ok ? scan.blocks.find((b) => b.label === 'X509 CRL') : undefined;
  const der = block === undefined ? undefined : decodePemBlock(data, block);
  return der === undefined ? { ok: false, reason: 'not a PEM "X509 CRL" block' } : parseCrl(der);
}

const byCredentials = new WeakMap<Credentials, readonly RevocationList[]>();

/** The parsed CRLs of a validated set, parsed once per set (validation hands over the lists it already parsed). */
export function revocationListsOf(credentials: Credentials): readonly RevocationList[] {
  let lists = byCredentials.get(credentials);
  if (lists === undefined) {
    lists = Object.freeze(
      credentials.crlPems.flatMap((pem) => {
        const parsed = parseCrlPem(pem);
        return parsed.ok ? [parsed.crl] : [];
      }),
    );
    byCredentials.set(credentials, lists);
  }
  return lists;
}

/** Records the CRLs validation parsed for `credentials`, so {@link revocationListsOf} does not parse them again. */
export function rememberRevocationLists(credentials: Credentials, lists: readonly RevocationList[]): void {
  byCredentials.set(credentials, Object.freeze([...lists]));
}

/** True when the CRL's issuer Name is `ca`'s subject, byte for byte. */
export function crlNamesIssuer(crl: RevocationList, ca: CertificateInfo): boolean {
  return rawNames(ca)?.subject.equals(crl.issuerName) === true;
}

/** Why `ca` cannot be the issuer of `crl`, or undefined when it is (name, cRLSign key usage, signature). */
export function crlIssuerMismatch(crl: RevocationList, ca: CertificateInfo): string | undefined {
  if (!crlNamesIssuer(crl, ca)) {
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
  return crl.revokedSerials.has(normalizeSerial(certificate.serialNumber));
}

/** RFC 4514 rendering (most specific RDN first) for messages; values are escaped, never interpreted. */
function formatName(name: Name): string {
  const rdns: string[] = [];
  for (const rdn of name) {
    const attributes: string[] = [];
    for (const attribute of rdn) {
      const type = ATTRIBUTE_NAMES.get(attribute.type) ?? attribute.type;
      attributes.push(`${type}=${escapeValue(attribute.value.toString())}`);
    }
    rdns.push(attributes.join('+'));
  }
  return rdns.reverse().join(',');
}

function escapeValue(value: string): string {
  return value
    .replace(/[\\"+,;<>=]/g, (c) => `\\${c}`)
    .replace(/^[ #]|[ ]$/g, (c) => `\\${c}`)
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
