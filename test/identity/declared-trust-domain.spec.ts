import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificateDer, type CertificateInfo } from '../../lib/x509/certificate.js';
import {
  anchorTrustDomain,
  bundleTrustDomainProblem,
  declaredTrustDomain,
  trustDomainMismatch,
  type DeclaredTrustDomain,
} from '../../lib/identity/trust-anchors.js';
import { OpensslCertificates, SVID_LEAF_EXTENSIONS } from '../x509/fixtures/openssl.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];

let openssl: OpensslCertificates;
let certificates: Record<string, CertificateInfo>;

beforeAll(() => {
  openssl = OpensslCertificates.create();
  const root = (cn: string, san?: string) =>
    parseCertificateDer(
      openssl.issue({
        subject: `/CN=${cn}`,
        extensions: san === undefined ? CA : [...CA, `subjectAltName=${san}`],
        selfSigned: true,
      }).der,
    );
  certificates = {
    shopRoot: root('shop root', 'URI:spiffe://shop.test'),
    elsewhereRoot: root('elsewhere root', 'URI:spiffe://elsewhere.test'),
    legacyRoot: root('legacy root'),
    dnsRoot: root('dns root', 'DNS:ca.shop.test,URI:https://ca.shop.test/'),
    pathRoot: root('path root', 'URI:spiffe://shop.test/ca'),
    twoIdRoot: root('two-id root', 'URI:spiffe://shop.test,URI:spiffe://elsewhere.test'),
    upperRoot: root('upper root', 'URI:SPIFFE://shop.test'),
    badRoot: root('bad root', 'URI:spiffe://shop.test:8443'),
    // Issued by the fixture CA, so not self-issued: never an anchor.
    intermediate: parseCertificateDer(
      openssl.issue({ subject: '/CN=shop int', extensions: [...CA, 'subjectAltName=URI:spiffe://shop.test'] }).der,
    ),
    leaf: parseCertificateDer(
      openssl.issue({ subject: '/CN=orders', extensions: [...SVID_LEAF_EXTENSIONS, `subjectAltName=URI:${ORDERS}`] }).der,
    ),
    pinned: parseCertificateDer(
      openssl.issue({
        subject: '/CN=pinned',
        extensions: [...SVID_LEAF_EXTENSIONS, `subjectAltName=URI:${ORDERS}`],
        selfSigned: true,
      }).der,
    ),
  };
});
afterAll(() => openssl?.dispose());

const ok = (trustDomain: string | undefined): DeclaredTrustDomain => ({ ok: true, trustDomain });
const problem = (text: string): DeclaredTrustDomain => ({ ok: false, problem: text });

describe('declaredTrustDomain', () => {
  it.each<[string, DeclaredTrustDomain]>([
    ['shopRoot', ok('shop.test')],
    ['elsewhereRoot', ok('elsewhere.test')],
    ['legacyRoot', ok(undefined)],
    ['dnsRoot', ok(undefined)],
    [
      'pathRoot',
      problem(
        '"CN=path root" carries the SPIFFE ID "spiffe://shop.test/ca", which has a path; a CA\'s SPIFFE ID names its trust domain only (X509-SVID §3.2)',
      ),
    ],
    ['twoIdRoot', problem('"CN=two-id root" carries more than one spiffe URI SAN')],
    ['upperRoot', problem('"CN=upper root" carries the invalid SPIFFE ID "SPIFFE://shop.test": scheme is missing or invalid')],
    [
      'badRoot',
      problem(
        '"CN=bad root" carries the invalid SPIFFE ID "spiffe://shop.test:8443": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
      ),
    ],
  ])('%s → %j', (name, expected) => {
    expect(declaredTrustDomain(certificates[name]!)).toEqual(expected);
  });
});

