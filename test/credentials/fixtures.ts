// Real certificates for the credentials tests: the package's CertificateAuthority for ordinary sets, and
// @peculiar/x509 directly for the broken CA shapes no well-behaved CA issues (it is what CertificateAuthority uses).
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'vitest';
import { resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';
import type { CredentialFiles } from '../../lib/credentials/credentials.interfaces.js';
import { encodePem } from '../../lib/x509/pem.js';

x509.cryptoProvider.set(webcrypto);

/** PEM texts of one credential set. */
export interface PemSet {
  readonly cert: string;
  readonly key: string | Buffer;
  readonly ca: string;
  readonly crl?: readonly string[];
}

let counter = 0;

/** A fresh temp directory for one test file. */
export function tempRoot(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `nestjs-mtls-${prefix}-`));
}

/** Writes a set as separate files in a new sub-directory of `root` and resolves them. */
export async function writeSet(root: string, set: PemSet): Promise<CredentialFiles> {
  counter += 1;
  const dir = join(root, `set-${counter}`);
  await mkdir(dir);
  const crlFiles: string[] = [];
  await writeFile(join(dir, 'tls.crt'), set.cert);
  await writeFile(join(dir, 'tls.key'), set.key, { mode: 0o600 });
  await writeFile(join(dir, 'ca.crt'), set.ca);
  for (const [i, crl] of (set.crl ?? []).entries()) {
    const file = join(dir, `crl-${i}.pem`);
    await writeFile(file, crl);
    crlFiles.push(file);
  }
  return resolveCredentialFiles({
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    caFile: join(dir, 'ca.crt'),
    ...(crlFiles.length > 0 ? { crlFile: crlFiles } : {}),
  });
}

/** Base64 body lines of every private key block in `pems` (what must never show up in output). */
export function keyLines(...pems: readonly (string | Buffer)[]): string[] {
  const lines: string[] = [];
  for (const pem of pems) {
    const text = pem.toString();
    for (const match of text.matchAll(/-----BEGIN [A-Z ]*PRIVATE KEY-----([\s\S]*?)-----END/g)) {
      lines.push(...match[1]!.split(/\r?\n/).filter((line) => line.length >= 16));
    }
  }
  return lines;
}

/** Asserts that none of the renderings of `value` contains a private key line. */
export function expectNoKeyMaterial(value: unknown, lines: readonly string[]): void {
  expect(lines.length).toBeGreaterThan(0);
  const renderings = [String(value), JSON.stringify(value) ?? '', inspect(value, { depth: 8, showHidden: true })];
  if (value instanceof Error) renderings.push(value.message, value.stack ?? '');
  for (const rendering of renderings) {
    expect(rendering).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    for (const line of lines) expect(rendering).not.toContain(line);
  }
}

/** What a hand-signed certificate carries. */
export interface SignOptions {
  readonly commonName: string;
  readonly isCa: boolean;
  readonly pathLength?: number;
  readonly keyUsage: x509.KeyUsageFlags | null;
  readonly extKeyUsage?: readonly string[];
  readonly uris?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** RFC 4514 subject, `''` for an empty one. @default `CN=${commonName}` */
  readonly subject?: string;
  /** @default false */
  readonly sanCritical?: boolean;
  /** @default true */
  readonly keyUsageCritical?: boolean;
  /** Appended after the standard extensions. */
  readonly extensions?: readonly x509.Extension[];
}

/** A hand-signed certificate and its key (PKCS#8 PEM). */
export interface SignedCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Signs a certificate with `issuer`'s key (or self-signs): for CA shapes CertificateAuthority refuses to make. */
export async function signCertificate(issuer: SignedCertificate | undefined, options: SignOptions): Promise<SignedCertificate> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const signingKey =
    issuer === undefined
      ? keys.privateKey
      : await webcrypto.subtle.importKey(
          'pkcs8',
          createPrivateKey(issuer.keyPem).export({ type: 'pkcs8', format: 'der' }),
          EC,
          false,
          ['sign'],
        );
  const subject = options.subject ?? `CN=${options.commonName}`;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(options.isCa, options.pathLength, true)];
  if (options.keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(options.keyUsage, options.keyUsageCritical ?? true));
  if (options.extKeyUsage !== undefined) extensions.push(new x509.ExtendedKeyUsageExtension([...options.extKeyUsage]));
  if (options.uris !== undefined) {
    const names = options.uris.map((value) => ({ type: 'url' as const, value }));
    extensions.push(new x509.SubjectAlternativeNameExtension(names, options.sanCritical ?? false));
  }
  extensions.push(...(options.extensions ?? []));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: `01${Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex')}`,
      subject,
      issuer: issuer === undefined ? subject : new x509.X509Certificate(issuer.certPem).subjectName,
      notBefore: options.notBefore ?? new Date(now - 60_000),
      notAfter: options.notAfter ?? new Date(now + 24 * 3_600_000),
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: SIGN,
      extensions,
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** What a hand-signed CRL carries. */
export interface SignCrlOptions {
  readonly revokedSerials?: readonly string[];
  readonly extensions?: readonly x509.Extension[];
  /** Extensions of every entry. */
  readonly entryExtensions?: readonly x509.Extension[];
}

/** Signs a CRL with `issuer`'s key: for CRL shapes CertificateAuthority never writes (delta, partitioned, critical). */
export async function signCrl(issuer: SignedCertificate, options: SignCrlOptions = {}): Promise<string> {
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    createPrivateKey(issuer.keyPem).export({ type: 'pkcs8', format: 'der' }),
    EC,
    false,
    ['sign'],
  );
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.X509Certificate(issuer.certPem).subjectName,
      thisUpdate: new Date(now - 60_000),
      nextUpdate: new Date(now + 24 * 3_600_000),
      entries: (options.revokedSerials ?? []).map((serialNumber) => ({
        serialNumber,
        revocationDate: new Date(now - 60_000),
        extensions: [...(options.entryExtensions ?? [])],
      })),
      extensions: [...(options.extensions ?? [])],
      signingKey,
      signingAlgorithm: SIGN,
    },
    webcrypto,
  );
  return encodePem('X509 CRL', Buffer.from(crl.rawData));
}

export { x509 };
