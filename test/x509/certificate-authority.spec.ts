import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialsError, MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import type { IssueOptions, IssuedCertificate, KeyAlgorithm } from '../../lib/x509/certificate-authority.js';

const TD = 'shop.test';
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

let dir: string;
let fileCounter = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nestjs-mtls-pki-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function tempFile(content: string): string {
  fileCounter += 1;
  const path = join(dir, `f${fileCounter}.pem`);
  writeFileSync(path, content);
  return path;
}

/** Runs openssl; returns success and stdout + stderr (where `verify OK` and errors go) instead of throwing. */
function openssl(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) throw result.error;
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

function opensslVerify(
  rootPem: string,
  leafPem: string,
  extra: { untrusted?: string; crl?: string } = {},
): { ok: boolean; output: string } {
  const args = ['verify', '-CAfile', tempFile(rootPem)];
  if (extra.untrusted) args.push('-untrusted', tempFile(extra.untrusted));
  if (extra.crl) args.push('-crl_check', '-CRLfile', tempFile(extra.crl));
  return openssl([...args, tempFile(leafPem)]);
}

function opensslText(pem: string): string {
  const result = openssl(['x509', '-noout', '-text', '-in', tempFile(pem)]);
  expect(result.ok, result.output).toBe(true);
  return result.output;
}

/** The text openssl prints under an extension heading (the line after it). */
function extensionText(text: string, heading: string): string | undefined {
  const lines = text.split('\n');
  const index = lines.findIndex((line) => line.trim().startsWith(heading));
  return index === -1 ? undefined : `${lines[index]!.trim()} | ${lines[index + 1]!.trim()}`;
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
}

/** Body of a PEM without armour or line breaks: what must never leak. */
function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----|\s/g, '');
}

function expectVerifiesWithNode(leaf: IssuedCertificate, issuerPem: string): void {
  const cert = new X509Certificate(leaf.certPem);
  const issuer = new X509Certificate(issuerPem);
  expect(cert.checkIssued(issuer)).toBe(true);
  expect(cert.verify(issuer.publicKey)).toBe(true);
  expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
}

interface HandshakeResult {
  /** What the client read before the connection closed. */
  readonly received: string;
  readonly serverAuthorized: boolean;
  readonly serverAuthorizationError: string | undefined;
  /** Fingerprint of the certificate the server saw, when the handshake got that far. */
  readonly clientFingerprint: string | undefined;
}

/**
 * A real mTLS handshake on 127.0.0.1 with the server configured as the package configures it
 * (`requestCert` + `rejectUnauthorized`). The server's TLSSocket is taken from the `keylog` event,
 * because a rejected socket is destroyed before `secureConnection` and its `authorizationError` is otherwise unseen.
 */
async function mtlsHandshake(
  server: IssuedCertificate,
  client: IssuedCertificate,
  rootPem: string,
  crl?: string[],
): Promise<HandshakeResult> {
  let clientFingerprint: string | undefined;
  const tlsServer = tls.createServer(
    { key: server.keyPem, cert: server.chainPem, ca: rootPem, crl, requestCert: true, rejectUnauthorized: true },
    (socket) => {
      clientFingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      socket.end('hello');
    },
  );
  const serverSocket = new Promise<tls.TLSSocket>((resolve) => {
    tlsServer.once('keylog', (_line: Buffer, socket: tls.TLSSocket) => resolve(socket));
  });
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  const { port } = tlsServer.address() as AddressInfo;
  try {
    const clientSocket = tls.connect({ host: '127.0.0.1', port, key: client.keyPem, cert: client.chainPem, ca: rootPem });
    let received = '';
    clientSocket.setEncoding('utf8');
    clientSocket.on('data', (chunk: string) => {
      received += chunk;
    });
    // TLS 1.3: a rejected client learns it only after its side of the handshake, as a reset on read.
    clientSocket.on('error', () => undefined);
    await once(clientSocket, 'close');
    const socket = await serverSocket;
    if (!socket.destroyed) await once(socket, 'close');
    return {
      received,
      serverAuthorized: socket.authorized,
      // Typed as Error by @types/node; at run time it is the OpenSSL code string, or null when authorized.
      serverAuthorizationError: (socket.authorizationError as unknown as string | null | undefined) ?? undefined,
      clientFingerprint,
    };
  } finally {
    tlsServer.close();
  }
}

