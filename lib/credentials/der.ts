/**
 * Just enough DER walking to slice raw fields out of certificates and CRLs. Names are compared as raw bytes,
 * as Go's crypto/x509 does for chain building: issuers copy their subject verbatim, and byte equality cannot be
 * fooled by a lenient string rendering.
 */

/** One DER element: its tag and the offsets of its header, content and end. */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const CONTEXT_0_CONSTRUCTED = 0xa0;

/** Reads the element at `offset`, or undefined when the bytes are not well-formed definite-length DER. */
export function readDerElement(data: Uint8Array, offset: number, limit = data.length): DerElement | undefined {
  if (offset + 2 > limit) return undefined;
  const tag = data[offset]!;
  // High-tag-number form never occurs in the X.509 fields read here.
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = data[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const octets = first & 0x7f;
    if (octets === 0 || octets > 4 || offset + 2 + octets > limit) return undefined;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + data[offset + 2 + i]!;
    contentStart = offset + 2 + octets;
  }
  const end = contentStart + length;
  if (end > limit) return undefined;
  return { tag, start: offset, contentStart, end };
}

/** The children of a constructed element, or undefined when one of them is malformed. */
function children(data: Uint8Array, parent: DerElement): DerElement[] | undefined {
  const result: DerElement[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readDerElement(data, offset, parent.end);
    if (child === undefined) return undefined;
    result.push(child);
    offset = child.end;
  }
  return result;
}

function slice(data: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(data.buffer, data.byteOffset + element.start, element.end - element.start);
}

/** The encoded issuer and subject Names of a certificate. */
export interface CertificateNames {
  readonly issuer: Buffer;
  readonly subject: Buffer;
}

/** Slices issuer and subject out of a certificate's DER; undefined when it is not shaped like a certificate. */
export function certificateNames(der: Uint8Array): CertificateNames | undefined {
  const certificate = readDerElement(der, 0);
  if (certificate?.tag !== SEQUENCE) return undefined;
  const tbs = readDerElement(der, certificate.contentStart, certificate.end);
  if (tbs?.tag !== SEQUENCE) return undefined;
  const fields = children(der, tbs);
  if (fields === undefined) return undefined;
  // version [0] is optional (v1 certificates omit it); then serial, signature, issuer, validity, subject.
  const first = fields[0]?.tag === CONTEXT_0_CONSTRUCTED ? 1 : 0;
  const issuer = fields[first + 2];
  const subject = fields[first + 4];
  if (issuer?.tag !== SEQUENCE || subject?.tag !== SEQUENCE) return undefined;
  return { issuer: slice(der, issuer), subject: slice(der, subject) };
}

/** Slices the issuer Name out of a CRL's TBSCertList DER; undefined when it is not shaped like one. */
export function crlIssuerName(tbsCertList: Uint8Array): Buffer | undefined {
  const tbs = readDerElement(tbsCertList, 0);
  if (tbs?.tag !== SEQUENCE) return undefined;
  const fields = children(tbsCertList, tbs);
  if (fields === undefined) return undefined;
  // version is an optional plain INTEGER here (not [0] as in certificates); then signature, issuer.
  const first = fields[0]?.tag === INTEGER ? 1 : 0;
  const issuer = fields[first + 1];
  return issuer?.tag === SEQUENCE ? slice(tbsCertList, issuer) : undefined;
}
