import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCredentials, readCredentials, validateCredentials } from '../../lib/credentials/credentials-loader.js';
import type { ValidateOptions } from '../../lib/credentials/credentials-loader.js';
import type { CredentialFiles } from '../../lib/credentials/credentials.interfaces.js';
import { revocationListsOf } from '../../lib/credentials/revocation-lists.js';
import { CredentialsError } from '../../lib/errors/mtls.errors.js';
import type { CredentialsErrorCode } from '../../lib/errors/mtls.errors.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import type { IssueOptions, IssuedCertificate } from '../../lib/x509/certificate-authority.js';
import { expectNoKeyMaterial, keyLines, signCertificate, signCrl, tempRoot, writeSet, x509 } from './fixtures.js';
import type { PemSet, SignedCertificate, SignOptions } from './fixtures.js';

const HOUR = 3_600_000;
const ID = 'spiffe://shop.test/ns/shop/sa/inventory';
const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let root: string;
let ca: CertificateAuthority;
let intermediate: CertificateAuthority;
let otherCa: CertificateAuthority;
let sameNameCa: CertificateAuthority;
let good: IssuedCertificate;
const allKeys: string[] = [];

async function leaf(options: IssueOptions = { spiffeId: ID }, issuer: CertificateAuthority = ca): Promise<IssuedCertificate> {
  const issued = await issuer.issue(options);
  allKeys.push(issued.keyPem);
  return issued;
}

function set(issued: IssuedCertificate, extra: Partial<PemSet> = {}): PemSet {
  return { cert: issued.chainPem, key: issued.keyPem, ca: ca.rootPem, ...extra };
}

