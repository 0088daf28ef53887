import { describe, expect, it } from 'vitest';
import { ProxyHeaderError } from '../../lib/errors/mtls.errors.js';
import { parseClientCert, parseClientCertChain } from '../../lib/proxy/rfc9440.parser.js';

const A = Buffer.from('certificate A');
const B = Buffer.from('certificate B!');
const a = A.toString('base64');
const b = B.toString('base64');

function failure(parse: () => unknown): { code: string; message: string } {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(ProxyHeaderError);
    return { code: (error as ProxyHeaderError).code, message: (error as ProxyHeaderError).message };
  }
  throw new Error('accepted');
}

describe('parseClientCert (RFC 9440 §2.2: one sf-binary item)', () => {
  it.each([
    ['padded', `:${a}:`, A],
    ['unpadded (RFC 8941 §4.2.7: parsers accept it)', `:${a.replace(/=+$/, '')}:`, A],
  ])('reads %s base64', (_name, value, expected) => {
    expect(parseClientCert(value)).toEqual(expected);
  });

  it.each([
    ['no colons', a, /not a byte sequence/],
    ['unclosed', `:${a}`, /not closed/],
    ['empty', '::', /is empty/],
    ['base64url alphabet', ':ab-_:', /not base64/],
    ['a space inside', `:${a.slice(0, 4)} ${a.slice(4)}:`, /not base64/],
    ['padding in the middle', ':QQ==QQ==:', /not base64/],
    ['a parameter', `:${a}:;x=1`, /parameters and lists are not accepted/],
    ['a list', `:${a}:, :${b}:`, /parameters and lists are not accepted/],
    ['a string item', `"${a}"`, /not a byte sequence/],
  ])('refuses %s', (_name, value, message) => {
    const error = failure(() => parseClientCert(value));
    expect(error.code).toBe('ERR_MTLS_PROXY_HEADER_MALFORMED');
    expect(error.message).toMatch(message);
  });

  it('refuses a field over the bound', () => {
    const error = failure(() => parseClientCert(`:${'A'.repeat(70_000)}:`));
    expect(error).toEqual({
      code: 'ERR_MTLS_PROXY_HEADER_TOO_LARGE',
      message: 'client-cert: 70002 bytes, more than the 65536 allowed (option proxy.maxHeaderBytes)',
    });
  });
});

describe('parseClientCertChain (RFC 9440 §2.3: an sf-list of them)', () => {
  it.each([
    ['one member', `:${a}:`, [A]],
    ['two members with OWS', `:${a}: ,\t:${b}:`, [A, B]],
    ['two members without OWS', `:${a}:,:${b}:`, [A, B]],
    ['an empty field', '', []],
  ])('reads %s', (_name, value, expected) => {
    expect(parseClientCertChain(value)).toEqual(expected);
  });

  it.each([
    ['a trailing comma', `:${a}:,`, /ends with ","/],
    ['an empty member', `:${a}:,,:${b}:`, /member 2 at offset \d+ is not a byte sequence/],
    ['a parameter on a member', `:${a}:;p=1`, /parameters are not accepted/],
    ['a token member', `:${a}:, abc`, /member 2 at offset \d+ is not a byte sequence/],
  ])('refuses %s', (_name, value, message) => {
    const error = failure(() => parseClientCertChain(value));
    expect(error.code).toBe('ERR_MTLS_PROXY_HEADER_MALFORMED');
    expect(error.message).toMatch(message);
  });

  it('refuses a chain longer than 10', () => {
    const value = Array.from({ length: 11 }, () => `:${a}:`).join(', ');
    expect(failure(() => parseClientCertChain(value))).toEqual({
      code: 'ERR_MTLS_PROXY_HEADER_MALFORMED',
      message: 'client-cert-chain: more than 10 certificates',
    });
    expect(parseClientCertChain(Array.from({ length: 10 }, () => `:${a}:`).join(', '))).toHaveLength(10);
  });
});
