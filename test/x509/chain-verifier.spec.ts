import { beforeAll, describe, expect, it } from 'vitest';
import { nodeCertificate } from '../../lib/x509/certificate-checks.js';
import { verifyChain } from '../../lib/x509/chain-verifier.js';
import type { ChainFailureKind, ChainVerifyOptions } from '../../lib/x509/chain-verifier.js';
import { parseCrl } from '../../lib/x509/crl.js';
import type { RevocationList } from '../../lib/x509/crl.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import type { CertificateInfo } from '../../lib/x509/certificate.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { signCertificate, x509 } from '../credentials/fixtures.js';

const HOUR = 3_600_000;
const one = (pem: string): CertificateInfo => parseCertificatesPem(pem)[0]!;

function crl(pem: string): RevocationList {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const parsed = parseCrl(der);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.crl;
}

let root: CertificateAuthority;
let intermediate: CertificateAuthority;
let impostor: CertificateAuthority;
let rootInfo: CertificateInfo;
let intermediateInfo: CertificateInfo;
let impostorInfo: CertificateInfo;
let direct: CertificateInfo;
let viaIntermediate: CertificateInfo;
let viaIntermediateSerial: string;

beforeAll(async () => {
  root = await CertificateAuthority.create({ commonName: 'Chain Root CA' });
  intermediate = await root.createIntermediate({ commonName: 'Chain Intermediate CA' });
  impostor = await CertificateAuthority.create({ commonName: 'Chain Root CA' });
  rootInfo = one(root.certPem);
  intermediateInfo = one(intermediate.certPem);
  impostorInfo = one(impostor.certPem);
  direct = one((await root.issue({ spiffeId: 'spiffe://chain.test/direct' })).certPem);
  const issued = await intermediate.issue({ spiffeId: 'spiffe://chain.test/via' });
  viaIntermediate = one(issued.certPem);
  viaIntermediateSerial = issued.serialNumber;
});

const now = (): ChainVerifyOptions => ({ now: new Date() });

