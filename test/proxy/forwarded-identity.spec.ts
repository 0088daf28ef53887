import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PeerError } from '../../lib/errors/mtls.errors.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { peerIdentityFromDer } from '../../lib/identity/peer-identity.js';
import {
  forwardedCertificateDer,
  identityFromForwardedCertificate,
  identityFromXfccElement,
  type ForwardedTrust,
} from '../../lib/proxy/forwarded-identity.js';
import { isLoopbackAddress, headerLines } from '../../lib/proxy/proxy-trust.js';
import { parseXfcc } from '../../lib/proxy/xfcc.parser.js';
import { TestPki, xfccElement, type TestPeer } from '../../lib/testing/index.js';
import { extension, seq, syntheticCertificate } from '../x509/fixtures/der-builder.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';

function der(pem: string): Buffer {
  return new X509Certificate(pem).raw;
}

function refusal(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PeerError);
    return { code: (error as PeerError).code, message: (error as PeerError).message };
  }
  throw new Error('accepted');
}

describe('identity from a forwarded certificate', () => {
  let pki: TestPki;
  let chained: TestPki;
  let orders: TestPeer;
  let trust: ForwardedTrust;
  const noVerify: ForwardedTrust = { bundle: undefined, crls: [], now: new Date() };

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    chained = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
    orders = await pki.peer({ spiffeId: ORDERS, dnsNames: ['orders.shop.svc'] });
    trust = { bundle: parseCertificatesPem(pki.bundlePem), crls: [], now: new Date() };
  });

  it('derives the same identity as on a TLS connection, with source and DER', () => {
    const peer = identityFromForwardedCertificate(der(orders.certPem), [], 'rfc9440', trust);
    expect(peer).toMatchObject({
      spiffeId: ORDERS,
      trustDomain: 'shop.test',
      source: 'rfc9440',
      fingerprint256: orders.fingerprint256,
    });
    expect(Buffer.from(forwardedCertificateDer(peer)!)).toEqual(der(orders.certPem));
  });

  it('the TLS path says source "tls"', () => {
    expect(peerIdentityFromDer(der(orders.certPem)).source).toBe('tls');
  });

  it('refuses a forwarded CA leaf, as on TLS', async () => {
    const ca = await pki.peer({ spiffeId: ORDERS, isCa: true });
    const error = refusal(() => identityFromForwardedCertificate(der(ca.certPem), [], 'xfcc', noVerify));
    expect(error.code).toBe('ERR_MTLS_PEER_INVALID');
    expect(error.message).toMatch(/leaf certificate with CA flag set to true/);
  });

  it('refuses a certificate with two URI SANs (X509-SVID §5.2)', async () => {
    const two = await pki.peer({ uris: [ORDERS, ADMIN] });
    expect(refusal(() => identityFromForwardedCertificate(der(two.certPem), [], 'xfcc', noVerify)).code).toBe(
      'ERR_MTLS_PEER_INVALID',
    );
  });

  it('refuses a certificate from another CA when the chain is verified, and takes it when not', async () => {
    const foreign = await pki.foreignPeer(ORDERS);
    const error = refusal(() => identityFromForwardedCertificate(der(foreign.certPem), [], 'xfcc', trust));
    expect(error.code).toBe('ERR_MTLS_PEER_UNAUTHENTICATED');
    expect(error.message).toMatch(/^forwarded certificate not trusted: .*no certificate of that name verifies its signature/);
    expect(identityFromForwardedCertificate(der(foreign.certPem), [], 'xfcc', noVerify).spiffeId).toBe(ORDERS);
  });

  it('needs the intermediate when the leaf is issued by one', async () => {
    const leaf = await chained.peer(ORDERS);
    const bundle: ForwardedTrust = { bundle: parseCertificatesPem(chained.bundlePem), crls: [], now: new Date() };
    const [, intermediate] = parseCertificatesPem(leaf.chainPem);
    expect(refusal(() => identityFromForwardedCertificate(der(leaf.certPem), [], 'rfc9440', bundle)).code).toBe(
      'ERR_MTLS_PEER_UNAUTHENTICATED',
    );
    expect(identityFromForwardedCertificate(der(leaf.certPem), [intermediate!.der], 'rfc9440', bundle).spiffeId).toBe(ORDERS);
  });

  it('refuses an expired forwarded certificate even without chain verification', async () => {
    const expired = await pki.expiredPeer(ORDERS);
    expect(refusal(() => identityFromForwardedCertificate(der(expired.certPem), [], 'xfcc', noVerify))).toMatchObject({
      code: 'ERR_MTLS_PEER_UNAUTHENTICATED',
      message: expect.stringMatching(/forwarded certificate is valid only from/),
    });
  });

  it('refuses a leaf without the clientAuth usage when verifying', async () => {
    const serverOnly = await pki.peer({ spiffeId: ORDERS, extKeyUsage: ['serverAuth'] });
    expect(refusal(() => identityFromForwardedCertificate(der(serverOnly.certPem), [], 'xfcc', trust)).message).toMatch(
      /lacks clientAuth/,
    );
  });

  it("names at most a few of a forwarded leaf's unhandled critical extensions (fuzzing: 3,000 made a 30 KB message)", () => {
    const leaf = syntheticCertificate({
      extensions: Array.from({ length: 3_000 }, (_, i) => extension(`1.2.3.${i}`, seq(), true)),
    });
    const { message } = refusal(() => identityFromForwardedCertificate(leaf, [], 'rfc9440', trust));
    expect(message).toBe(
      'forwarded certificate not trusted: unhandled critical extensions 1.2.3.0, 1.2.3.1, 1.2.3.2, … (3000 in all)',
    );
  });

  it('refuses bytes that are not a certificate with a header error', () => {
    expect(refusal(() => identityFromForwardedCertificate(Buffer.from('junk'), [], 'rfc9440', trust)).code).toBe(
      'ERR_MTLS_PROXY_HEADER_MALFORMED',
    );
  });

  describe('XFCC elements', () => {
    const element = (header: string) => parseXfcc(header)[0]!;

    it('with Cert: the certificate decides, Hash and URI agree', () => {
      const peer = identityFromXfccElement(
        element(xfccElement(orders, { cert: true, chain: true, by: 'spiffe://shop.test/ns/shop/sa/inventory' })),
        trust,
      );
      expect(peer).toMatchObject({ spiffeId: ORDERS, source: 'xfcc', dnsNames: ['orders.shop.svc'] });
      expect(forwardedCertificateDer(peer)).toBeDefined();
    });

    it.each([
      [
        "a URI that is not the certificate's",
        { uri: ADMIN },
        /URI "spiffe:\/\/shop.test\/ns\/ops\/sa\/admin" is not a URI SAN of Cert/,
      ],
      ["a DNS that is not the certificate's", { dns: ['admin.shop.svc'] }, /DNS "admin.shop.svc" is not a DNS SAN of Cert/],
      ['a Hash of another certificate', { hash: 'ab'.repeat(32) }, /Hash is not the SHA-256 of Cert/],
    ])('with Cert and %s: refused (mismatch)', (_name, override, message) => {
      const error = refusal(() => identityFromXfccElement(element(xfccElement(orders, { cert: true, override })), trust));
      expect(error.code).toBe('ERR_MTLS_PROXY_HEADER_MISMATCH');
      expect(error.message).toMatch(message);
    });

    it('without Cert: the text fields, commonName never from a text subject', () => {
      const peer = identityFromXfccElement(element(xfccElement(orders, { override: { subject: 'CN=admin' } })), trust);
      expect(peer).toMatchObject({
        spiffeId: ORDERS,
        trustDomain: 'shop.test',
        commonName: undefined,
        subject: 'CN=admin',
        source: 'xfcc',
      });
      expect(peer.fingerprint256).toBe(orders.fingerprint256);
      expect(forwardedCertificateDer(peer)).toBeUndefined();
    });

    it.each([
      ['a root SPIFFE ID', 'spiffe://shop.test', /non-root path/],
      ['an upper-case scheme', 'SPIFFE://shop.test/ns/a', /scheme is missing or invalid/],
      ['a dot segment', 'spiffe://shop.test/ns/../admin', /dot segments/],
      ['a percent-encoded path', 'spiffe://shop.test/ns/%61dmin', /path segment characters are limited/],
    ])('without Cert, refuses %s as URI', (_name, uri, message) => {
      const error = refusal(() => identityFromXfccElement(element(`URI=${uri}`), trust));
      expect(error.code).toBe('ERR_MTLS_PEER_INVALID');
      expect(error.message).toMatch(message);
    });

    it('a legacy URI gives no SPIFFE ID', () => {
      expect(identityFromXfccElement(element('URI=https://legacy.example/x;DNS=legacy.example'), trust)).toMatchObject({
        spiffeId: undefined,
        normalizedDnsNames: ['legacy.example'],
      });
    });

    it.each([
      ['Chain without Cert', 'Chain="x"', 'ERR_MTLS_PROXY_HEADER_MALFORMED', /Chain without Cert/],
      ['a short Hash', 'Hash=abcd;URI=spiffe://shop.test/x', 'ERR_MTLS_PROXY_HEADER_MALFORMED', /not a hex SHA-256/],
      ['a Cert that is not URL-encoded', 'Cert="%E0%A4%A"', 'ERR_MTLS_PROXY_HEADER_MALFORMED', /not URL-encoded PEM/],
      ['a Cert without PEM', 'Cert="hello"', 'ERR_MTLS_PROXY_HEADER_MALFORMED', /holds no PEM certificate/],
      [
        'a Cert holding a key',
        `Cert="${encodeURIComponent('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')}"`,
        'ERR_MTLS_PROXY_HEADER_MALFORMED',
        /not a base64 CERTIFICATE/,
      ],
      ['an empty URI', 'URI=', 'ERR_MTLS_PROXY_HEADER_MALFORMED', /URI is empty/],
    ])('refuses %s', (_name, header, code, message) => {
      const error = refusal(() => identityFromXfccElement(element(header), trust));
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
    });

    it('refuses a Cert holding two certificates, and a Chain of more than 10', () => {
      const two = encodeURIComponent(orders.certPem + orders.certPem);
      expect(refusal(() => identityFromXfccElement(element(`Cert="${two}"`), trust)).message).toMatch(/more than 1 certificates/);
      const eleven = encodeURIComponent(orders.certPem.repeat(11));
      const header = `Cert="${encodeURIComponent(orders.certPem)}";Chain="${eleven}"`;
      expect(refusal(() => identityFromXfccElement(element(header), trust)).message).toMatch(/more than 10 certificates/);
    });
  });
});

describe('isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.0.0.6', true], // Istio's inbound passthrough source
    ['127.255.255.254', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['::FFFF:127.0.0.6', true],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['::', false],
    ['::2', false],
    ['::ffff:10.0.0.1', false],
    ['fe80::1', false],
    ['localhost', false],
    ['127.0.0.1.evil', false],
    ['', false],
  ])('%s → %s', (address, expected) => {
    expect(isLoopbackAddress(address)).toBe(expected);
  });
  it('undefined → false', () => expect(isLoopbackAddress(undefined)).toBe(false));
});

describe('headerLines', () => {
  it('counts lines of any case and keeps the raw value', () => {
    const raw = [
      'Host',
      'x',
      'X-Forwarded-Client-Cert',
      'URI=a',
      'x-forwarded-client-cert',
      'URI=b',
      'X-Forwarded-Client-Certs',
      'no',
    ];
    expect(headerLines(raw, ['x-forwarded-client-cert'])).toEqual({ values: ['URI=b'], counts: [2] });
  });
});
