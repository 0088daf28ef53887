import { isUtf8 } from 'node:buffer';
import { DerReader, Tag, hex2, malformed } from './der.js';

/*
 * Distinguished names as messages and rules show them: RFC 4514 text with its escapes, read from the DER, shared by
 * certificates (subject, issuer) and CRLs (issuer).
 */

const OID_COMMON_NAME = '2.5.4.3';

/** RFC 4514 §3 short names; every other attribute type is written as its dotted OID. */
const ATTRIBUTE_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.6', 'C'],
  ['2.5.4.9', 'STREET'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
]);

/**
 * Renders an encoded Name (the whole RDNSequence TLV, as in {@link CertificateInfo.subjectDer}) as RFC 4514 text, most
 * significant RDN last, for messages and logs. Collects every commonName value into `commonNames` when given.
 * Throws {@link DerError}.
 */
export function formatName(encoded: Buffer, what: string, commonNames?: string[]): string {
  const top = DerReader.of(encoded);
  const rdns = top.read(Tag.SEQUENCE, what);
  top.finish(what);
  const parts: string[] = [];
  while (!rdns.done) {
    const rdn = rdns.read(Tag.SET, what);
    if (rdn.done) malformed(what, 'empty RelativeDistinguishedName');
    let text = '';
    while (!rdn.done) {
      const attribute = rdn.read(Tag.SEQUENCE, what);
      const type = attribute.read(Tag.OID, `${what} attribute type`).oid(`${what} attribute type`);
      const value = readAttributeValue(attribute, `${what} ${type}`);
      attribute.finish(what);
      if (type === OID_COMMON_NAME) commonNames?.push(value.text);
      const escaped = value.isString ? escapeRdnValue(value.text) : value.text;
      text += `${text === '' ? '' : '+'}${ATTRIBUTE_NAMES.get(type) ?? type}=${escaped}`;
    }
    parts.push(text);
  }
  return parts.reverse().join(',');
}

/** A decoded attribute value: text for string types, else RFC 4514 `#hex` of its DER. */
function readAttributeValue(attribute: DerReader, what: string): { text: string; isString: boolean } {
  const start = attribute.pos;
  const value = attribute.readAny(what);
  const { buf, pos, end } = value;
  switch (attribute.tag) {
    case Tag.UTF8_STRING:
      if (!isUtf8(buf.subarray(pos, end))) malformed(what, 'invalid UTF-8');
      return { text: buf.toString('utf8', pos, end), isString: true };
    case Tag.PRINTABLE_STRING:
    case Tag.IA5_STRING:
    case Tag.NUMERIC_STRING:
      return { text: value.ia5(what), isString: true };
    case Tag.TELETEX_STRING:
      // T.61 in practice carries Latin-1; Go's crypto/x509 reads it the same way.
      return { text: buf.toString('latin1', pos, end), isString: true };
    case Tag.BMP_STRING: {
      if ((end - pos) % 2 !== 0) malformed(what, 'BMPString of odd length');
      return { text: Buffer.from(buf.subarray(pos, end)).swap16().toString('utf16le'), isString: true };
    }
    case Tag.UNIVERSAL_STRING: {
      if ((end - pos) % 4 !== 0) malformed(what, 'UniversalString length is not a multiple of 4');
      let text = '';
      for (let i = pos; i < end; i += 4) {
        const codePoint = buf.readUInt32BE(i);
        if (codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) malformed(what, 'invalid code point');
        text += String.fromCodePoint(codePoint);
      }
      return { text, isString: true };
    }
    default:
      return { text: `#${buf.toString('hex', start, end)}`, isString: false };
  }
}

/**
 * RFC 4514 §2.4 escaping, plus control characters as hex pairs so a hostile subject cannot forge log lines.
 */
function escapeRdnValue(value: string): string {
  let out = '';
  let copied = 0;
  const last = value.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i);
    let escaped: string | undefined;
    if (c === 0x22 || c === 0x2b || c === 0x2c || c === 0x3b || c === 0x3c || c === 0x3e || c === 0x5c) {
      escaped = `\\${value[i]}`;
    } else if (c < 0x20 || c === 0x7f) {
      escaped = `\\${hex2(c)}`;
    } else if (c >= 0x80 && c <= 0x9f) {
      escaped = `\\c2\\${hex2(c)}`;
    } else if ((c === 0x20 && (i === 0 || i === last)) || (c === 0x23 && i === 0)) {
      escaped = `\\${value[i]}`;
    }
    if (escaped !== undefined) {
      out += value.slice(copied, i) + escaped;
      copied = i + 1;
    }
  }
  return copied === 0 ? value : out + value.slice(copied);
}