describe('verifyChain: path building', () => {
  it.each<[string, () => [CertificateInfo, CertificateInfo[], CertificateInfo[]], () => string[]]>([
    ['a leaf issued by the root', () => [direct, [], [rootInfo]], () => [direct.subject, 'CN=Chain Root CA']],
    [
      'a leaf through an intermediate',
      () => [viaIntermediate, [intermediateInfo], [rootInfo]],
      () => [viaIntermediate.subject, 'CN=Chain Intermediate CA', 'CN=Chain Root CA'],
    ],
    [
      'an intermediate found in the bundle',
      () => [viaIntermediate, [], [intermediateInfo, rootInfo]],
      () => [viaIntermediate.subject, 'CN=Chain Intermediate CA', 'CN=Chain Root CA'],
    ],
    [
      'unrelated and repeated certificates around the chain',
      () => [viaIntermediate, [impostorInfo, rootInfo, intermediateInfo, intermediateInfo], [rootInfo]],
      () => [viaIntermediate.subject, 'CN=Chain Intermediate CA', 'CN=Chain Root CA'],
    ],
    [
      'a same-named impostor ahead of the real root',
      () => [direct, [], [impostorInfo, rootInfo]],
      () => [direct.subject, 'CN=Chain Root CA'],
    ],
    ['a self-signed root that is itself in the bundle', () => [rootInfo, [], [rootInfo]], () => ['CN=Chain Root CA']],
  ])('accepts %s', (_name, input, expected) => {
    const [leaf, intermediates, roots] = input();
    const result = verifyChain(leaf, intermediates, roots, now());
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.path.map((c) => c.subject)).toEqual(expected());
      expect(result.path[result.path.length - 1]!.fingerprint256).toBe(rootInfo.fingerprint256);
    }
  });

  it.each<[string, () => [CertificateInfo, CertificateInfo[], CertificateInfo[], ChainVerifyOptions], ChainFailureKind, RegExp]>([
    [
      'another root',
      () => [direct, [], [one(impostor.certPem)], now()],
      'no-path',
      /names "CN=Chain Root CA" as issuer, but no certificate of that name verifies its signature/,
    ],
    [
      'a missing intermediate',
      () => [viaIntermediate, [], [rootInfo], now()],
      'no-path',
      /no certificate in the chain or the trust bundle issued "spiffe:\/\/chain\.test\/via" \(issuer "CN=Chain Intermediate CA"\)/,
    ],
    [
      'a bundle with only the intermediate',
      () => [viaIntermediate, [], [intermediateInfo], now()],
      'no-path',
      /reaches "CN=Chain Intermediate CA" in the trust bundle but not its self-signed root "CN=Chain Root CA"/,
    ],
    [
      'a root only present among the intermediates',
      () => [viaIntermediate, [intermediateInfo, rootInfo], [impostorInfo], now()],
      'no-path',
      /"CN=Chain Root CA" is self-signed and not in the trust bundle/,
    ],
    [
      'a time after the intermediate expired',
      () => [viaIntermediate, [intermediateInfo], [rootInfo], { now: new Date(intermediateInfo.notAfter.getTime() + 1000) }],
      'expired',
      /expired at/,
    ],
    [
      'a time before the chain was issued',
      () => [direct, [], [rootInfo], { now: new Date(rootInfo.notBefore.getTime() - HOUR) }],
      'not-yet-valid',
      /is not valid before/,
    ],
    [
      'a depth limit below the path length',
      () => [viaIntermediate, [intermediateInfo], [rootInfo], { ...now(), maxDepth: 2 }],
      'no-path',
      /within 2 certificates/,
    ],
  ])('refuses %s', (_name, input, kind, reason) => {
    const [leaf, intermediates, roots, options] = input();
    const result = verifyChain(leaf, intermediates, roots, options);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.kind).toBe(kind);
      expect(result.reason).toMatch(reason);
    }
  });

  it('refuses an expired root of the bundle', async () => {
    const past = await CertificateAuthority.create({
      commonName: 'Old Root',
      notBefore: new Date(Date.now() - 48 * HOUR),
      notAfter: new Date(Date.now() - HOUR),
    });
    const leaf = one((await past.issue({ spiffeId: 'spiffe://chain.test/old' })).certPem);
    const result = verifyChain(leaf, [], [one(past.certPem)], now());
    expect(result).toMatchObject({ ok: false, kind: 'expired', reason: expect.stringMatching(/^"CN=Old Root" expired at /) });
  });

  it('applies the TLS purpose to untrusted intermediates only, as OpenSSL does', async () => {
    const serverOnly = await signCertificate(
      { certPem: root.certPem, keyPem: root.keyPem },
      { commonName: 'Server-only CA', isCa: true, keyUsage: x509.KeyUsageFlags.keyCertSign, extKeyUsage: ['1.3.6.1.5.5.7.3.1'] },
    );
    const leaf = await signCertificate(serverOnly, {
      commonName: 'leaf',
      isCa: false,
      keyUsage: x509.KeyUsageFlags.digitalSignature,
    });
    const [leafInfo, caInfo] = [one(leaf.certPem), one(serverOnly.certPem)];
    expect(verifyChain(leafInfo, [caInfo], [rootInfo], { ...now(), usages: ['serverAuth'] }).ok).toBe(true);
    expect(verifyChain(leafInfo, [caInfo], [rootInfo], { ...now(), usages: ['clientAuth'] })).toMatchObject({
      ok: false,
      kind: 'usage',
    });
    expect(verifyChain(leafInfo, [], [caInfo, rootInfo], { ...now(), usages: ['clientAuth'] }).ok).toBe(true);
  });

  it('caches Node certificates per parsed certificate', () => {
    expect(nodeCertificate(rootInfo)).toBe(nodeCertificate(rootInfo));
    const first = verifyChain(viaIntermediate, [intermediateInfo], [rootInfo], now());
    const second = verifyChain(viaIntermediate, [intermediateInfo], [rootInfo], now());
    expect(second).toEqual(first);
  });
});