describe('CertificateAuthority.create', () => {
  it('makes a self-signed P-256 root with critical CA constraints, SKI and the trust domain URI SAN', async () => {
    const before = Date.now();
    const ca = await CertificateAuthority.create({ trustDomain: TD });
    const cert = new X509Certificate(ca.certPem);
    const text = opensslText(ca.certPem);

    expect(ca.rootPem).toBe(ca.certPem);
    expect(ca.intermediatesPem).toBe('');
    expect(ca.trustDomain).toBe(TD);
    expect(ca.keyAlgorithm).toBe('ECDSA-P256');
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(cert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=nestjs-mtls dev CA');
    expect(cert.subjectAltName).toBe(`URI:spiffe://${TD}`);
    expect(cert.fingerprint256).toBe(ca.fingerprint256);
    expect(cert.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(opensslVerify(ca.rootPem, ca.certPem).ok).toBe(true);

    expect(extensionText(text, 'X509v3 Basic Constraints')).toBe('X509v3 Basic Constraints: critical | CA:TRUE');
    expect(extensionText(text, 'X509v3 Key Usage')).toBe(
      'X509v3 Key Usage: critical | Digital Signature, Certificate Sign, CRL Sign',
    );
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).not.toContain('X509v3 Authority Key Identifier');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');

    // notBefore is backdated one minute for clock skew; the default lifetime is a year.
    const notBefore = new Date(cert.validFrom).getTime();
    expect(notBefore).toBeGreaterThanOrEqual(before - 61_000);
    expect(notBefore).toBeLessThanOrEqual(before - 59_000);
    expect(new Date(cert.validTo).getTime() - notBefore).toBe(365 * DAY_MS);
  });

  it('honours commonName, validity and no trust domain', async () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const notAfter = new Date('2031-01-01T00:00:00Z');
    const ca = await CertificateAuthority.create({ commonName: 'Shop Root', notBefore, notAfter });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.subject).toBe('CN=Shop Root');
    expect(cert.subjectAltName).toBeUndefined();
    expect(ca.trustDomain).toBeUndefined();
    expect(ca.notBefore).toEqual(notBefore);
    expect(ca.notAfter).toEqual(notAfter);
  });

  it.each([
    [{ trustDomain: 'Shop.Test' }, 'trustDomain: "Shop.Test" is not a trust domain name'],
    [{ trustDomain: 'spiffe://shop.test' }, 'trustDomain: "spiffe://shop.test" is not a trust domain name'],
    [{ trustDomain: '' }, 'trustDomain: "" is not a trust domain name'],
    [{ keyAlgorithm: 'DSA' as KeyAlgorithm }, 'keyAlgorithm: unknown key algorithm "DSA"'],
    [{ validityMs: 0 }, 'validityMs: must be a positive number of milliseconds, got 0'],
    [{ notBefore: new Date(Number.NaN) }, 'notBefore: not a valid Date'],
  ])('refuses %o', async (options, message) => {
    const error = await CertificateAuthority.create(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    expect((error as Error).message).toContain(message);
  });
});

