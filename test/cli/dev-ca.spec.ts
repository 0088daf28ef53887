import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectCertificate } from '../../lib/cli/certificate-inspection.js';
import { ensureDevCertificates, initDevCa, issueDevCertificate, normalizeDevCertificateRequest } from '../../lib/cli/dev-ca.js';
import type { DevCertificateResult, IssueDevCertificateOptions } from '../../lib/cli/dev-ca.js';
import { loadCredentials, resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';
import { CredentialsError, MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, parseCertificatesPem } from '../../lib/x509/certificate.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { writeKubernetesSecret } from '../../lib/credentials/secret-layout.js';

const TD = 'shop.test';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const HOUR_MS = 3_600_000;

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nestjs-mtls-dev-ca-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh dev CA directory per test, so tests stay independent. */
function freshDir(): string {
  counter += 1;
  return join(root, `d${counter}`);
}

function openssl(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) throw result.error;
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** Body of a PEM without armour or line breaks: what must never appear in output. */
function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----|\s/g, '');
}

async function dataTarget(setDir: string): Promise<string> {
  return readlink(join(setDir, '..data'));
}

async function loadDevCa(dir: string): Promise<CertificateAuthority> {
  return CertificateAuthority.load(
    await readFile(join(dir, 'ca', 'ca.crt'), 'utf8'),
    await readFile(join(dir, 'ca', 'ca.key'), 'utf8'),
  );
}