describe('anchorTrustDomain', () => {
  it.each<[string, string[], DeclaredTrustDomain]>([
    ['a leaf under the shop root', ['leaf', 'shopRoot'], ok('shop.test')],
    ['a leaf and an intermediate under the elsewhere root', ['leaf', 'intermediate', 'elsewhereRoot'], ok('elsewhere.test')],
    ['a legacy root', ['leaf', 'legacyRoot'], ok(undefined)],
    ['a root with only non-SPIFFE SANs', ['leaf', 'dnsRoot'], ok(undefined)],
    ['a pinned self-signed leaf', ['pinned'], ok(undefined)],
    [
      'a root whose SPIFFE ID has a path',
      ['leaf', 'pathRoot'],
      problem(
        '"CN=path root" carries the SPIFFE ID "spiffe://shop.test/ca", which has a path; a CA\'s SPIFFE ID names its trust domain only (X509-SVID §3.2)',
      ),
    ],
    [
      'a chain cut short at an intermediate',
      ['leaf', 'intermediate'],
      problem('the chain ends at "CN=shop int", which is not a self-issued trust anchor'),
    ],
    [
      'a lone leaf that is not self-issued',
      ['leaf'],
      problem('the chain ends at "CN=orders", which is not a self-issued trust anchor'),
    ],
    ['nothing', [], problem('the chain is empty')],
  ])('%s', (_, names, expected) => {
    expect(anchorTrustDomain(names.map((name) => certificates[name]!))).toEqual(expected);
  });
});

describe('trustDomainMismatch', () => {
  it.each<[string, DeclaredTrustDomain, string | undefined, string | undefined]>([
    ['the same trust domain', ok('shop.test'), 'shopRoot', undefined],
    ['an anchor that binds none', ok(undefined), 'legacyRoot', undefined],
    [
      'another trust domain',
      ok('elsewhere.test'),
      'elsewhereRoot',
      `SPIFFE ID "${ORDERS}" is in trust domain shop.test but the certificate chains to the trust anchor of elsewhere.test ("CN=elsewhere root")`,
    ],
    [
      'another trust domain, anchor unnamed',
      ok('elsewhere.test'),
      undefined,
      `SPIFFE ID "${ORDERS}" is in trust domain shop.test but the certificate chains to the trust anchor of elsewhere.test`,
    ],
    [
      'an anchor with a broken SPIFFE ID',
      problem('"CN=two-id root" carries more than one spiffe URI SAN'),
      'twoIdRoot',
      `SPIFFE ID "${ORDERS}" chains to a trust anchor that vouches for no trust domain: "CN=two-id root" carries more than one spiffe URI SAN`,
    ],
  ])('%s', (_, declared, anchor, expected) => {
    expect(trustDomainMismatch(ORDERS, 'shop.test', declared, anchor === undefined ? undefined : certificates[anchor])).toBe(
      expected,
    );
  });
});

describe('bundleTrustDomainProblem (a bundle delivered for a trust domain)', () => {
  it.each<[string, string, string[], string | undefined]>([
    ['its own CA', 'shop.test', ['shopRoot'], undefined],
    ['a CA that declares no trust domain', 'shop.test', ['legacyRoot', 'dnsRoot'], undefined],
    ['its own CA and a legacy one', 'shop.test', ['shopRoot', 'legacyRoot'], undefined],
    ['an intermediate of its own trust domain', 'shop.test', ['shopRoot', 'intermediate'], undefined],
    [
      'the CA of another trust domain',
      'partner.test',
      ['elsewhereRoot'],
      'the bundle of trust domain partner.test holds "CN=elsewhere root", a CA of trust domain elsewhere.test',
    ],
    [
      'the CA of our own trust domain, delivered for a partner',
      'partner.test',
      ['legacyRoot', 'shopRoot'],
      'the bundle of trust domain partner.test holds "CN=shop root", a CA of trust domain shop.test',
    ],
    [
      "its own CA next to another trust domain's",
      'shop.test',
      ['shopRoot', 'elsewhereRoot'],
      'the bundle of trust domain shop.test holds "CN=elsewhere root", a CA of trust domain elsewhere.test',
    ],
    [
      'a CA with two SPIFFE IDs',
      'shop.test',
      ['twoIdRoot'],
      'the bundle of trust domain shop.test holds a CA that names no single trust domain: "CN=two-id root" carries more than one spiffe URI SAN',
    ],
    [
      'a CA whose SPIFFE ID has a path',
      'shop.test',
      ['pathRoot'],
      'the bundle of trust domain shop.test holds a CA that names no single trust domain: "CN=path root" carries the SPIFFE ID "spiffe://shop.test/ca", which has a path; a CA\'s SPIFFE ID names its trust domain only (X509-SVID §3.2)',
    ],
  ])('%s', (_, trustDomain, names, expected) => {
    expect(
      bundleTrustDomainProblem(
        trustDomain,
        names.map((name) => certificates[name]!),
      ),
    ).toBe(expected);
  });
});