describe('CertificateAuthority#issue', () => {
  let ca: CertificateAuthority;

  beforeAll(async () => {
    ca = await CertificateAuthority.create({ trustDomain: TD });
  });

  it('issues an X509-SVID-shaped leaf by default', async () => {
    const before = Date.now();
    const leaf = await ca.issue({ spiffeId: `spiffe://${TD}/orders` });
    const cert = new X509Certificate(leaf.certPem);
    const text = opensslText(leaf.certPem);

    expect(opensslVerify(ca.rootPem, leaf.certPem)).toMatchObject({ ok: true });
    expectVerifiesWithNode(leaf, ca.certPem);
    expect(leaf.chainPem).toBe(leaf.certPem);
    expect(leaf.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(leaf.spiffeId).toBe(`spiffe://${TD}/orders`);
    expect(leaf.serialNumber).toBe(cert.serialNumber.toLowerCase());
    expect(leaf.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(leaf.fingerprint256).toBe(cert.fingerprint256);
    expect(leaf.notBefore).toEqual(new Date(cert.validFrom));
    expect(leaf.notAfter).toEqual(new Date(cert.validTo));
    expect(leaf.notBefore.getTime()).toBeGreaterThanOrEqual(before - 61_000);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(DAY_MS);

    expect(cert.subject).toBeUndefined();
    expect(text).toMatch(/Subject: *\n/);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe(`URI:spiffe://${TD}/orders`);
    // X509-SVID §3.1: empty subject, so the SAN extension is critical.
    expect(extensionText(text, 'X509v3 Subject Alternative Name')).toBe(
      `X509v3 Subject Alternative Name: critical | URI:spiffe://${TD}/orders`,
    );
    expect(extensionText(text, 'X509v3 Basic Constraints')).toBe('X509v3 Basic Constraints: critical | CA:FALSE');
    expect(extensionText(text, 'X509v3 Key Usage')).toBe('X509v3 Key Usage: critical | Digital Signature');
    expect(extensionText(text, 'X509v3 Extended Key Usage')).toBe(
      'X509v3 Extended Key Usage: | TLS Web Server Authentication, TLS Web Client Authentication',
    );
    const caSki = extensionText(opensslText(ca.certPem), 'X509v3 Subject Key Identifier')!.split(' | ')[1];
    expect(extensionText(text, 'X509v3 Authority Key Identifier')).toContain(caSki);
    expect(text).toContain('X509v3 Subject Key Identifier');
  });

  it('gives a leaf without any SAN a default commonName', async () => {
    const leaf = await ca.issue();
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subject).toBe('CN=nestjs-mtls leaf');
    expect(cert.subjectAltName).toBeUndefined();
    expect(leaf.spiffeId).toBeUndefined();
    expect(opensslVerify(ca.rootPem, leaf.certPem).ok).toBe(true);
  });

  it.each<[string, IssueOptions, (cert: X509Certificate, text: string) => void]>([
    [
      'no EKU',
      { spiffeId: `spiffe://${TD}/a`, extKeyUsage: null },
      (_cert, text) => expect(text).not.toContain('Extended Key Usage'),
    ],
    [
      'serverAuth only',
      { spiffeId: `spiffe://${TD}/a`, extKeyUsage: ['serverAuth'] },
      (cert, text) => {
        expect(extensionText(text, 'X509v3 Extended Key Usage')).toBe(
          'X509v3 Extended Key Usage: | TLS Web Server Authentication',
        );
        expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
      },
    ],
    [
      'CA:TRUE on a leaf',
      { spiffeId: `spiffe://${TD}/a`, isCa: true },
      (_cert, text) =>
        expect(extensionText(text, 'X509v3 Basic Constraints')).toBe('X509v3 Basic Constraints: critical | CA:TRUE'),
    ],
    [
      'keyCertSign and cRLSign on a leaf',
      { spiffeId: `spiffe://${TD}/a`, keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'] },
      (_cert, text) =>
        expect(extensionText(text, 'X509v3 Key Usage')).toBe(
          'X509v3 Key Usage: critical | Digital Signature, Certificate Sign, CRL Sign',
        ),
    ],
    [
      'no key usage',
      { spiffeId: `spiffe://${TD}/a`, keyUsage: null },
      (_cert, text) => expect(text).not.toContain('X509v3 Key Usage'),
    ],
    [
      'two URI SANs',
      { spiffeId: `spiffe://${TD}/attacker`, uris: [`spiffe://${TD}/admin`] },
      (cert) => expect(cert.subjectAltName).toBe(`URI:spiffe://${TD}/attacker, URI:spiffe://${TD}/admin`),
    ],
    [
      'no SAN at all',
      { commonName: 'legacy.internal' },
      (cert, text) => {
        expect(cert.subjectAltName).toBeUndefined();
        expect(cert.subject).toBe('CN=legacy.internal');
        expect(text).not.toContain('Subject Alternative Name');
      },
    ],
    [
      'a DNS SAN holding ", URI:spiffe://…" verbatim',
      { dnsNames: [`x.example, URI:spiffe://${TD}/admin`] },
      // Node escapes the comma: one DNS entry, not a DNS and a URI.
      (cert) => expect(cert.subjectAltName).toBe(`DNS:"x.example\\u002c URI:spiffe://${TD}/admin"`),
    ],
    [
      'several CNs',
      { commonName: ['evil', 'good'], spiffeId: `spiffe://${TD}/a` },
      (cert, text) => {
        expect(cert.subject).toBe('CN=evil\nCN=good');
        expect(text).toContain('Subject: CN = evil, CN = good');
        // A subject is present, so the SAN need not be critical.
        expect(extensionText(text, 'X509v3 Subject Alternative Name')).toBe(
          `X509v3 Subject Alternative Name: | URI:spiffe://${TD}/a`,
        );
      },
    ],
    [
      'DNS, IP and email SANs',
      {
        spiffeId: `spiffe://${TD}/a`,
        dnsNames: ['orders.internal'],
        ipAddresses: ['127.0.0.1', '::1', '::ffff:1.2.3.4'],
        emails: ['ops@shop.test'],
      },
      (cert) =>
        expect(cert.subjectAltName).toBe(
          `URI:spiffe://${TD}/a, DNS:orders.internal, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, ` +
            'IP Address:0:0:0:0:0:FFFF:102:304, email:ops@shop.test',
        ),
    ],
    [
      'validityMs',
      { spiffeId: `spiffe://${TD}/a`, validityMs: HOUR_MS },
      (cert) => expect(new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()).toBe(HOUR_MS),
    ],
  ])('writes %s into the certificate', async (_name, options, check) => {
    const leaf = await ca.issue(options);
    check(new X509Certificate(leaf.certPem), opensslText(leaf.certPem));
    // Invalid on purpose, yet still a well-signed certificate.
    expect(opensslVerify(ca.rootPem, leaf.certPem)).toMatchObject({ ok: true });
    expectVerifiesWithNode(leaf, ca.certPem);
  });

  it.each([
    [
      'expired',
      { notBefore: new Date(Date.now() - 2 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) },
      'certificate has expired',
    ],
    ['not yet valid', { notBefore: new Date(Date.now() + DAY_MS) }, 'certificate is not yet valid'],
  ])('issues %s leaves that openssl rejects for that reason', async (_name, validity, reason) => {
    const leaf = await ca.issue({ spiffeId: `spiffe://${TD}/a`, ...validity });
    expect(leaf.notBefore).toEqual(new Date(Math.floor(validity.notBefore.getTime() / 1000) * 1000));
    const result = opensslVerify(ca.rootPem, leaf.certPem);
    expect(result.ok).toBe(false);
    expect(result.output).toContain(reason);
    expectVerifiesWithNode(leaf, ca.certPem);
  });

  it.each<[KeyAlgorithm, KeyAlgorithm, string, string]>([
    ['ECDSA-P256', 'ECDSA-P384', 'ecdsa-with-SHA256', 'NIST CURVE: P-384'],
    ['ECDSA-P384', 'Ed25519', 'ecdsa-with-SHA384', 'Public Key Algorithm: ED25519'],
    ['Ed25519', 'ECDSA-P256', 'ED25519', 'NIST CURVE: P-256'],
    ['RSA-2048', 'RSA-2048', 'sha256WithRSAEncryption', 'Public-Key: (2048 bit)'],
  ])('a %s CA issues a %s leaf', async (caAlgorithm, leafAlgorithm, signature, publicKey) => {
    const root = await CertificateAuthority.create({ keyAlgorithm: caAlgorithm, trustDomain: TD });
    const leaf = await root.issue({ spiffeId: `spiffe://${TD}/a`, keyAlgorithm: leafAlgorithm });
    const text = opensslText(leaf.certPem);
    expect(text).toContain(`Signature Algorithm: ${signature}`);
    expect(text).toContain(publicKey);
    expect(extensionText(text, 'X509v3 Key Usage')).toBe(
      leafAlgorithm === 'RSA-2048'
        ? 'X509v3 Key Usage: critical | Digital Signature, Key Encipherment'
        : 'X509v3 Key Usage: critical | Digital Signature',
    );
    expect(root.keyAlgorithm).toBe(caAlgorithm);
    expect(opensslVerify(root.rootPem, leaf.certPem)).toMatchObject({ ok: true });
    expectVerifiesWithNode(leaf, root.certPem);
    expect(() => tls.createSecureContext({ key: leaf.keyPem, cert: leaf.chainPem })).not.toThrow();
  });

  it.each<[string, IssueOptions, string]>([
    ['an empty keyUsage list', { keyUsage: [] }, 'keyUsage: an empty list cannot be encoded; pass null to omit the extension'],
    [
      'an empty extKeyUsage list',
      { extKeyUsage: [] },
      'extKeyUsage: an empty list cannot be encoded; pass null to omit the extension',
    ],
    ['an IP that is not one', { ipAddresses: ['1.2.3'] }, 'ipAddresses: "1.2.3" is not an IPv4 or IPv6 address'],
    ['an IPv6 zone', { ipAddresses: ['fe80::1%eth0'] }, 'ipAddresses: "fe80::1%eth0" is not an IPv4 or IPv6 address'],
    ['a negative validity', { validityMs: -1 }, 'validityMs: must be a positive number of milliseconds, got -1'],
  ])('refuses %s', async (_name, options, message) => {
    const error = await ca.issue(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID', message });
  });

  it('keeps private keys out of util.inspect and JSON.stringify', async () => {
    const leaf = await ca.issue({ spiffeId: `spiffe://${TD}/a` });
    for (const [object, key] of [
      [ca, ca.keyPem],
      [leaf, leaf.keyPem],
    ] as const) {
      for (const rendered of [inspect(object), JSON.stringify(object), `${inspect({ nested: object }, { depth: 5 })}`]) {
        expect(rendered).toContain('[private key redacted]');
        expect(rendered).not.toContain(pemBody(key).slice(0, 40));
      }
    }
    // Destructuring and spreading still hand out the key on purpose.
    expect({ ...leaf }.keyPem).toBe(leaf.keyPem);
  });
});

describe('CertificateAuthority#createIntermediate', () => {
  it('chains root → intermediate → intermediate → leaf with AKI/SKI links', async () => {
    const root = await CertificateAuthority.create({ trustDomain: TD });
    const first = await root.createIntermediate();
    const second = await first.createIntermediate({ commonName: 'issuing CA', keyAlgorithm: 'ECDSA-P384' });
    const leaf = await second.issue({ spiffeId: `spiffe://${TD}/orders` });

    expect(first.rootPem).toBe(root.certPem);
    expect(second.rootPem).toBe(root.certPem);
    expect(first.intermediatesPem).toBe(first.certPem);
    expect(second.intermediatesPem).toBe(second.certPem + first.certPem);
    expect(leaf.chainPem).toBe(leaf.certPem + second.certPem + first.certPem);
    expect(pemBlocks(leaf.chainPem)).toHaveLength(3);
    expect(second.trustDomain).toBe(TD);

    const firstText = opensslText(first.certPem);
    expect(new X509Certificate(first.certPem).subject).toBe('CN=nestjs-mtls dev intermediate CA');
    expect(new X509Certificate(first.certPem).subjectAltName).toBe(`URI:spiffe://${TD}`);
    expect(extensionText(firstText, 'X509v3 Basic Constraints')).toBe('X509v3 Basic Constraints: critical | CA:TRUE');
    const rootSki = extensionText(opensslText(root.certPem), 'X509v3 Subject Key Identifier')!.split(' | ')[1];
    expect(extensionText(firstText, 'X509v3 Authority Key Identifier')).toContain(rootSki);
    expect(new X509Certificate(second.certPem).checkIssued(new X509Certificate(first.certPem))).toBe(true);

    expect(opensslVerify(root.rootPem, leaf.certPem, { untrusted: second.intermediatesPem })).toMatchObject({ ok: true });
    const withoutIntermediates = opensslVerify(root.rootPem, leaf.certPem);
    expect(withoutIntermediates.ok).toBe(false);
    expect(withoutIntermediates.output).toContain('unable to get local issuer certificate');
    expectVerifiesWithNode(leaf, second.certPem);
  });

  it('refuses a child named like its parent', async () => {
    const root = await CertificateAuthority.create({ commonName: 'same' });
    await expect(root.createIntermediate({ commonName: 'same' })).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: 'intermediate commonName must differ from its issuer\'s subject "CN=same"',
    });
  });
});

describe('CertificateAuthority.load', () => {
  let root: CertificateAuthority;
  let other: CertificateAuthority;

  beforeAll(async () => {
    [root, other] = await Promise.all([CertificateAuthority.create({ trustDomain: TD }), CertificateAuthority.create()]);
  });

  it('round-trips a CA it created and keeps issuing under the same root', async () => {
    const loaded = await CertificateAuthority.load(root.certPem, root.keyPem);
    expect(loaded.certPem).toBe(root.certPem);
    expect(loaded.rootPem).toBe(root.certPem);
    expect(loaded.intermediatesPem).toBe('');
    expect(loaded.fingerprint256).toBe(root.fingerprint256);
    expect(loaded.trustDomain).toBe(TD);
    const leaf = await loaded.issue({ spiffeId: `spiffe://${TD}/a` });
    expect(opensslVerify(root.rootPem, leaf.certPem).ok).toBe(true);
    expect(extensionText(opensslText(leaf.certPem), 'X509v3 Authority Key Identifier')).toContain(
      extensionText(opensslText(root.certPem), 'X509v3 Subject Key Identifier')!.split(' | ')[1],
    );
  });

  it.each<KeyAlgorithm>(['ECDSA-P384', 'Ed25519'])('round-trips a %s CA', async (keyAlgorithm) => {
    const created = await CertificateAuthority.create({ keyAlgorithm });
    const loaded = await CertificateAuthority.load(created.certPem, created.keyPem);
    expect(loaded.keyAlgorithm).toBe(keyAlgorithm);
    const leaf = await loaded.issue({ spiffeId: `spiffe://${TD}/a` });
    expect(opensslVerify(created.rootPem, leaf.certPem)).toMatchObject({ ok: true });
  });

  it('accepts a SEC1 "EC PRIVATE KEY"', async () => {
    const sec1 = createPrivateKey(root.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
    expect(sec1).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    const loaded = await CertificateAuthority.load(root.certPem, sec1);
    expect(loaded.keyPem).toBe(root.keyPem);
  });

  it('loads a CA made by the openssl CLI with a PKCS#1 RSA key and issues verifiable leaves', async () => {
    const keyFile = join(dir, 'openssl-ca.key');
    const certFile = join(dir, 'openssl-ca.crt');
    const made = openssl(['genrsa', '-traditional', '-out', keyFile, '2048']);
    expect(made.ok, made.output).toBe(true);
    const req = openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=openssl root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-addext',
      `subjectAltName=URI:spiffe://${TD}`,
    ]);
    expect(req.ok, req.output).toBe(true);
    const keyPem = readFileSync(keyFile, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);

    const loaded = await CertificateAuthority.load(readFileSync(certFile, 'utf8'), keyPem);
    expect(loaded.keyAlgorithm).toBe('RSA-2048');
    expect(loaded.trustDomain).toBe(TD);
    const leaf = await loaded.issue({ spiffeId: `spiffe://${TD}/a` });
    expect(opensslVerify(loaded.rootPem, leaf.certPem)).toMatchObject({ ok: true });
    expect(opensslText(leaf.certPem)).toContain('Signature Algorithm: sha256WithRSAEncryption');
    const crl = await loaded.createCrl([leaf.serialNumber]);
    expect(openssl(['crl', '-noout', '-verify', '-CAfile', certFile, '-in', tempFile(crl)]).output).toContain('verify OK');
  });

  it('loads an intermediate from "CA, issuers…, root" and rebuilds its chain', async () => {
    const first = await root.createIntermediate();
    const second = await first.createIntermediate({ commonName: 'issuing CA' });
    const loaded = await CertificateAuthority.load(second.certPem + first.certPem + root.certPem, second.keyPem);
    expect(loaded.intermediatesPem).toBe(second.intermediatesPem);
    expect(loaded.rootPem).toBe(root.certPem);
    const leaf = await loaded.issue({ spiffeId: `spiffe://${TD}/a` });
    expect(opensslVerify(root.rootPem, leaf.certPem, { untrusted: loaded.intermediatesPem }).ok).toBe(true);
  });

  it.each<[string, () => [string, string], string, string, string]>([
    [
      'a key of another CA',
      () => [root.certPem, other.keyPem],
      'ERR_MTLS_KEY_MISMATCH',
      'key',
      '<CA key> (key): the private key does not match the CA certificate. Fix: use the key that was generated with <CA certificate>',
    ],
    [
      'a key that is not PEM',
      () => [root.certPem, 'not a key'],
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'key',
      '<CA key> (key): not an unencrypted PEM private key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")',
    ],
    [
      'no certificate',
      () => [root.keyPem, root.keyPem],
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'certificate',
      '<CA certificate> (certificate): no CERTIFICATE PEM block found',
    ],
  ])('refuses %s', async (_name, inputs, code, field, message) => {
    const [certPem, keyPem] = inputs();
    const error = await CertificateAuthority.load(certPem, keyPem).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialsError);
    expect(error).toMatchObject({ code, field });
    expect((error as Error).message).toContain(message);
    for (const rendered of [String(error), inspect(error, { depth: 10 }), JSON.stringify(error)]) {
      expect(rendered).not.toContain(pemBody(root.keyPem).slice(0, 40));
      expect(rendered).not.toContain(pemBody(other.keyPem).slice(0, 40));
    }
  });

  it('refuses a leaf as a CA, naming the files given', async () => {
    const leaf = await root.issue({ spiffeId: `spiffe://${TD}/a` });
    const error = await CertificateAuthority.load(leaf.certPem, leaf.keyPem, {
      certFile: '/etc/ca/ca.crt',
      keyFile: '/etc/ca/ca.key',
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'ERR_MTLS_SVID_INVALID',
      file: '/etc/ca/ca.crt',
      field: 'certificate',
      message:
        '/etc/ca/ca.crt (certificate): "" is not a CA certificate (basicConstraints cA is not true). Fix: point it at the CA certificate, not at a leaf',
    });
  });

  it('refuses a CA:TRUE leaf without keyCertSign', async () => {
    const leaf = await root.issue({ commonName: 'fake CA', isCa: true });
    await expect(CertificateAuthority.load(leaf.certPem, leaf.keyPem)).rejects.toMatchObject({
      code: 'ERR_MTLS_SVID_INVALID',
      reason: '"CN=fake CA" lacks the keyCertSign key usage and cannot sign certificates',
    });
  });

  it('refuses an intermediate whose root is missing or out of order', async () => {
    const first = await root.createIntermediate();
    await expect(CertificateAuthority.load(first.certPem, first.keyPem)).rejects.toMatchObject({
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      reason: '"CN=nestjs-mtls dev intermediate CA" is not self-signed and its issuer is not in the PEM',
    });
    await expect(CertificateAuthority.load(first.certPem + other.certPem, first.keyPem)).rejects.toMatchObject({
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      reason: '"CN=nestjs-mtls dev intermediate CA" is not signed by the next certificate "CN=nestjs-mtls dev CA"',
    });
    await expect(CertificateAuthority.load(first.certPem + root.certPem + other.certPem, first.keyPem)).rejects.toMatchObject({
      code: 'ERR_MTLS_CHAIN_UNTRUSTED',
      reason: '1 certificate(s) follow the root "CN=nestjs-mtls dev CA"',
    });
  });
});