async function caught(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('ensureDevCertificates', () => {
  let dir: string;
  let first: Awaited<ReturnType<typeof ensureDevCertificates>>;

  beforeAll(async () => {
    dir = freshDir();
    first = await ensureDevCertificates({
      dir,
      trustDomain: TD,
      identities: [
        { name: 'orders', spiffeId: ORDERS, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] },
        { name: 'inventory', spiffeId: INVENTORY },
      ],
    });
  });

  it('creates the CA and one set per identity, in order', () => {
    expect(first.ca.action).toBe('created');
    expect(first.ca.ca.trustDomain).toBe(TD);
    expect(first.certificates.map((c) => [c.name, c.action, c.reason])).toEqual([
      ['orders', 'issued', 'new'],
      ['inventory', 'issued', 'new'],
    ]);
    expect(first.certificates[0]!.dir).toBe(join(dir, 'orders'));
  });

  it.each([
    ['orders', ORDERS],
    ['inventory', INVENTORY],
  ])('the %s set passes the package startup validation', async (name, spiffeId) => {
    const credentials = await loadCredentials(resolveCredentialFiles({ dir: join(dir, name) }));
    expect(credentials.identity.spiffeId).toBe(spiffeId);
    expect(credentials.files.secretDir).toBe(join(dir, name));
    expect(credentials.warnings).toEqual([]);
  });

  it.each([
    ['orders', 'sslserver'],
    ['orders', 'sslclient'],
    ['inventory', 'sslserver'],
    ['inventory', 'sslclient'],
  ])('the %s set passes openssl verify -purpose %s against its ca.crt and the CA', (name, purpose) => {
    const setDir = join(dir, name);
    for (const caFile of [join(setDir, 'ca.crt'), join(dir, 'ca', 'ca.crt')]) {
      const result = openssl(['verify', '-purpose', purpose, '-CAfile', caFile, join(setDir, 'tls.crt')]);
      expect(result.output).toContain(': OK');
      expect(result.ok).toBe(true);
    }
  });

  it('writes X509-SVIDs: ECDSA P-256, one URI SAN, serverAuth + clientAuth, digitalSignature only, not a CA', async () => {
    const [leaf, ...rest] = parseCertificatesPem(await readFile(join(dir, 'orders', 'tls.crt'), 'utf8'));
    expect(rest).toEqual([]);
    expect(leaf!.uris).toEqual([ORDERS]);
    expect(leaf!.dnsNames).toEqual(['localhost']);
    expect(leaf!.ipAddresses).toEqual(['127.0.0.1']);
    expect(leaf!.isCa).toBe(false);
    expect(leaf!.extKeyUsage).toEqual([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]);
    expect(leaf!.keyUsageCritical).toBe(true);
    expect(Object.entries(leaf!.keyUsage!).filter(([, set]) => set)).toEqual([['digitalSignature', true]]);
    // X509-SVID §3.1: with an empty subject the SAN extension must be critical.
    expect(leaf!.subject).toBe('');
    expect(leaf!.subjectAltNameCritical).toBe(true);
    const text = openssl(['x509', '-noout', '-text', '-in', join(dir, 'orders', 'tls.crt')]).output;
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(leaf!.notAfter.getTime() - Date.now()).toBeGreaterThan(24 * HOUR_MS - 60_000);
    expect(leaf!.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(24 * HOUR_MS);
  });

  it('keeps private keys private: tls.key and ca.key mode 0600, directories 0700', async () => {
    expect((await stat(join(dir, 'orders', 'tls.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'ca', 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'ca'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'orders'))).mode & 0o777).toBe(0o700);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('writes the Kubernetes Secret layout: visible files are links into ..data', async () => {
    for (const file of ['tls.crt', 'tls.key', 'ca.crt']) {
      const path = join(dir, 'orders', file);
      expect((await lstat(path)).isSymbolicLink()).toBe(true);
      expect(await readlink(path)).toBe(`..data/${file}`);
    }
    expect(await readFile(join(dir, 'orders', 'ca.crt'), 'utf8')).toBe(first.ca.ca.rootPem);
  });

  it('keeps good certificates on a second run, without rewriting them', async () => {
    const targetBefore = await dataTarget(join(dir, 'orders'));
    const again = await ensureDevCertificates({
      dir,
      trustDomain: TD,
      identities: [
        { name: 'orders', spiffeId: ORDERS, dnsNames: ['LOCALHOST', 'localhost'], ipAddresses: ['127.0.0.1'] },
        { name: 'inventory', spiffeId: INVENTORY },
      ],
    });
    expect(again.ca.action).toBe('loaded');
    expect(again.ca.ca.fingerprint256).toBe(first.ca.ca.fingerprint256);
    expect(again.certificates.map((c) => [c.action, c.reason])).toEqual([
      ['kept', 'valid'],
      ['kept', 'valid'],
    ]);
    expect(again.certificates.map((c) => c.fingerprint256)).toEqual(first.certificates.map((c) => c.fingerprint256));
    expect(again.certificates[0]!.detail).toMatch(/^still valid for (?:23h5\dm|1d0h)$/);
    expect(await dataTarget(join(dir, 'orders'))).toBe(targetBefore);
  });

  it('refuses two identities with one name before writing anything', async () => {
    const other = freshDir();
    const error = await caught(
      ensureDevCertificates({
        dir: other,
        trustDomain: TD,
        identities: [
          { name: 'orders', spiffeId: ORDERS },
          { name: 'orders', spiffeId: INVENTORY },
        ],
      }),
    );
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error.message).toBe('identities: the name "orders" is used twice; each set needs its own folder');
    await expect(stat(other)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the issued certificates authenticate both sides of a real mTLS connection', async () => {
    const [server, client] = await Promise.all(
      ['orders', 'inventory'].map(async (name) => ({
        cert: await readFile(join(dir, name, 'tls.crt')),
        key: await readFile(join(dir, name, 'tls.key')),
        ca: await readFile(join(dir, name, 'ca.crt')),
      })),
    );
    const listener = tls.createServer({ ...server!, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.end(socket.getPeerX509Certificate()?.subjectAltName ?? 'none');
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    try {
      const socket = tls.connect({
        ...client!,
        host: '127.0.0.1',
        port: (listener.address() as AddressInfo).port,
        checkServerIdentity: () => undefined,
      });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(true);
      expect(socket.getPeerX509Certificate()?.subjectAltName).toContain(`URI:${ORDERS}`);
      let received = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
      await once(socket, 'end');
      expect(received).toBe(`URI:${INVENTORY}`);
      socket.destroy();
    } finally {
      listener.close();
    }
  });
});

describe('issueDevCertificate re-issues what is no longer good', () => {
  const orders = (dir: string, extra: Partial<IssueDevCertificateOptions> = {}): Promise<DevCertificateResult> =>
    issueDevCertificate({ dir, name: 'orders', spiffeId: ORDERS, ...extra });

  it('creates the CA for the SPIFFE ID trust domain when there is none, and says so', async () => {
    const dir = freshDir();
    const result = await orders(dir);
    expect(result.createdCa?.action).toBe('created');
    expect(result.createdCa?.ca.trustDomain).toBe(TD);
    expect((await orders(dir)).createdCa).toBeUndefined();
  });

  it('re-issues a certificate with less than a third of its lifetime left', async () => {
    const dir = freshDir();
    // 10 s from now, backdated 1 min: 10 s of a 70 s lifetime are left, under a third.
    const short = await orders(dir, { validityMs: 10_000 });
    expect(short.action).toBe('issued');
    const again = await orders(dir);
    expect([again.action, again.reason]).toEqual(['issued', 'expiring']);
    expect(again.detail).toMatch(/^only 0m\d+s left of 1m\d+s; renewed once less than a third is left$/);
    expect(again.fingerprint256).not.toBe(short.fingerprint256);
    const credentials = await loadCredentials(resolveCredentialFiles({ dir: join(dir, 'orders') }));
    expect(credentials.leaf.fingerprint256).toBe(again.fingerprint256);
  });

  it('re-issues a certificate whose lifetime is not the --validity asked for, and keeps it when none is asked', async () => {
    const dir = freshDir();
    const day = await orders(dir);
    expect((await orders(dir)).action).toBe('kept');
    expect((await orders(dir, { validityMs: 24 * HOUR_MS })).action).toBe('kept');
    const week = await orders(dir, { validityMs: 7 * 24 * HOUR_MS });
    expect([week.action, week.reason, week.detail]).toEqual([
      'issued',
      'validity-changed',
      'valid for 1d0h, requested --validity 7d0h',
    ]);
    expect(week.notAfter.getTime() - day.notAfter.getTime()).toBeGreaterThan(6 * 24 * HOUR_MS - 60_000);
    expect((await orders(dir, { validityMs: 7 * 24 * HOUR_MS })).action).toBe('kept');
    expect((await orders(dir)).action).toBe('kept'); // no --validity: the week-long certificate is still good
  });

  it('keeps a certificate the dev CA expiry capped when the request would be capped alike', async () => {
    const dir = freshDir();
    await initDevCa({ dir, trustDomain: TD, validityMs: 10 * HOUR_MS });
    expect((await orders(dir, { validityMs: 24 * HOUR_MS })).action).toBe('issued');
    expect((await orders(dir, { validityMs: 48 * HOUR_MS })).action).toBe('kept');
  });

  it('re-issues an expired certificate in one ..data swap, removing the old payload', async () => {
    const dir = freshDir();
    await orders(dir);
    const setDir = join(dir, 'orders');
    const ca = await loadDevCa(dir);
    const expired = await ca.issue({
      spiffeId: ORDERS,
      notBefore: new Date(Date.now() - 3 * HOUR_MS),
      notAfter: new Date(Date.now() - HOUR_MS),
    });
    await writeKubernetesSecret(
      setDir,
      { 'tls.crt': expired.chainPem, 'tls.key': expired.keyPem, 'ca.crt': ca.rootPem },
      { mode: 0o600 },
    );
    const oldTarget = await dataTarget(setDir);

    const result = await orders(dir);
    expect([result.action, result.reason]).toEqual(['issued', 'expired']);
    expect(result.detail).toMatch(/^expired 1h\dm ago \(\d{4}-/);
    const newTarget = await dataTarget(setDir);
    expect(newTarget).not.toBe(oldTarget);
    await expect(stat(join(setDir, oldTarget))).rejects.toMatchObject({ code: 'ENOENT' });
    const credentials = await loadCredentials(resolveCredentialFiles({ dir: setDir }));
    expect(credentials.leaf.fingerprint256).toBe(result.fingerprint256);
  });

  it.each<[string, Partial<IssueDevCertificateOptions>, string, RegExp]>([
    [
      'another SPIFFE ID',
      { spiffeId: INVENTORY },
      'spiffe-id-changed',
      /^issued for spiffe:\/\/shop\.test\/ns\/shop\/sa\/orders, requested spiffe:\/\/shop\.test\/ns\/shop\/sa\/inventory$/,
    ],
    [
      'other SANs',
      { dnsNames: ['orders.shop.svc'] },
      'sans-changed',
      /^DNS\/IP SANs are \(none\), requested DNS:orders\.shop\.svc$/,
    ],
    [
      'another key algorithm',
      { keyAlgorithm: 'ECDSA-P384' },
      'key-algorithm-changed',
      /^the key is ECDSA-P256, requested ECDSA-P384$/,
    ],
    ['force', { force: true }, 'forced', /^re-issue requested \(force\)$/],
  ])('re-issues for %s', async (_label, change, reason, detail) => {
    const dir = freshDir();
    const before = await orders(dir);
    const after = await orders(dir, change);
    expect([after.action, after.reason]).toEqual(['issued', reason]);
    expect(after.detail).toMatch(detail);
    expect(after.fingerprint256).not.toBe(before.fingerprint256);
  });

  it('re-issues after the CA was replaced (certificates chain to the current CA)', async () => {
    const dir = freshDir();
    const before = await orders(dir);
    const replaced = await initDevCa({ dir, force: true });
    expect(replaced.action).toBe('replaced');
    expect(replaced.ca.trustDomain).toBe(TD);
    const after = await orders(dir);
    expect([after.action, after.reason]).toEqual(['issued', 'ca-changed']);
    expect(after.fingerprint256).not.toBe(before.fingerprint256);
    expect(openssl(['verify', '-CAfile', replaced.certFile, join(dir, 'orders', 'tls.crt')]).ok).toBe(true);
  });

  it('re-issues a set whose key does not match its certificate', async () => {
    const dir = freshDir();
    await orders(dir);
    const ca = await loadDevCa(dir);
    const [a, b] = [await ca.issue({ spiffeId: ORDERS }), await ca.issue({ spiffeId: ORDERS })];
    await writeKubernetesSecret(
      join(dir, 'orders'),
      { 'tls.crt': a.chainPem, 'tls.key': b.keyPem, 'ca.crt': ca.rootPem },
      { mode: 0o600 },
    );
    const result = await orders(dir);
    expect([result.action, result.reason, result.detail]).toEqual(['issued', 'key-mismatch', 'tls.key does not match tls.crt']);
  });

  it.each(['ECDSA-P384', 'RSA-2048', 'Ed25519'] as const)(
    'issues %s keys that pass startup validation and openssl verify',
    async (keyAlgorithm) => {
      const dir = freshDir();
      const result = await orders(dir, { keyAlgorithm });
      const credentials = await loadCredentials(resolveCredentialFiles({ dir: result.dir }));
      expect(credentials.identity.spiffeId).toBe(ORDERS);
      expect(openssl(['verify', '-CAfile', result.files.ca, result.files.cert]).ok).toBe(true);
      expect((await orders(dir, { keyAlgorithm })).action).toBe('kept');
    },
  );

  it('warns when the SPIFFE ID is outside the CA trust domain, and still issues it', async () => {
    const dir = freshDir();
    await initDevCa({ dir, trustDomain: TD });
    const result = await issueDevCertificate({ dir, name: 'stranger', spiffeId: 'spiffe://elsewhere.test/ns/shop/sa/orders' });
    expect(result.action).toBe('issued');
    expect(result.warnings).toEqual([
      'spiffe://elsewhere.test/ns/shop/sa/orders is outside the dev CA\'s trust domain "shop.test": services that trust ' +
        'this CA accept its handshake, and only authorization refuses it (as for a federated trust domain)',
    ]);
  });

  it('shortens the validity to the CA expiry and says so', async () => {
    const dir = freshDir();
    const ca = await initDevCa({ dir, trustDomain: TD, validityMs: 10 * HOUR_MS });
    const result = await orders(dir, { validityMs: 24 * HOUR_MS });
    expect(result.notAfter).toEqual(ca.ca.notAfter);
    expect(result.warnings).toContain(`validity shortened to the dev CA's own expiry, ${ca.ca.notAfter.toISOString()}`);
  });

  it('refuses to write over files it did not write', async () => {
    const dir = freshDir();
    await mkdir(join(dir, 'orders'), { recursive: true });
    await writeFile(join(dir, 'orders', 'tls.crt'), 'a real certificate');
    const error = await caught(orders(dir));
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error.message).toBe(
      `${join(dir, 'orders', 'tls.crt')} was not written by the dev CA (it is not a link into ..data); move it away or choose another name`,
    );
    expect(await readFile(join(dir, 'orders', 'tls.crt'), 'utf8')).toBe('a real certificate');
  });
});

describe('initDevCa never overwrites a CA key by accident', () => {
  it('loads the existing CA instead of creating another', async () => {
    const dir = freshDir();
    const created = await initDevCa({ dir, trustDomain: TD });
    const loaded = await initDevCa({ dir, trustDomain: TD });
    const withoutTrustDomain = await initDevCa({ dir });
    expect([created.action, loaded.action, withoutTrustDomain.action]).toEqual(['created', 'loaded', 'loaded']);
    expect(loaded.ca.fingerprint256).toBe(created.ca.fingerprint256);
    expect(withoutTrustDomain.warnings).toEqual([]);
  });

  it('refuses a CA of another trust domain without force, and replaces it with force', async () => {
    const dir = freshDir();
    const created = await initDevCa({ dir, trustDomain: TD });
    const keyBefore = await readFile(created.keyFile, 'utf8');
    const error = await caught(initDevCa({ dir, trustDomain: 'other.test' }));
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect((error as MtlsConfigError).code).toBe('ERR_MTLS_CONFIG_INVALID');
    expect(error.message).toBe(
      `refusing to overwrite the dev CA key ${created.keyFile}: it belongs to the CA of trust domain "shop.test", not ` +
        '"other.test". Use another directory, or replace the CA with `nestjs-mtls dev-ca init --force --trust-domain other.test` ' +
        '(every certificate it issued must then be re-issued)',
    );
    expect(await readFile(created.keyFile, 'utf8')).toBe(keyBefore);

    const replaced = await initDevCa({ dir, trustDomain: 'other.test', force: true });
    expect(replaced.action).toBe('replaced');
    expect(replaced.ca.trustDomain).toBe('other.test');
    expect(replaced.ca.fingerprint256).not.toBe(created.ca.fingerprint256);
    expect(await readFile(created.keyFile, 'utf8')).not.toBe(keyBefore);
    expect((await stat(replaced.keyFile)).mode & 0o777).toBe(0o600);
  });

  it.each<[string, (dir: string) => Promise<void>, string, RegExp]>([
    [
      'a missing certificate',
      (dir) => rm(join(dir, 'ca', 'ca.crt')),
      'ERR_MTLS_CREDENTIALS_UNREADABLE',
      /ca\.crt \(ca\): the dev CA is incomplete: .*ca\.key exists but .*ca\.crt does not\. Fix: restore it, or replace the CA with `nestjs-mtls dev-ca init --force`/,
    ],
    [
      'a certificate that is not PEM',
      (dir) => writeFile(join(dir, 'ca', 'ca.crt'), 'garbage'),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      /ca\.crt \(certificate\): no CERTIFICATE PEM block found\. Fix: .*; or replace the CA with `nestjs-mtls dev-ca init --force`/,
    ],
    [
      'a key of another CA',
      async (dir) => writeFile(join(dir, 'ca', 'ca.key'), (await CertificateAuthority.create()).keyPem),
      'ERR_MTLS_KEY_MISMATCH',
      /ca\.key \(key\): the private key does not match the CA certificate\. Fix: .*; or replace the CA with `nestjs-mtls dev-ca init --force`/,
    ],
  ])('reports %s instead of replacing the CA', async (_label, damage, code, message) => {
    const dir = freshDir();
    await initDevCa({ dir, trustDomain: TD });
    await damage(dir);
    const keyBefore = await readFile(join(dir, 'ca', 'ca.key'), 'utf8');
    const error = await caught(initDevCa({ dir, trustDomain: TD }));
    expect(error).toBeInstanceOf(CredentialsError);
    expect((error as CredentialsError).code).toBe(code);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain(pemBody(keyBefore).slice(0, 40));
    expect(await readFile(join(dir, 'ca', 'ca.key'), 'utf8')).toBe(keyBefore);
    await expect(issueDevCertificate({ dir, name: 'orders', spiffeId: ORDERS })).rejects.toMatchObject({ code });
  });

  it('reports an expired CA instead of silently replacing it', async () => {
    const dir = freshDir();
    const expired = await CertificateAuthority.create({
      trustDomain: TD,
      notBefore: new Date(Date.now() - 48 * HOUR_MS),
      notAfter: new Date(Date.now() - 2 * HOUR_MS),
    });
    await mkdir(join(dir, 'ca'), { recursive: true });
    await writeFile(join(dir, 'ca', 'ca.crt'), expired.certPem);
    await writeFile(join(dir, 'ca', 'ca.key'), expired.keyPem, { mode: 0o600 });
    const error = await caught(initDevCa({ dir, trustDomain: TD }));
    expect((error as CredentialsError).code).toBe('ERR_MTLS_CERT_EXPIRED');
    expect(error.message).toMatch(
      /ca\.crt \(ca\): the dev CA expired 2h\dm ago \(.*\)\. Fix: replace the CA with `nestjs-mtls dev-ca init --force`, then re-issue its certificates/,
    );
    await expect(issueDevCertificate({ dir, name: 'orders', spiffeId: ORDERS })).rejects.toMatchObject({
      code: 'ERR_MTLS_CERT_EXPIRED',
    });
    expect(await readFile(join(dir, 'ca', 'ca.key'), 'utf8')).toBe(expired.keyPem);
  });

  it('warns about a CA that expires soon, and about a CA key others can read', async () => {
    const dir = freshDir();
    // A year-long CA in its last 10 days (warned under 30 days, or under a third of a short CA's lifetime).
    const soon = await CertificateAuthority.create({
      trustDomain: TD,
      notBefore: new Date(Date.now() - 355 * 24 * HOUR_MS),
      // Half an hour short of 10 days: the time left reads 9d23h however the milliseconds round.
      notAfter: new Date(Date.now() + 10 * 24 * HOUR_MS - 30 * 60_000),
    });
    await mkdir(join(dir, 'ca'), { recursive: true });
    await writeFile(join(dir, 'ca', 'ca.crt'), soon.certPem);
    await writeFile(join(dir, 'ca', 'ca.key'), soon.keyPem, { mode: 0o644 });
    const result = await initDevCa({ dir, trustDomain: TD });
    expect(result.action).toBe('loaded');
    expect(result.warnings).toEqual([
      expect.stringMatching(/^the dev CA expires in 9d23h \(.*\); replace the CA with `nestjs-mtls dev-ca init --force`/),
      `${join(dir, 'ca', 'ca.key')} is readable by other users (mode 0644); run chmod 600 on it`,
    ]);
    const issued = await issueDevCertificate({ dir, name: 'orders', spiffeId: ORDERS });
    expect(issued.warnings).toEqual(result.warnings);
  });

  it('needs a trust domain to create a CA', async () => {
    const dir = freshDir();
    for (const force of [false, true]) {
      const error = await caught(initDevCa({ dir, force }));
      expect(error).toBeInstanceOf(MtlsConfigError);
      expect(error.message).toBe(
        `there is no dev CA in ${join(dir, 'ca')} yet: pass trustDomain (--trust-domain, e.g. shop.test) to create one`,
      );
    }
  });

  it('creates exactly one CA when two processes race to create it', async () => {
    const dir = freshDir();
    const results = await Promise.all([1, 2, 3].map(() => initDevCa({ dir, trustDomain: TD })));
    expect(new Set(results.map((r) => r.ca.fingerprint256)).size).toBe(1);
    expect(results.filter((r) => r.action === 'created')).toHaveLength(1);
  });
});

describe('normalizeDevCertificateRequest', () => {
  const base = { name: 'orders', spiffeId: ORDERS };

  it('lower-cases DNS names, canonicalises IPs and drops duplicates', () => {
    expect(
      normalizeDevCertificateRequest({
        ...base,
        dnsNames: ['Orders.Shop.SVC', 'orders.shop.svc', '*.shop.svc'],
        ipAddresses: ['::0:1', '::1', '10.0.0.1'],
      }),
    ).toEqual({
      name: 'orders',
      spiffeId: ORDERS,
      trustDomain: TD,
      dnsNames: ['orders.shop.svc', '*.shop.svc'],
      ipAddresses: ['::1', '10.0.0.1'],
      validityMs: 24 * HOUR_MS,
      validityRequested: false,
      keyAlgorithm: 'ECDSA-P256',
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'a name that climbs out',
      { name: '../x' },
      'name: "../x" must be a folder name: letters, digits, ".", "-" and "_", starting and ending with a letter or digit, at most 63 characters',
    ],
    ['the CA folder name', { name: 'ca' }, 'name: "ca" is the dev CA\'s own folder; choose another name'],
    [
      'a SPIFFE ID with another scheme',
      { spiffeId: 'https://shop.test/orders' },
      'spiffeId: "https://shop.test/orders" is not a SPIFFE ID: scheme is missing or invalid',
    ],
    [
      'a SPIFFE ID with upper case',
      { spiffeId: 'spiffe://Shop.test/a' },
      'spiffeId: "spiffe://Shop.test/a" is not a SPIFFE ID: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [
      'a trust-domain-only SPIFFE ID',
      { spiffeId: 'spiffe://shop.test' },
      'spiffeId: "spiffe://shop.test" has no path; a workload ID looks like spiffe://shop.test/ns/shop/sa/orders',
    ],
    [
      'a DNS name with a space',
      { dnsNames: ['bad name'] },
      'dnsNames: "bad name" is not a DNS name (labels of letters, digits, "-" and "_", e.g. orders.shop.svc)',
    ],
    [
      'a wildcard in the middle',
      { dnsNames: ['a.*.svc'] },
      'dnsNames: "a.*.svc" is not a DNS name (labels of letters, digits, "-" and "_", e.g. orders.shop.svc)',
    ],
    ['an IP with a zone', { ipAddresses: ['fe80::1%eth0'] }, 'ipAddresses: "fe80::1%eth0" is not an IPv4 or IPv6 address'],
    ['a short IPv4', { ipAddresses: ['1.2.3'] }, 'ipAddresses: "1.2.3" is not an IPv4 or IPv6 address'],
    ['a zero validity', { validityMs: 0 }, 'validityMs: must be a positive whole number of milliseconds, got 0'],
    [
      'an unknown key algorithm',
      { keyAlgorithm: 'DSA' },
      'keyAlgorithm: "DSA" is not one of ECDSA-P256, ECDSA-P384, RSA-2048, Ed25519',
    ],
    [
      'a control character',
      { spiffeId: 'spiffe://shop.test/a\u001b[2J' },
      'spiffeId: "spiffe://shop.test/a\\x1b[2J" is not a SPIFFE ID: path segment characters are limited to letters, numbers, dots, dashes, and underscores',
    ],
  ])('refuses %s', (_label, change, message) => {
    expect(() => normalizeDevCertificateRequest({ ...base, ...change } as typeof base)).toThrow(
      expect.objectContaining({ name: 'MtlsConfigError', code: 'ERR_MTLS_CONFIG_INVALID', message }),
    );
  });
});

describe('inspectCertificate', () => {
  let dir: string;
  let orders: DevCertificateResult;
  let inventory: DevCertificateResult;

  beforeAll(async () => {
    dir = freshDir();
    ({
      certificates: [orders, inventory],
    } = (await ensureDevCertificates({
      dir,
      trustDomain: TD,
      identities: [
        { name: 'orders', spiffeId: ORDERS, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] },
        { name: 'inventory', spiffeId: INVENTORY },
      ],
    })) as unknown as { certificates: [DevCertificateResult, DevCertificateResult] });
  });

  it('describes the certificate and says the key matches, without the key', async () => {
    const now = new Date();
    const inspection = await inspectCertificate({ certFile: orders.files.cert, keyFile: orders.files.key, now });
    expect(inspection).toMatchObject({
      certFile: orders.files.cert,
      certificatesInFile: 1,
      subject: '',
      issuer: 'CN=nestjs-mtls dev CA shop.test',
      spiffeId: ORDERS,
      spiffeIdProblem: undefined,
      uris: [ORDERS],
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      isCa: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      publicKey: 'ECDSA P-256',
      validity: 'valid',
      serialNumber: orders.serialNumber,
      fingerprint256: orders.fingerprint256,
      keyFile: orders.files.key,
      keyMatches: true,
    });
    expect(inspection.remainingMs).toBe(orders.notAfter.getTime() - now.getTime());
    const key = await readFile(orders.files.key, 'utf8');
    expect(JSON.stringify(inspection)).not.toContain(pemBody(key).slice(0, 40));
  });

  it('reports the same SHA-256 fingerprint as openssl', async () => {
    const inspection = await inspectCertificate({ certFile: orders.files.cert });
    const result = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', orders.files.cert]);
    expect(result.output.trim()).toBe(`sha256 Fingerprint=${inspection.fingerprint256}`);
    expect(inspection.keyMatches).toBeUndefined();
  });

  it('says when the key belongs to another certificate', async () => {
    const inspection = await inspectCertificate({ certFile: orders.files.cert, keyFile: inventory.files.key });
    expect(inspection.keyMatches).toBe(false);
  });

  it.each([
    ['expired', new Date(Date.now() + 48 * HOUR_MS)],
    ['not-yet-valid', new Date(Date.now() - 48 * HOUR_MS)],
  ])('judges validity at the given time: %s', async (validity, now) => {
    expect((await inspectCertificate({ certFile: orders.files.cert, now })).validity).toBe(validity);
  });

  it('describes a CA certificate, which has no workload SPIFFE ID', async () => {
    const inspection = await inspectCertificate({ certFile: join(dir, 'ca', 'ca.crt') });
    expect(inspection).toMatchObject({
      isCa: true,
      uris: ['spiffe://shop.test'],
      spiffeId: 'spiffe://shop.test',
      keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
      extKeyUsage: undefined,
    });
  });

  it.each<[string, () => InspectArgs, string, RegExp]>([
    [
      'a missing file',
      () => ({ certFile: join(dir, 'nope.pem') }),
      'ERR_MTLS_CREDENTIALS_UNREADABLE',
      /nope\.pem \(certificate\): the file does not exist\. Fix: check the path/,
    ],
    [
      'a key given as the certificate',
      () => ({ certFile: orders.files.key }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      /tls\.key \(certificate\): no "-----BEGIN CERTIFICATE-----" block found\. Fix: this file holds a private key: pass the certificate file, and give the key with --key$/,
    ],
    [
      'a certificate given as the key',
      () => ({ certFile: orders.files.cert, keyFile: orders.files.cert }),
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      /tls\.crt \(key\): not an unencrypted PEM private key/,
    ],
    [
      'a directory',
      () => ({ certFile: orders.dir }),
      'ERR_MTLS_CREDENTIALS_UNREADABLE',
      /orders \(certificate\): the path is a directory\. Fix: name the PEM file inside it, e\.g\. tls\.crt$/,
    ],
  ])('names the file and the fix for %s', async (_label, args, code, message) => {
    const error = await caught(inspectCertificate(args()));
    expect(error).toBeInstanceOf(CredentialsError);
    expect((error as CredentialsError).code).toBe(code);
    expect(error.message).toMatch(message);
  });
});

type InspectArgs = Parameters<typeof inspectCertificate>[0];