beforeAll(async () => {
  root = await tempRoot('validation');
  ca = await CertificateAuthority.create({ commonName: 'Shop Root CA', trustDomain: 'shop.test' });
  intermediate = await ca.createIntermediate({ commonName: 'Shop Intermediate CA' });
  otherCa = await CertificateAuthority.create({ commonName: 'Other Root CA' });
  sameNameCa = await CertificateAuthority.create({ commonName: 'Shop Root CA' });
  allKeys.push(ca.keyPem, intermediate.keyPem, otherCa.keyPem, sameNameCa.keyPem);
  good = await leaf({ spiffeId: ID, dnsNames: ['inventory.shop.svc'] });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function expectError(
  files: CredentialFiles,
  options: ValidateOptions | undefined,
  expected: { code: CredentialsErrorCode; field: string; file?: string; reason: RegExp },
): Promise<CredentialsError> {
  const error = await loadCredentials(files, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CredentialsError);
  const err = error as CredentialsError;
  expect({ code: err.code, field: err.field }).toEqual({ code: expected.code, field: expected.field });
  expect(err.reason).toMatch(expected.reason);
  if (expected.file !== undefined) expect(err.file).toBe(expected.file);
  expect(err.message).toContain(err.file);
  expect(err.message).toContain('Fix: ');
  expect(err.fix.length).toBeGreaterThan(10);
  expectNoKeyMaterial(err, keyLines(...allKeys));
  return err;
}

describe('validateCredentials: a good set', () => {
  it('returns the leaf, chain, bundle, identity and no warnings', async () => {
    const files = await writeSet(root, set(good));
    const credentials = await loadCredentials(files);
    expect(credentials.leaf.uris).toEqual([ID]);
    expect(credentials.chain).toHaveLength(1);
    expect(credentials.identity.spiffeId).toBe(ID);
    expect(credentials.identity.trustDomain).toBe('shop.test');
    expect(credentials.caCertificates).toHaveLength(1);
    expect(credentials.caNotAfter).toEqual(ca.notAfter);
    expect(credentials.crlPems).toEqual([]);
    expect(credentials.warnings).toEqual([]);
    expect(credentials.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(credentials.key.pem().toString()).toBe(good.keyPem);
    expectNoKeyMaterial(credentials, keyLines(good.keyPem));
    expect(inspect(credentials.key)).toBe('[private key redacted]');
  });

  it('accepts a leaf issued by an intermediate that follows it in the certificate file', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    const credentials = await loadCredentials(await writeSet(root, set(issued)));
    expect(credentials.chain.map((c) => c.subject)).toEqual([credentials.leaf.subject, 'CN=Shop Intermediate CA']);
  });

  it('accepts a bundle holding the intermediate and the root when the certificate file holds only the leaf', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    const files = await writeSet(root, { cert: issued.certPem, key: issued.keyPem, ca: intermediate.certPem + ca.rootPem });
    const credentials = await loadCredentials(files);
    expect(credentials.caCertificates).toHaveLength(2);
  });

  it('accepts a leaf without an extended key usage extension (X509-SVID §4.4: SHOULD)', async () => {
    const credentials = await loadCredentials(await writeSet(root, set(await leaf({ spiffeId: ID, extKeyUsage: null }))));
    expect(credentials.leaf.extKeyUsage).toBeUndefined();
  });

  it('accepts a non-SPIFFE leaf with only DNS names', async () => {
    const credentials = await loadCredentials(await writeSet(root, set(await leaf({ dnsNames: ['legacy.shop.svc'] }))));
    expect(credentials.identity.spiffeId).toBeUndefined();
    expect(credentials.identity.dnsNames).toEqual(['legacy.shop.svc']);
  });

  it.each([
    ['SEC1 (EC PRIVATE KEY)', 'sec1'],
    ['PKCS#8 (PRIVATE KEY)', 'pkcs8'],
  ] as const)('loads a %s key', async (_name, type) => {
    const key = createPrivateKey(good.keyPem).export({ type, format: 'pem' }).toString();
    const credentials = await loadCredentials(await writeSet(root, set(good, { key })));
    expect(credentials.leaf.fingerprint256).toBe(good.fingerprint256);
  });

  it('loads an RSA PKCS#1 key', async () => {
    const issued = await leaf({ spiffeId: ID, keyAlgorithm: 'RSA-2048' });
    const key = createPrivateKey(issued.keyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    await expect(loadCredentials(await writeSet(root, set(issued, { key })))).resolves.toBeDefined();
  });

  it('warns, without failing, when less than a third of the lifetime remains', async () => {
    const now = Date.now();
    const issued = await leaf({ spiffeId: ID, notBefore: new Date(now - 20 * HOUR), notAfter: new Date(now + 4 * HOUR) });
    const files = await writeSet(root, set(issued));
    const credentials = await loadCredentials(files);
    expect(credentials.warnings).toEqual([expect.stringContaining(`${files.cert} expires at ${issued.notAfter.toISOString()}`)]);
    const quiet = await loadCredentials(files, { expiryWarningMs: HOUR });
    expect(quiet.warnings).toEqual([]);
  });

  it('warns when the certificate file also holds the private key', async () => {
    const files = await writeSet(root, set(good, { cert: good.keyPem + good.chainPem }));
    const credentials = await loadCredentials(files);
    expect(credentials.warnings).toEqual([expect.stringContaining('holds a private key next to the certificates')]);
    expectNoKeyMaterial(credentials, keyLines(good.keyPem));
  });

  it('uses the clock passed as `now`', async () => {
    const raw = await readCredentials(await writeSet(root, set(good)));
    expect(() => validateCredentials(raw, { now: new Date(good.notAfter.getTime() + 1000) })).toThrow(/expired/);
    expect(validateCredentials(raw, { now: new Date(good.notBefore.getTime() + 1000) }).leaf.serialNumber).toBe(
      good.serialNumber,
    );
  });
});

describe('validateCredentials: PEM structure', () => {
  const encryptedKey = (): string =>
    createPrivateKey(good.keyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
  const legacyEncryptedKey = (): string =>
    createPrivateKey(good.keyPem).export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }).toString();
  // Valid base64 framing, wrong bytes: the loader must refuse it without echoing them.
  const corruptKey = (): string => good.keyPem.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA');
  const publicKey = (): string =>
    createPrivateKey(good.keyPem)
      .export({ type: 'pkcs8', format: 'pem' })
      .toString()
      .replace(/PRIVATE/g, 'PUBLIC');

  it.each<[string, () => Partial<PemSet>, CredentialsErrorCode, string, RegExp]>([
    [
      'certificate file with no PEM block',
      () => ({ cert: 'hello\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /no PEM block found/,
    ],
    [
      'certificate file in DER',
      () => ({ cert: Buffer.from(good.certPem.replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('latin1') }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /DER, not PEM/,
    ],
    [
      'certificate file holding the key (swapped paths)',
      () => ({ cert: good.keyPem }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /holds a private key, not a certificate/,
    ],
    [
      'truncated certificate',
      () => ({ cert: good.certPem.slice(0, 200) }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /no matching END line/,
    ],
    [
      'certificate with garbage base64',
      () => ({ cert: '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /certificate #1 is not valid base64/,
    ],
    [
      'certificate that is not X.509',
      () => ({ cert: '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /certificate #1 does not parse as X\.509/,
    ],
    [
      'second certificate broken',
      () => ({ cert: good.certPem + '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /certificate #2 does not parse/,
    ],
    [
      'CRL block inside the certificate file',
      () => ({ cert: good.certPem + '-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      /unexpected "X509 CRL" block/,
    ],
    [
      'key file with no PEM block',
      () => ({ key: 'not a key\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /no PEM private key block found/,
    ],
    [
      'key file in DER',
      () => ({ key: createPrivateKey(good.keyPem).export({ type: 'pkcs8', format: 'der' }) }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /the key is DER, not PEM/,
    ],
    [
      'key file holding the certificate (swapped paths)',
      () => ({ key: good.certPem }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /no private key block \(found "CERTIFICATE"\)/,
    ],
    [
      'key file holding a public key',
      () => ({ key: publicKey() }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /no private key block \(found "PUBLIC KEY"\)/,
    ],
    [
      'encrypted PKCS#8 key',
      () => ({ key: encryptedKey() }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /the private key is encrypted/,
    ],
    [
      'encrypted legacy (Proc-Type) key',
      () => ({ key: legacyEncryptedKey() }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /the private key is encrypted/,
    ],
    [
      'corrupt key bytes',
      () => ({ key: corruptKey() }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /"PRIVATE KEY" block does not load as a private key \(ERR_[A-Z0-9_]+\)/,
    ],
    [
      'two private keys',
      () => ({ key: good.keyPem + good.keyPem }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      /holds 2 private keys/,
    ],
    ['truncated key', () => ({ key: good.keyPem.slice(0, 100) }), 'ERR_MTLS_CREDENTIALS_NOT_PEM', 'key', /no matching END line/],
    [
      'bundle with no certificate',
      () => ({ ca: 'nothing here\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'ca',
      /the trust bundle has no certificate: no PEM block found/,
    ],
    [
      'bundle holding a private key',
      () => ({ ca: ca.rootPem + good.keyPem }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'ca',
      /^the trust bundle holds a private key$/,
    ],
    [
      'bundle certificate that does not parse',
      () => ({ ca: ca.rootPem + '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n' }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'ca',
      /bundle certificate #2 does not parse/,
    ],
    [
      'bundle holding a leaf',
      () => ({ ca: ca.rootPem + good.certPem }),
      'ERR_MTLS_CHAIN_UNTRUSTED',
      'ca',
      /bundle certificate #2 ".*" is not a CA/,
    ],
  ])('%s', async (_name, change, code, field, reason) => {
    const files = await writeSet(root, set(good, change()));
    const file = field === 'certificate' ? files.cert : field === 'key' ? files.key : files.ca;
    await expectError(files, undefined, { code, field, file, reason });
  });

  it('never echoes corrupt key bytes, even through Node error text', async () => {
    const files = await writeSet(root, set(good, { key: corruptKey() }));
    const err = await expectError(files, undefined, {
      code: 'ERR_MTLS_CREDENTIALS_NOT_PEM',
      field: 'key',
      reason: /does not load/,
    });
    expect(err.cause).toBeUndefined();
    expectNoKeyMaterial(err, keyLines(corruptKey()));
  });
});

describe('validateCredentials: key, validity, chain, usage', () => {
  it('refuses a key that belongs to another certificate, naming both files', async () => {
    const other = await leaf();
    const files = await writeSet(root, set(good, { key: other.keyPem }));
    const err = await expectError(files, undefined, {
      code: 'ERR_MTLS_KEY_MISMATCH',
      field: 'key',
      file: files.key,
      reason: /does not belong/,
    });
    expect(err.message).toContain(files.cert);
  });

  it('refuses a key of another algorithm (Ed25519 for an ECDSA certificate)', async () => {
    const ed25519Key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    allKeys.push(ed25519Key);
    await expectError(await writeSet(root, set(good, { key: ed25519Key })), undefined, {
      code: 'ERR_MTLS_KEY_MISMATCH',
      field: 'key',
      reason: /does not belong/,
    });
  });

  it('refuses an expired certificate with the dates in ISO form', async () => {
    const now = Date.now();
    const issued = await leaf({ spiffeId: ID, notBefore: new Date(now - 2 * HOUR), notAfter: new Date(now - HOUR) });
    const files = await writeSet(root, set(issued));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CERT_EXPIRED',
      field: 'certificate',
      file: files.cert,
      reason: new RegExp(`expired at ${issued.notAfter.toISOString().replace(/\./g, '\\.')} \\(now \\d{4}-`),
    });
  });

  it('refuses a certificate that is not valid yet', async () => {
    const now = Date.now();
    const issued = await leaf({ spiffeId: ID, notBefore: new Date(now + HOUR), notAfter: new Date(now + 2 * HOUR) });
    await expectError(await writeSet(root, set(issued)), undefined, {
      code: 'ERR_MTLS_CERT_NOT_YET_VALID',
      field: 'certificate',
      reason: new RegExp(`not valid before ${issued.notBefore.toISOString().replace(/\./g, '\\.')}`),
    });
  });

  it('refuses a certificate from another CA, naming its issuer and the bundle file', async () => {
    const issued = await leaf({ spiffeId: ID }, otherCa);
    const files = await writeSet(root, set(issued));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'ca',
      file: files.ca,
      reason:
        /issuer "CN=Other Root CA"\) does not chain to the trust bundle: no certificate in the chain or the trust bundle issued/,
    });
  });

  it('refuses a certificate from a different CA that has the same name as the trusted one', async () => {
    const issued = await leaf({ spiffeId: ID }, sameNameCa);
    await expectError(await writeSet(root, set(issued)), undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'ca',
      reason: /names "CN=Shop Root CA" as issuer, but no certificate of that name verifies its signature/,
    });
  });

  it('refuses an intermediate-issued leaf when the intermediate is missing from the certificate file', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    await expectError(await writeSet(root, set(issued, { cert: issued.certPem })), undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'ca',
      reason: /issued ".*" \(issuer "CN=Shop Intermediate CA"\)/,
    });
  });

  it('refuses a bundle that holds the intermediate but not the root (Node has no partial-chain mode)', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    await expectError(await writeSet(root, set(issued, { ca: intermediate.certPem })), undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'ca',
      reason: /reaches "CN=Shop Intermediate CA" in the trust bundle but not its self-signed root "CN=Shop Root CA"/,
    });
  });

  it('refuses a certificate without the clientAuth usage with the cert-manager fix', async () => {
    const issued = await leaf({ spiffeId: ID, extKeyUsage: ['serverAuth'] });
    const files = await writeSet(root, set(issued));
    const err = await expectError(files, undefined, {
      code: 'ERR_MTLS_EKU_MISSING',
      field: 'certificate',
      file: files.cert,
      reason: /^certificate lacks the clientAuth extended key usage$/,
    });
    expect(err.fix).toBe('the issuer must add it (cert-manager: spec.usages: [server auth, client auth])');
  });

  it('checks only the usages asked for', async () => {
    const files = await writeSet(root, set(await leaf({ spiffeId: ID, extKeyUsage: ['clientAuth'] })));
    await expect(loadCredentials(files, { usages: ['clientAuth'] })).resolves.toBeDefined();
    await expectError(
      files,
      { usages: ['serverAuth', 'clientAuth'] },
      { code: 'ERR_MTLS_EKU_MISSING', field: 'certificate', reason: /lacks the serverAuth extended key usage/ },
    );
  });
});

describe('validateCredentials: hand-made CA shapes', () => {
  let rootSigned: SignedCertificate;
  const KU = x509.KeyUsageFlags;

  beforeAll(() => {
    rootSigned = { certPem: ca.certPem, keyPem: ca.keyPem };
  });

  async function throughIntermediate(shape: {
    isCa: boolean;
    keyUsage: number | null;
    notAfter?: Date;
    extKeyUsage?: string[];
  }): Promise<PemSet> {
    const inter = await signCertificate(rootSigned, { commonName: 'Odd Intermediate', ...shape });
    const issued = await signCertificate(inter, {
      commonName: 'leaf',
      isCa: false,
      keyUsage: KU.digitalSignature,
      extKeyUsage: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
      uris: [ID],
    });
    allKeys.push(inter.keyPem, issued.keyPem);
    return { cert: issued.certPem + inter.certPem, key: issued.keyPem, ca: ca.rootPem };
  }

  it.each<[string, { isCa: boolean; keyUsage: number | null; notAfter?: Date; extKeyUsage?: string[] }, RegExp]>([
    [
      'an intermediate that is not a CA',
      { isCa: false, keyUsage: KU.keyCertSign | KU.digitalSignature },
      /^intermediate "CN=Odd Intermediate" signs "CN=leaf" but is not a CA/,
    ],
    [
      'an intermediate without keyCertSign',
      { isCa: true, keyUsage: KU.cRLSign },
      /^intermediate "CN=Odd Intermediate" is a CA without the keyCertSign key usage/,
    ],
    ['an intermediate without a key usage extension', { isCa: true, keyUsage: null }, /without the keyCertSign key usage/],
    [
      'an expired intermediate',
      { isCa: true, keyUsage: KU.keyCertSign | KU.cRLSign, notAfter: new Date(Date.now() - 1000) },
      /^intermediate "CN=Odd Intermediate" expired at /,
    ],
    [
      'an intermediate whose EKU excludes clientAuth',
      { isCa: true, keyUsage: KU.keyCertSign, extKeyUsage: ['1.3.6.1.5.5.7.3.1'] },
      /restricts extended key usage and lacks clientAuth/,
    ],
  ])('refuses %s', async (_name, shape, reason) => {
    const files = await writeSet(root, await throughIntermediate(shape));
    await expectError(files, undefined, { code: 'ERR_MTLS_CHAIN_UNTRUSTED', field: 'certificate', file: files.cert, reason });
  });

  it('refuses a chain longer than an intermediate pathLenConstraint allows', async () => {
    const constrained = await signCertificate(rootSigned, {
      commonName: 'Constrained',
      isCa: true,
      keyUsage: KU.keyCertSign,
      pathLength: 0,
    });
    const child = await signCertificate(constrained, { commonName: 'Too Deep', isCa: true, keyUsage: KU.keyCertSign });
    const issued = await signCertificate(child, { commonName: 'leaf', isCa: false, keyUsage: KU.digitalSignature, uris: [ID] });
    allKeys.push(constrained.keyPem, child.keyPem, issued.keyPem);
    const files = await writeSet(root, {
      cert: issued.certPem + child.certPem + constrained.certPem,
      key: issued.keyPem,
      ca: ca.rootPem,
    });
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'certificate',
      reason: /^intermediate "CN=Constrained" allows 0 intermediate CA\(s\) below it \(pathLenConstraint\), the path has 1$/,
    });
  });
});

describe('validateCredentials: X509-SVID rules (go-spiffe wording)', () => {
  const prefix = 'x509svid: certificate validation failed: ';
  it.each<[string, IssueOptions, string]>([
    [
      'two URI SANs',
      { spiffeId: ID, uris: ['spiffe://shop.test/other'] },
      'cannot get leaf certificate SPIFFE ID: certificate contains more than one URI SAN',
    ],
    [
      'a SPIFFE and an https URI SAN',
      { spiffeId: ID, uris: ['https://shop.test/'] },
      'cannot get leaf certificate SPIFFE ID: certificate contains more than one URI SAN',
    ],
    [
      'an upper-case trust domain',
      { uris: ['spiffe://Shop.test/x'] },
      'cannot get leaf certificate SPIFFE ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'an upper-case scheme',
      { uris: ['SPIFFE://shop.test/x'] },
      'cannot get leaf certificate SPIFFE ID: scheme is missing or invalid',
    ],
    ['a root-path SPIFFE ID', { spiffeId: 'spiffe://shop.test' }, 'leaf certificate SPIFFE ID must have a non-root path'],
    ['a CA:TRUE leaf', { spiffeId: ID, isCa: true }, 'leaf certificate must not have CA flag set to true'],
    [
      'a leaf without digitalSignature',
      { spiffeId: ID, keyUsage: ['keyAgreement'] },
      "leaf certificate must have 'digitalSignature' set as key usage",
    ],
    [
      'a leaf without key usage',
      { spiffeId: ID, keyUsage: null },
      "leaf certificate must have 'digitalSignature' set as key usage",
    ],
    [
      'a leaf with keyCertSign',
      { spiffeId: ID, keyUsage: ['digitalSignature', 'keyCertSign'] },
      "leaf certificate must not have 'keyCertSign' set as key usage",
    ],
    [
      'a leaf with cRLSign',
      { spiffeId: ID, keyUsage: ['digitalSignature', 'cRLSign'] },
      "leaf certificate must not have 'cRLSign' set as key usage",
    ],
  ])('refuses %s', async (_name, options, message) => {
    const files = await writeSet(root, set(await leaf(options)));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_SVID_INVALID',
      field: 'certificate',
      file: files.cert,
      reason: new RegExp(`^${(prefix + message).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    });
  });

  it.each<[string, IssueOptions, RegExp]>([
    ['a CA:TRUE leaf', { dnsNames: ['x.shop.svc'], isCa: true }, /^leaf certificate must not have CA flag set to true$/],
    [
      'a leaf with keyCertSign',
      { dnsNames: ['x.shop.svc'], keyUsage: ['digitalSignature', 'keyCertSign'] },
      /^leaf certificate must not have 'keyCertSign' set as key usage$/,
    ],
  ])('refuses %s even without a SPIFFE ID', async (_name, options, reason) => {
    await expectError(await writeSet(root, set(await leaf(options))), undefined, {
      code: 'ERR_MTLS_SVID_INVALID',
      field: 'certificate',
      reason,
    });
  });

  it.each<[string, Partial<SignOptions>, string]>([
    [
      'an empty subject with a non-critical SAN (A9)',
      { subject: '', sanCritical: false },
      'leaf certificate with an empty subject must have its subjectAltName extension marked critical',
    ],
    [
      'a non-critical key usage (A10)',
      { keyUsageCritical: false },
      'leaf certificate must have its key usage extension marked critical',
    ],
  ])('refuses %s, which go-spiffe does not check', async (_name, shape, message) => {
    const issued = await signCertificate(
      { certPem: ca.certPem, keyPem: ca.keyPem },
      {
        commonName: 'svid',
        isCa: false,
        keyUsage: x509.KeyUsageFlags.digitalSignature,
        extKeyUsage: [EKU_SERVER, EKU_CLIENT],
        uris: [ID],
        ...shape,
      },
    );
    allKeys.push(issued.keyPem);
    const files = await writeSet(root, { cert: issued.certPem, key: issued.keyPem, ca: ca.rootPem });
    await expectError(files, undefined, {
      code: 'ERR_MTLS_SVID_INVALID',
      field: 'certificate',
      file: files.cert,
      reason: new RegExp(`^${escape(prefix + message)}$`),
    });
  });

  it('accepts an empty subject when the SAN is critical, and a subject with a non-critical SAN', async () => {
    const shapes: Partial<SignOptions>[] = [{ subject: '', sanCritical: true }, { sanCritical: false }];
    for (const shape of shapes) {
      const issued = await signCertificate(
        { certPem: ca.certPem, keyPem: ca.keyPem },
        {
          commonName: 'svid',
          isCa: false,
          keyUsage: x509.KeyUsageFlags.digitalSignature,
          extKeyUsage: [EKU_SERVER, EKU_CLIENT],
          uris: [ID],
          ...shape,
        },
      );
      const credentials = await loadCredentials(
        await writeSet(root, { cert: issued.certPem, key: issued.keyPem, ca: ca.rootPem }),
      );
      expect(credentials.leaf.subject).toBe(shape.subject ?? 'CN=svid');
    }
  });
});

describe('validateCredentials: critical extensions OpenSSL does not support', () => {
  const KU = x509.KeyUsageFlags;
  const UNKNOWN = '1.2.3.4';
  // certificatePolicies with anyPolicy: critical, and processed by OpenSSL itself.
  const policies = (): x509.Extension => new x509.Extension('2.5.29.32', true, Buffer.from('300830060604551d2000', 'hex'));
  const unknown = (): x509.Extension => new x509.Extension(UNKNOWN, true, Buffer.from('3000', 'hex'));
  let rootSigned: SignedCertificate;

  beforeAll(() => {
    rootSigned = { certPem: ca.certPem, keyPem: ca.keyPem };
  });

  async function leafUnder(issuer: SignedCertificate, extensions: x509.Extension[] = []): Promise<SignedCertificate> {
    const issued = await signCertificate(issuer, {
      commonName: 'leaf',
      isCa: false,
      keyUsage: KU.digitalSignature,
      extKeyUsage: [EKU_SERVER, EKU_CLIENT],
      uris: [ID],
      extensions,
    });
    allKeys.push(issued.keyPem);
    return issued;
  }

  async function intermediateUnder(
    issuer: SignedCertificate,
    commonName: string,
    extensions: x509.Extension[],
  ): Promise<SignedCertificate> {
    const inter = await signCertificate(issuer, { commonName, isCa: true, keyUsage: KU.keyCertSign | KU.cRLSign, extensions });
    allKeys.push(inter.keyPem);
    return inter;
  }

  it('refuses a leaf with one', async () => {
    const issued = await leafUnder(rootSigned, [unknown()]);
    const files = await writeSet(root, { cert: issued.certPem, key: issued.keyPem, ca: ca.rootPem });
    const err = await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'certificate',
      file: files.cert,
      reason:
        /^the certificate has critical extension 1\.2\.3\.4, which OpenSSL does not support: every peer would reject it \(unhandled critical extension\)$/,
    });
    expect(err.fix).toBe('have the issuer reissue it without that extension, or with the extension marked non-critical');
  });

  it('refuses an intermediate with one', async () => {
    const inter = await intermediateUnder(rootSigned, 'Odd Intermediate', [unknown()]);
    const issued = await leafUnder(inter);
    const files = await writeSet(root, { cert: issued.certPem + inter.certPem, key: issued.keyPem, ca: ca.rootPem });
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'certificate',
      file: files.cert,
      reason:
        /^intermediate "CN=Odd Intermediate" \(certificate #2\) has critical extension 1\.2\.3\.4, which OpenSSL does not support/,
    });
  });

  it('refuses a CA of the trust bundle with one', async () => {
    const oddRoot = await signCertificate(undefined, {
      commonName: 'Odd Root',
      isCa: true,
      keyUsage: KU.keyCertSign | KU.cRLSign,
      extensions: [unknown()],
    });
    allKeys.push(oddRoot.keyPem);
    const files = await writeSet(root, set(good, { ca: ca.rootPem + oddRoot.certPem }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'ca',
      file: files.ca,
      reason:
        /^bundle certificate #2 "CN=Odd Root" has critical extension 1\.2\.3\.4, which OpenSSL does not support: it would reject every chain through this CA$/,
    });
  });

  it('accepts critical extensions OpenSSL processes itself (certificatePolicies)', async () => {
    const inter = await intermediateUnder(rootSigned, 'Policy Intermediate', [policies()]);
    const issued = await leafUnder(inter, [policies()]);
    const credentials = await loadCredentials(
      await writeSet(root, { cert: issued.certPem + inter.certPem, key: issued.keyPem, ca: ca.rootPem }),
    );
    expect(credentials.chain.map((c) => c.unhandledCriticalExtensions)).toEqual([['2.5.29.32'], ['2.5.29.32']]);
  });

  it('agrees with OpenSSL in a real handshake on 127.0.0.1', async () => {
    const verdict = async (server: SignedCertificate): Promise<string> => {
      const tlsServer = tls.createServer({ key: server.keyPem, cert: server.certPem });
      tlsServer.listen(0, '127.0.0.1');
      await once(tlsServer, 'listening');
      const socket = tls.connect({
        host: '127.0.0.1',
        port: (tlsServer.address() as AddressInfo).port,
        ca: ca.rootPem,
        checkServerIdentity: () => undefined,
      });
      try {
        await once(socket, 'secureConnect');
        return 'verified';
      } catch (error) {
        // Node has no name for X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION; OpenSSL's text is in the message.
        const { code, message } = error as NodeJS.ErrnoException;
        return `${code}: ${message}`;
      } finally {
        socket.destroy();
        tlsServer.close();
      }
    };
    expect(await verdict(await leafUnder(rootSigned, [unknown()]))).toBe('UNSPECIFIED: unhandled critical extension');
    expect(await verdict(await leafUnder(rootSigned, [policies()]))).toBe('verified');
  });
});

describe('validateCredentials: CRLs', () => {
  it('accepts current CRLs from every CA of the chain and keeps one PEM per CRL', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    const crls = [(await ca.createCrl([])) + (await intermediate.createCrl(['01']))];
    const credentials = await loadCredentials(await writeSet(root, set(issued, { crl: crls })));
    expect(credentials.crlPems).toHaveLength(2);
    for (const pem of credentials.crlPems) expect(pem.match(/BEGIN X509 CRL/g)).toHaveLength(1);
    const lists = revocationListsOf(credentials);
    expect(lists.map((crl) => crl.issuer)).toEqual(['CN=Shop Root CA', 'CN=Shop Intermediate CA']);
    expect(revocationListsOf(credentials)).toBe(lists);
    // A set built elsewhere (no validation cache) is parsed from its PEMs.
    expect(revocationListsOf({ ...credentials }).map((crl) => crl.revokedSerials)).toEqual([new Set(), new Set(['01'])]);
  });

  it('refuses a set whose own leaf is revoked', async () => {
    const issued = await leaf();
    const files = await writeSet(root, set(issued, { crl: [await ca.createCrl([issued.serialNumber])] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      field: 'certificate',
      file: files.cert,
      reason: /is revoked by the CRL of "CN=Shop Root CA"/,
    });
  });

  it('refuses a CRL past its nextUpdate', async () => {
    const now = Date.now();
    const crl = await ca.createCrl([], { thisUpdate: new Date(now - 48 * HOUR), nextUpdate: new Date(now - 24 * HOUR) });
    const files = await writeSet(root, set(good, { crl: [crl] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      file: files.crl[0],
      reason: /^CRL #1 of "CN=Shop Root CA" expired at .*\(nextUpdate\)$/,
    });
  });

  it('refuses a CRL that is not valid yet', async () => {
    const now = Date.now();
    const crl = await ca.createCrl([], { thisUpdate: new Date(now + HOUR), nextUpdate: new Date(now + 24 * HOUR) });
    await expectError(await writeSet(root, set(good, { crl: [crl] })), undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      reason: /not valid before .*\(thisUpdate\)/,
    });
  });

  it('refuses a CRL signed by another CA with the trusted CA name', async () => {
    const files = await writeSet(root, set(good, { crl: [await ca.createCrl([]), await sameNameCa.createCrl([])] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      file: files.crl[1],
      reason: /^CRL #2 of "CN=Shop Root CA" is not validly signed: signature does not verify with the key of "CN=Shop Root CA"$/,
    });
  });

  it('refuses two different CRLs of one CA, and accepts the same CRL twice', async () => {
    const older = await ca.createCrl([]);
    await new Promise((resolve) => setTimeout(resolve, 2));
    const newer = await ca.createCrl([]);
    const files = await writeSet(root, set(good, { crl: [newer, older] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      file: files.crl[1],
      reason:
        /^CRL #2 of "CN=Shop Root CA" \(cRLNumber \d+, issued .*\) and CRL #1 in .*\(cRLNumber \d+, issued .*\) are two different CRLs of one CA$/,
    });
    const twice = await loadCredentials(await writeSet(root, set(good, { crl: [newer, newer] })));
    expect(twice.crlPems).toHaveLength(2);
  });

  it('refuses a CRL file without a CRL', async () => {
    const files = await writeSet(root, set(good, { crl: [ca.rootPem] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      file: files.crl[0],
      reason: /no "X509 CRL" block \(found "CERTIFICATE"\)/,
    });
  });

  it('refuses a CRL block that does not parse', async () => {
    const files = await writeSet(root, set(good, { crl: ['-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n'] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      reason: /^CRL #1 does not parse: not a DER-encoded X\.509 CRL: tbsCertList: expected tag 0x30, found 0x02$/,
    });
  });

  it('refuses CRLs that miss a CA of the chain (Node would then reject every such peer)', async () => {
    const issued = await leaf({ spiffeId: ID }, intermediate);
    await expectError(await writeSet(root, set(issued, { crl: [await ca.createCrl([])] })), undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      reason: /no CRL from "CN=Shop Intermediate CA", needed to check/,
    });
  });

  it.each<[string, () => x509.Extension, RegExp]>([
    [
      'a delta CRL',
      () => new x509.Extension('2.5.29.27', true, Buffer.from('020101', 'hex')),
      /^CRL #1 of "CN=Shop Root CA" is refused: it is a delta CRL \(deltaCRLIndicator\)/,
    ],
    [
      'a partitioned CRL',
      () => new x509.Extension('2.5.29.28', true, Buffer.from('30038101ff', 'hex')),
      /^CRL #1 of "CN=Shop Root CA" is refused: it has an issuingDistributionPoint extension/,
    ],
    [
      'a CRL with an unknown critical extension',
      () => new x509.Extension('1.2.3.4', true, Buffer.from('3000', 'hex')),
      /^CRL #1 of "CN=Shop Root CA" is refused: it has critical extension 1\.2\.3\.4, which is not understood/,
    ],
  ])('refuses %s: revocation is checked against complete CRLs only', async (_name, make, reason) => {
    const crl = await signCrl({ certPem: ca.certPem, keyPem: ca.keyPem }, { extensions: [make()] });
    const files = await writeSet(root, set(good, { crl: [crl] }));
    const err = await expectError(files, undefined, { code: 'ERR_MTLS_CRL_INVALID', field: 'crl', file: files.crl[0], reason });
    expect(err.fix).toMatch(/^configure the CA's complete CRL/);
  });

  it('names the file of the CRL that fails among several', async () => {
    const delta = await signCrl(
      { certPem: ca.certPem, keyPem: ca.keyPem },
      { extensions: [new x509.Extension('2.5.29.27', true, Buffer.from('020101', 'hex'))] },
    );
    const files = await writeSet(root, set(good, { crl: [await ca.createCrl([]), delta] }));
    await expectError(files, undefined, {
      code: 'ERR_MTLS_CRL_INVALID',
      field: 'crl',
      file: files.crl[1],
      reason: /^CRL #2 of "CN=Shop Root CA" is refused: it is a delta CRL/,
    });
  });

  it('keeps, with a warning, a CRL of a CA it cannot see', async () => {
    const sibling = await ca.createIntermediate({ commonName: 'Sibling Intermediate CA' });
    const credentials = await loadCredentials(
      await writeSet(root, set(good, { crl: [await ca.createCrl([]), await sibling.createCrl([])] })),
    );
    expect(credentials.warnings).toEqual([
      expect.stringContaining(
        'CRL #2 is issued by "CN=Sibling Intermediate CA", which is neither in the trust bundle nor in the certificate chain',
      ),
    ]);
  });
});