describe('CertificateAuthority#createCrl', () => {
  let root: CertificateAuthority;
  let revoked: IssuedCertificate;
  let good: IssuedCertificate;

  beforeAll(async () => {
    root = await CertificateAuthority.create({ trustDomain: TD });
    [revoked, good] = await Promise.all([
      root.issue({ spiffeId: `spiffe://${TD}/revoked` }),
      root.issue({ spiffeId: `spiffe://${TD}/good` }),
    ]);
  });

  it('issues a signed v2 CRL with AKI and CRL number that openssl and Node accept', async () => {
    const crl = await root.createCrl([revoked.serialNumber]);
    expect(crl).toMatch(/^-----BEGIN X509 CRL-----\n[\s\S]+\n-----END X509 CRL-----\n$/);
    const crlFile = tempFile(crl);
    expect(openssl(['crl', '-noout', '-verify', '-CAfile', tempFile(root.rootPem), '-in', crlFile]).output).toContain(
      'verify OK',
    );
    const text = openssl(['crl', '-noout', '-text', '-in', crlFile]).output;
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('X509v3 CRL Number');
    expect(text).toContain(`Serial Number: ${revoked.serialNumber.toUpperCase()}`);
    expect(text).not.toContain(good.serialNumber.toUpperCase());
    const rootSki = extensionText(opensslText(root.certPem), 'X509v3 Subject Key Identifier')!.split(' | ')[1]!;
    expect(extensionText(text, 'X509v3 Authority Key Identifier')).toContain(rootSki);
    expect(() => tls.createSecureContext({ crl: [crl] })).not.toThrow();

    const revokedResult = opensslVerify(root.rootPem, revoked.certPem, { crl });
    expect(revokedResult.ok).toBe(false);
    expect(revokedResult.output).toContain('certificate revoked');
    expect(opensslVerify(root.rootPem, good.certPem, { crl })).toMatchObject({ ok: true });
  });

  it('numbers CRLs increasingly and accepts serials in any case, with colons, once each', async () => {
    const crlNumber = (pem: string): bigint =>
      BigInt(/X509v3 CRL Number: *\n\s*(\d+)/.exec(openssl(['crl', '-noout', '-text', '-in', tempFile(pem)]).output)![1]!);
    const colons = revoked.serialNumber.toUpperCase().match(/../g)!.join(':');
    const first = await root.createCrl([colons, revoked.serialNumber, `00${revoked.serialNumber}`]);
    const second = await root.createCrl([]);
    expect(crlNumber(second)).toBeGreaterThan(crlNumber(first));
    const text = openssl(['crl', '-noout', '-text', '-in', tempFile(first)]).output;
    expect(text.match(/Serial Number:/g)).toHaveLength(1);
    expect(opensslVerify(root.rootPem, revoked.certPem, { crl: first }).output).toContain('certificate revoked');
  });

  it('honours thisUpdate and nextUpdate (an expired CRL fails verification)', async () => {
    const crl = await root.createCrl([], {
      thisUpdate: new Date(Date.now() - 2 * DAY_MS),
      nextUpdate: new Date(Date.now() - DAY_MS),
    });
    const result = opensslVerify(root.rootPem, good.certPem, { crl });
    expect(result.ok).toBe(false);
    expect(result.output).toContain('CRL has expired');
  });

  it('refuses a serial that is not hex', async () => {
    await expect(root.createCrl(['xyz'])).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: 'revokedSerials: "xyz" is not a hexadecimal serial number',
    });
  });
});

