import { ProxyHeaderError } from '../errors/mtls.errors.js';

/*
 * RFC 9440 `Client-Cert` (an sf-binary Item: `:base64-DER:`) and `Client-Cert-Chain` (an sf-list of them, the issuer
 * of the previous one first), read strictly as RFC 8941 byte sequences. Parameters are refused: RFC 9440 defines none,
 * and a field that carries some was not written by the proxy this mode was configured for.
 */

/** Bounds on the RFC 9440 fields. */
export interface Rfc9440Limits {
  /** Most characters of each field. */
  readonly maxBytes: number;
  /** Most certificates in `Client-Cert-Chain`. */
  readonly maxChain: number;
}

/** Defaults: 64 KiB per field, 10 chain certificates. */
export const RFC9440_DEFAULT_LIMITS: Rfc9440Limits = Object.freeze({ maxBytes: 65_536, maxChain: 10 });

const COLON = 0x3a;
const COMMA = 0x2c;
// RFC 8941 §4.2.7: padding may be missing; characters outside the base64 alphabet may not appear.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

function malformed(field: string, message: string): ProxyHeaderError {
  return new ProxyHeaderError('ERR_MTLS_PROXY_HEADER_MALFORMED', `${field}: ${message}`);
}

function checkSize(field: string, value: string, limits: Rfc9440Limits): void {
  if (value.length > limits.maxBytes) {
    throw new ProxyHeaderError(
      'ERR_MTLS_PROXY_HEADER_TOO_LARGE',
      `${field}: ${value.length} bytes, more than the ${limits.maxBytes} allowed (option proxy.maxHeaderBytes)`,
    );
  }
}

/** Reads a byte sequence at `i`; returns its bytes and the index just past the closing colon. */
function byteSequence(field: string, value: string, i: number, what: string): [Buffer, number] {
  if (value.charCodeAt(i) !== COLON) throw malformed(field, `${what} at offset ${i} is not a byte sequence (:base64:)`);
  const close = value.indexOf(':', i + 1);
  if (close < 0) throw malformed(field, `${what} opened at offset ${i} is not closed by ":"`);
  const body = value.slice(i + 1, close);
  if (body.length === 0) throw malformed(field, `${what} at offset ${i} is empty`);
  if (!BASE64.test(body)) throw malformed(field, `${what} at offset ${i} is not base64`);
  return [Buffer.from(body, 'base64'), close + 1];
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** The DER of `Client-Cert`; throws {@link ProxyHeaderError} when the field is not exactly one byte sequence. */
export function parseClientCert(value: string, limits: Rfc9440Limits = RFC9440_DEFAULT_LIMITS): Buffer {
  checkSize('client-cert', value, limits);
  const [der, end] = byteSequence('client-cert', value, 0, 'the value');
  if (end !== value.length) {
    throw malformed('client-cert', `unexpected character at offset ${end} (parameters and lists are not accepted)`);
  }
  return der;
}

/** The DERs of `Client-Cert-Chain`, in field order; an empty field is an empty chain. */
export function parseClientCertChain(value: string, limits: Rfc9440Limits = RFC9440_DEFAULT_LIMITS): Buffer[] {
  checkSize('client-cert-chain', value, limits);
  const chain: Buffer[] = [];
  const n = value.length;
  if (n === 0) return chain;
  let i = 0;
  for (;;) {
    if (chain.length >= limits.maxChain) throw malformed('client-cert-chain', `more than ${limits.maxChain} certificates`);
    const [der, end] = byteSequence('client-cert-chain', value, i, `member ${chain.length + 1}`);
    chain.push(der);
    i = end;
    while (i < n && isOws(value.charCodeAt(i))) i++;
    if (i >= n) return chain;
    if (value.charCodeAt(i) !== COMMA) {
      throw malformed('client-cert-chain', `unexpected character at offset ${i} (parameters are not accepted)`);
    }
    i++;
    while (i < n && isOws(value.charCodeAt(i))) i++;
    if (i >= n) throw malformed('client-cert-chain', 'the list ends with ","');
  }
}
