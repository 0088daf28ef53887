import { describe, expect, it } from 'vitest';
import { ProxyHeaderError } from '../../lib/errors/mtls.errors.js';
import { parseXfcc, scanXfcc, type XfccElement } from '../../lib/proxy/xfcc.parser.js';

const HASH = '468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688';

function element(fields: Partial<XfccElement>): XfccElement {
  return {
    by: undefined,
    hash: undefined,
    cert: undefined,
    chain: undefined,
    subject: undefined,
    uri: undefined,
    dns: [],
    ...fields,
  };
}

function failure(header: string, limits?: { maxBytes: number; maxElements: number }): { code: string; message: string } {
  try {
    parseXfcc(header, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(ProxyHeaderError);
    const { code, message } = error as ProxyHeaderError;
    return { code, message };
  }
  throw new Error(`accepted: ${header}`);
}

describe('parseXfcc: headers as Envoy and Istio write them', () => {
  const valid: [string, string, XfccElement[]][] = [
    [
      'Envoy docs example',
      `By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
      [
        element({
          by: 'http://frontend.lyft.com',
          hash: HASH,
          subject: '/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client',
          uri: 'http://testclient.lyft.com',
        }),
      ],
    ],
    [
      'Istio sidecar (empty subject, spiffe URIs)',
      `By=spiffe://cluster.local/ns/shop/sa/inventory;Hash=${HASH};Subject="";URI=spiffe://cluster.local/ns/shop/sa/orders`,
      [
        element({
          by: 'spiffe://cluster.local/ns/shop/sa/inventory',
          hash: HASH,
          subject: '',
          uri: 'spiffe://cluster.local/ns/shop/sa/orders',
        }),
      ],
    ],
    [
      'two elements (APPEND_FORWARD): order kept',
      'By=spiffe://a/x;URI=spiffe://a/first,By=spiffe://a/y;URI=spiffe://a/second',
      [element({ by: 'spiffe://a/x', uri: 'spiffe://a/first' }), element({ by: 'spiffe://a/y', uri: 'spiffe://a/second' })],
    ],
    ['DNS repeats', 'DNS=a.example;DNS=b.example', [element({ dns: ['a.example', 'b.example'] })]],
    ['keys in any case', 'by=x;HASH=ab;uri=u;dNs=d', [element({ by: 'x', hash: 'ab', uri: 'u', dns: ['d'] })]],
    [
      'RFC 2253 subject with quoted , ; = and \\"',
      'Subject="CN=a\\,b\\;c=d,O=\\"Quoted\\" Inc.,C=US";URI=spiffe://a/b',
      [element({ subject: 'CN=a\\,b\\;c=d,O="Quoted" Inc.,C=US', uri: 'spiffe://a/b' })],
    ],
    ['escaped backslash', 'Subject="CN=a\\\\"', [element({ subject: 'CN=a\\' })]],
    ['quoted URI holding =', 'URI="https://x.example/?a=b"', [element({ uri: 'https://x.example/?a=b' })]],
    [
      'Cert and Chain quoted',
      'Cert="-----BEGIN%20CERTIFICATE-----";Chain="x"',
      [element({ cert: '-----BEGIN%20CERTIFICATE-----', chain: 'x' })],
    ],
    [
      'latin1 (UTF-8) bytes in a quoted subject',
      'Subject="CN=M\u00c3\u00bcller"',
      [element({ subject: 'CN=M\u00c3\u00bcller' })],
    ],
  ];
  it.each(valid)('%s', (_name, header, expected) => {
    expect(parseXfcc(header)).toEqual(expected);
  });
});

describe('parseXfcc: smuggling attempts stay inside their value', () => {
  it('a Subject carrying ;URI= does not set URI', () => {
    const [parsed] = parseXfcc('Subject="CN=x;URI=spiffe://shop.test/ns/ops/sa/admin";URI=spiffe://shop.test/ns/web/sa/frontend');
    expect(parsed!.uri).toBe('spiffe://shop.test/ns/web/sa/frontend');
    expect(parsed!.subject).toBe('CN=x;URI=spiffe://shop.test/ns/ops/sa/admin');
  });

  it('a Subject carrying ,Cert= does not start an element', () => {
    const parsed = parseXfcc('Subject="CN=x,Cert=abc";URI=spiffe://a/b');
    expect(parsed).toHaveLength(1);
    expect(parsed[0]!.cert).toBeUndefined();
  });

  it('an escaped quote does not close the value', () => {
    const [parsed] = parseXfcc('Subject="CN=x\\";URI=spiffe://evil/admin";URI=spiffe://a/b');
    expect(parsed!.uri).toBe('spiffe://a/b');
    expect(parsed!.subject).toBe('CN=x";URI=spiffe://evil/admin');
  });

  it('an escaped comma of RFC 2253 does not split elements', () => {
    expect(parseXfcc('Subject="CN=a\\,URI=spiffe://evil/x";Hash=ab')).toHaveLength(1);
  });
});

describe('parseXfcc: refusals (a coded error, never a partial parse)', () => {
  const malformed: [string, string, RegExp][] = [
    ['empty header', '', /empty/],
    ['empty element in the middle', 'URI=a,,URI=b', /element 2: expected a key at offset 6/],
    ['trailing comma', 'URI=a,', /element 2: expected a key/],
    ['leading comma', ',URI=a', /element 1: expected a key at offset 0/],
    ['trailing semicolon', 'URI=a;', /expected a key/],
    ['key without value sign', 'URI', /expected "=" after the key/],
    ['unknown key', 'URI=a;Role=admin', /unknown key "Role"/],
    ['URI twice in one element', 'URI=spiffe://a/x;URI=spiffe://a/admin', /key URI appears twice/],
    ['Cert twice, different case', 'Cert=a;cert=b', /key Cert appears twice/],
    ['Subject twice', 'Subject="";Subject="CN=x"', /key Subject appears twice/],
    ['Hash twice', `Hash=${HASH};hash=${HASH}`, /key Hash appears twice/],
    ['unquoted , in value', 'Subject=CN=a,b', /unexpected character|expected "="/],
    ['unquoted = in value', 'URI=https://x/?a=b', /unexpected character/],
    ['unclosed quote', 'Subject="CN=a', /not closed/],
    ['text after a closing quote', 'Subject="a"b', /unexpected character at offset 11/],
    ['space after comma', 'URI=a, URI=b', /expected a key/],
    ['space in unquoted value', 'URI=a b', /unexpected character/],
    ['control character in quotes', 'Subject="a\u0001b"', /control character/],
    ['lone backslash at the end', 'Subject="a\\', /escapes nothing/],
    ['unquoted backslash', 'URI=a\\b', /unexpected character/],
    ['stray quote in unquoted value', 'URI=a"b"', /unexpected character/],
    ['non-letter key', 'U-RI=a', /expected "="/],
  ];
  it.each(malformed)('%s', (_name, header, message) => {
    const error = failure(header);
    expect(error.code).toBe('ERR_MTLS_PROXY_HEADER_MALFORMED');
    expect(error.message).toMatch(message);
  });

  it('refuses more elements than allowed, even when the last one is well formed', () => {
    const header = Array.from({ length: 11 }, (_, i) => `URI=spiffe://a/${i}`).join(',');
    expect(failure(header)).toEqual({
      code: 'ERR_MTLS_PROXY_HEADER_MALFORMED',
      message: 'x-forwarded-client-cert: more than 10 elements',
    });
    expect(parseXfcc(header, { maxBytes: 65_536, maxElements: 11 })).toHaveLength(11);
  });

  it('refuses a header over the byte bound before reading it', () => {
    const header = `Subject="${'a'.repeat(70_000)}"`;
    const error = failure(header);
    expect(error.code).toBe('ERR_MTLS_PROXY_HEADER_TOO_LARGE');
    expect(error.message).toMatch(/70010 bytes, more than the 65536 allowed \(option proxy.maxHeaderBytes\)/);
  });

  it('a bad element anywhere refuses the whole header (no partial parse)', () => {
    expect(failure('URI=spiffe://a/b;Oops=1,URI=spiffe://a/c').code).toBe('ERR_MTLS_PROXY_HEADER_MALFORMED');
    expect(failure('URI=spiffe://a/b,URI="spiffe://a/c').code).toBe('ERR_MTLS_PROXY_HEADER_MALFORMED');
  });

  it('never echoes a value into its message', () => {
    const secret = 'Cert=-----BEGIN%20CERTIFICATE-----secretbody;Cert=x';
    expect(failure(secret).message).not.toContain('secretbody');
  });

  it('scans a long header in linear time', () => {
    const header = `Subject="${'\\,'.repeat(30_000)}"`;
    const started = performance.now();
    expect(scanXfcc(header)).toEqual([0, header.length]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