describe('mTLS handshakes on 127.0.0.1 with minted certificates', () => {
  let root: CertificateAuthority;
  let server: IssuedCertificate;

  beforeAll(async () => {
    root = await CertificateAuthority.create({ trustDomain: TD });
    server = await root.issue({ spiffeId: `spiffe://${TD}/inventory`, ipAddresses: ['127.0.0.1'] });
  });

  it('succeeds with leaves issued by the root', async () => {
    const client = await root.issue({ spiffeId: `spiffe://${TD}/orders` });
    const result = await mtlsHandshake(server, client, root.rootPem);
    expect(result).toEqual({
      received: 'hello',
      serverAuthorized: true,
      serverAuthorizationError: undefined,
      clientFingerprint: client.fingerprint256,
    });
  });

  it('succeeds when both sides present chains through an intermediate', async () => {
    const intermediate = await root.createIntermediate();
    const [chainedServer, chainedClient] = await Promise.all([
      intermediate.issue({ spiffeId: `spiffe://${TD}/inventory`, ipAddresses: ['127.0.0.1'] }),
      intermediate.issue({ spiffeId: `spiffe://${TD}/orders` }),
    ]);
    const result = await mtlsHandshake(chainedServer, chainedClient, root.rootPem);
    expect(result).toMatchObject({ received: 'hello', serverAuthorized: true, clientFingerprint: chainedClient.fingerprint256 });
  });

  it('rejects an expired client certificate with CERT_HAS_EXPIRED', async () => {
    const expired = await root.issue({
      spiffeId: `spiffe://${TD}/orders`,
      notBefore: new Date(Date.now() - 2 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const result = await mtlsHandshake(server, expired, root.rootPem);
    expect(result).toMatchObject({ received: '', serverAuthorized: false, serverAuthorizationError: 'CERT_HAS_EXPIRED' });
  });

  it('rejects a revoked client certificate with CERT_REVOKED and admits an unrevoked one', async () => {
    const [revoked, good] = await Promise.all([
      root.issue({ spiffeId: `spiffe://${TD}/revoked` }),
      root.issue({ spiffeId: `spiffe://${TD}/orders` }),
    ]);
    const crl = await root.createCrl([revoked.serialNumber]);
    expect(await mtlsHandshake(server, revoked, root.rootPem, [crl])).toMatchObject({
      received: '',
      serverAuthorized: false,
      serverAuthorizationError: 'CERT_REVOKED',
    });
    expect(await mtlsHandshake(server, good, root.rootPem, [crl])).toMatchObject({ received: 'hello', serverAuthorized: true });
  });
});