describe('verifyChain: revocation', () => {
  let rootCrl: RevocationList;
  let intermediateCrl: RevocationList;

  beforeAll(async () => {
    rootCrl = crl(await root.createCrl([]));
    intermediateCrl = crl(await intermediate.createCrl([]));
  });

  const check = (crls: RevocationList[], at = new Date()) =>
    verifyChain(viaIntermediate, [intermediateInfo], [rootInfo], { now: at, crls });

  it('accepts a chain with a current CRL from every CA', () => {
    expect(check([rootCrl, intermediateCrl]).ok).toBe(true);
  });

  it('skips revocation when no CRL is given', () => {
    expect(check([]).ok).toBe(true);
  });

  it('refuses a leaf revoked by its issuer', async () => {
    const revoking = crl(await intermediate.createCrl([viaIntermediateSerial]));
    expect(check([rootCrl, revoking])).toMatchObject({
      ok: false,
      kind: 'revoked',
      certificate: viaIntermediate,
      reason: `"spiffe://chain.test/via" (serial ${viaIntermediate.serialNumber}) is revoked by the CRL of "CN=Chain Intermediate CA"`,
    });
  });

  it('refuses an intermediate revoked by the root', async () => {
    const revoking = crl(await root.createCrl([intermediateInfo.serialNumber.toUpperCase()]));
    expect(check([revoking, intermediateCrl])).toMatchObject({ ok: false, kind: 'revoked', certificate: intermediateInfo });
  });

  it('uses the newest current CRL of an issuer', async () => {
    const older = crl(await intermediate.createCrl([viaIntermediateSerial], { thisUpdate: new Date(Date.now() - 2 * HOUR) }));
    const newer = crl(await intermediate.createCrl([], { thisUpdate: new Date(Date.now() - HOUR) }));
    expect(check([rootCrl, older, newer]).ok).toBe(true);
  });

  it.each<[string, () => RevocationList[], ChainFailureKind, RegExp]>([
    [
      'a missing intermediate CRL',
      () => [rootCrl],
      'crl-missing',
      /^no CRL from "CN=Chain Intermediate CA", needed to check "spiffe:\/\/chain\.test\/via"/,
    ],
    [
      'a missing root CRL',
      () => [intermediateCrl],
      'crl-missing',
      /^no CRL from "CN=Chain Root CA", needed to check "CN=Chain Intermediate CA"/,
    ],
  ])('refuses %s', (_name, crls, kind, reason) => {
    const result = check(crls());
    expect(result).toMatchObject({ ok: false, kind });
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it('ignores a CRL from a same-named CA with another key', async () => {
    const forged = crl(await impostor.createCrl([]));
    expect(check([forged, intermediateCrl])).toMatchObject({ ok: false, kind: 'crl-missing' });
  });

  it('refuses an expired CRL and one not valid yet', async () => {
    const expired = crl(
      await intermediate.createCrl([], { thisUpdate: new Date(Date.now() - 3 * HOUR), nextUpdate: new Date(Date.now() - HOUR) }),
    );
    expect(check([rootCrl, expired])).toMatchObject({
      ok: false,
      kind: 'crl-expired',
      reason: expect.stringMatching(/\(nextUpdate\)$/),
    });
    const future = crl(await intermediate.createCrl([], { thisUpdate: new Date(Date.now() + HOUR) }));
    expect(check([rootCrl, future])).toMatchObject({ ok: false, kind: 'crl-not-yet-valid' });
  });
});

describe('parseCrl', () => {
  it.each<[string, Uint8Array, RegExp]>([
    ['empty input', new Uint8Array(0), /not a DER-encoded X\.509 CRL/],
    ['a certificate', Buffer.from('3003020101', 'hex'), /not a DER-encoded X\.509 CRL/],
  ])('refuses %s', (_name, der, reason) => {
    const parsed = parseCrl(der);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it('reads issuer, dates and revoked serials', async () => {
    const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000 - HOUR);
    const parsed = crl(
      await root.createCrl(['00:0A', 'ff'], { thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + 2 * HOUR) }),
    );
    expect(parsed.issuer).toBe('CN=Chain Root CA');
    expect(parsed.thisUpdate).toEqual(thisUpdate);
    expect(parsed.nextUpdate).toEqual(new Date(thisUpdate.getTime() + 2 * HOUR));
    expect([...parsed.revokedSerials].sort()).toEqual(['0a', 'ff']);
  });
});
