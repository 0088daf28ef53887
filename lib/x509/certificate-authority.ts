// Mints real certificates (via @peculiar/x509 on Node's WebCrypto) for the dev CA CLI and the testing kit.
// Leaf options are deliberately permissive: tests build invalid certificates on purpose, so only input that
// cannot be encoded at all is refused. CA material is checked strictly.
import { X509Certificate as NodeX509Certificate, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { inspect } from 'node:util';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CredentialsError, MtlsConfigError } from '../errors/mtls.errors.js';
import { encodePem } from './pem.js';
import type { KeyAlgorithm } from './key-algorithm.js';
import {
  caKeyAlgorithm,
  checkChainToRoot,
  checkIsCa,
  parseCertificateBundle,
  readPrivateKey,
  signingCertTrustDomain,
} from './ca-loading.js';

export { keyAlgorithmOf } from './key-algorithm.js';
import { canonicalIp } from '../identity/ip-address.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';

// Every call below passes `webcrypto` explicitly; the default provider is set too for the library's internal lookups.
x509.cryptoProvider.set(webcrypto);

export type { KeyAlgorithm } from './key-algorithm.js';

/** A key usage bit a leaf may carry. */
export type LeafKeyUsage = 'digitalSignature' | 'keyEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign';

/** An extended key usage a leaf may carry. */
export type LeafExtKeyUsage = 'serverAuth' | 'clientAuth';

/** What to put in a leaf certificate. Every field is optional; defaults give a valid X509-SVID-shaped leaf. */
export interface IssueOptions {
  /** The SPIFFE ID, written as the single URI SAN. */
  spiffeId?: string;
  /** Raw URI SANs (added after `spiffeId`), to build invalid certificates on purpose. */
  uris?: string[];
  /** DNS SANs, written verbatim (no validation: tests put hostile text here on purpose). */
  dnsNames?: string[];
  /** IP address SANs (IPv4 dotted or IPv6 text). */
  ipAddresses?: string[];
  /** rfc822Name SANs, written verbatim. */
  emails?: string[];
  /** Subject commonName(s); several produce several CN attributes. Default: none when a SAN is given, `'nestjs-mtls leaf'` otherwise. */
  commonName?: string | string[];
  /** @default now - 1 minute */
  notBefore?: Date;
  /** @default notBefore + validityMs */
  notAfter?: Date;
  /** @default 24 hours */
  validityMs?: number;
  /** Extended key usages; `null` omits the extension. @default ['serverAuth', 'clientAuth'] */
  extKeyUsage?: LeafExtKeyUsage[] | null;
  /** Key usage bits; `null` omits the extension. @default ['digitalSignature'] (+ keyEncipherment for RSA) */
  keyUsage?: LeafKeyUsage[] | null;
  /** basicConstraints cA on a leaf (invalid on purpose). @default false */
  isCa?: boolean;
  /** @default 'ECDSA-P256' */
  keyAlgorithm?: KeyAlgorithm;
}

/** A minted leaf with its key. `keyPem` is PKCS#8 PEM; never log it. */
export interface IssuedCertificate {
  /** The leaf alone. */
  readonly certPem: string;
  /** Leaf followed by the issuing intermediates (what a server or client presents). */
  readonly chainPem: string;
  /** PKCS#8 private key PEM. */
  readonly keyPem: string;
  /** Serial number, lower-case hex without separators. */
  readonly serialNumber: string;
  /** SHA-256 of the DER in Node's `AA:BB:…` format. */
  readonly fingerprint256: string;
  /** The `spiffeId` option, as written into the certificate. */
  readonly spiffeId: string | undefined;
  /** NotBefore as encoded (whole seconds). */
  readonly notBefore: Date;
  /** NotAfter as encoded (whole seconds). */
  readonly notAfter: Date;
}

/** Options of a root or intermediate CA. */
export interface CertificateAuthorityOptions {
  /** Subject CN of the CA. @default 'nestjs-mtls dev CA' (root), 'nestjs-mtls dev intermediate CA' (intermediate) */
  commonName?: string;
  /** Written as the CA's URI SAN `spiffe://<trustDomain>` when set. @default the parent's, for an intermediate */
  trustDomain?: string;
  /** @default 'ECDSA-P256' */
  keyAlgorithm?: KeyAlgorithm;
  /** @default now - 1 minute */
  notBefore?: Date;
  /** @default notBefore + validityMs */
  notAfter?: Date;
  /** @default 1 year */
  validityMs?: number;
}

/** Names for the PEM inputs of {@link CertificateAuthority.load}, used in error messages. */
export interface CertificateAuthorityLoadOptions {
  /** Where the certificate PEM came from. @default '<CA certificate>' */
  certFile?: string;
  /** Where the key PEM came from. @default '<CA key>' */
  keyFile?: string;
}

/** Validity and numbering of a CRL. */
export interface CrlOptions {
  /** @default now - 1 minute */
  thisUpdate?: Date;
  /** @default thisUpdate + 24 hours */
  nextUpdate?: Date;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const YEAR_MS = 365 * DAY_MS;
const CLOCK_SKEW_MS = MINUTE_MS;
const DEFAULT_ROOT_CN = 'nestjs-mtls dev CA';
const DEFAULT_INTERMEDIATE_CN = 'nestjs-mtls dev intermediate CA';
const DEFAULT_LEAF_CN = 'nestjs-mtls leaf';
const OID_CRL_NUMBER = '2.5.29.20';
const REDACTED = '[private key redacted]';

interface KeySpec {
  readonly generate: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams | webcrypto.Algorithm;
  readonly import: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams | webcrypto.Algorithm;
  /** What this key signs with (the hash follows the curve size, as CA/B and SPIRE do). */
  readonly sign: webcrypto.EcdsaParams | webcrypto.Algorithm;
}

const KEY_SPECS: Readonly<Record<KeyAlgorithm, KeySpec>> = {
  'ECDSA-P256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    import: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  'ECDSA-P384': {
    generate: { name: 'ECDSA', namedCurve: 'P-384' },
    import: { name: 'ECDSA', namedCurve: 'P-384' },
    sign: { name: 'ECDSA', hash: 'SHA-384' },
  },
  'RSA-2048': {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
  Ed25519: {
    generate: { name: 'Ed25519' },
    import: { name: 'Ed25519' },
    sign: { name: 'Ed25519' },
  },
};

const KEY_USAGE_FLAGS: Readonly<Record<LeafKeyUsage, x509.KeyUsageFlags>> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
};

const EXT_KEY_USAGE_OIDS: Readonly<Record<LeafExtKeyUsage, string>> = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
};

/** Internal state of a CA; never exposed, so the signing key cannot leak through a property. */
interface CaState {
  readonly cert: x509.X509Certificate;
  readonly signingKey: webcrypto.CryptoKey;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly keyPem: string;
  readonly intermediatesPem: string;
  readonly rootPem: string;
  readonly trustDomain: string | undefined;
}

/** A CA (root or intermediate) that can issue leaves, intermediates and CRLs. */
export class CertificateAuthority {
  /** The CA certificate PEM. */
  readonly certPem: string;
  /** The CA's private key PEM (PKCS#8). Never log it: `util.inspect` and `JSON.stringify` of the CA redact it. */
  readonly keyPem: string;
  /** PEM of this CA followed by its parents up to the root, excluding the root (what a leaf's chain appends). */
  readonly intermediatesPem: string;
  /** The root's PEM: what goes into a trust bundle (`ca.crt`). */
  readonly rootPem: string;
  /** The trust domain of the CA's `spiffe://<td>` URI SAN, if it has one. */
  readonly trustDomain: string | undefined;
  /** Key algorithm of the CA's own key (what it signs with); a loaded RSA key of any size reads `'RSA-2048'`. */
  readonly keyAlgorithm: KeyAlgorithm;
  /** Subject of the CA certificate (RFC 4514), for messages. */
  readonly subject: string;
  /** NotBefore of the CA certificate. */
  readonly notBefore: Date;
  /** NotAfter of the CA certificate. */
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the CA certificate in Node's `AA:BB:…` format. */
  readonly fingerprint256: string;

  readonly #cert: x509.X509Certificate;
  readonly #signingKey: webcrypto.CryptoKey;
  #lastCrlNumber = 0n;

  private constructor(state: CaState) {
    this.#cert = state.cert;
    this.#signingKey = state.signingKey;
    this.certPem = toPem('CERTIFICATE', state.cert.rawData);
    this.keyPem = state.keyPem;
    this.intermediatesPem = state.intermediatesPem;
    this.rootPem = state.rootPem;
    this.trustDomain = state.trustDomain;
    this.keyAlgorithm = state.keyAlgorithm;
    this.subject = state.cert.subject;
    this.notBefore = state.cert.notBefore;
    this.notAfter = state.cert.notAfter;
    this.fingerprint256 = new NodeX509Certificate(Buffer.from(state.cert.rawData)).fingerprint256;
  }

  /** Creates a new self-signed root CA. */
  static async create(options: CertificateAuthorityOptions = {}): Promise<CertificateAuthority> {
    const keyAlgorithm = checkKeyAlgorithm(options.keyAlgorithm);
    const trustDomain = checkTrustDomain(options.trustDomain);
    const validity = resolveValidity(options, YEAR_MS);
    const keys = await generateKeyPair(keyAlgorithm);
    const name = subjectName([options.commonName ?? DEFAULT_ROOT_CN]);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerialNumber(),
        subject: name,
        issuer: name,
        notBefore: validity.notBefore,
        notAfter: validity.notAfter,
        publicKey: keys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: KEY_SPECS[keyAlgorithm].sign,
        extensions: await caExtensions(keys.publicKey, trustDomain, undefined),
      },
      webcrypto,
    );
    const certPem = toPem('CERTIFICATE', cert.rawData);
    return new CertificateAuthority({
      cert,
      signingKey: keys.privateKey,
      keyAlgorithm,
      keyPem: exportPkcs8Pem(keys.privateKey),
      intermediatesPem: '',
      rootPem: certPem,
      trustDomain,
    });
  }

  /**
   * Loads a CA from its certificate and key PEM (the dev CA on disk). The key may be PKCS#8, SEC1
   * (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`). For an intermediate, `certPem` holds the CA
   * followed by its issuers up to and including the root. Throws {@link CredentialsError} when the
   * certificate is not a CA, the key does not match it, or the chain does not end at a root.
   */
  static async load(
    certPem: string,
    keyPem: string,
    options: CertificateAuthorityLoadOptions = {},
  ): Promise<CertificateAuthority> {
    const certFile = options.certFile ?? '<CA certificate>';
    const keyFile = options.keyFile ?? '<CA key>';
    const certs = parseCertificateBundle(certPem, certFile);
    const [caCert] = certs;
    if (caCert === undefined) {
      throw new CredentialsError('ERR_MTLS_CREDENTIALS_NOT_PEM', 'no CERTIFICATE PEM block found', {
        file: certFile,
        field: 'certificate',
        fix: 'point it at the CA certificate PEM (-----BEGIN CERTIFICATE-----)',
      });
    }
    checkIsCa(caCert.peculiar, certFile);

    const keyObject = readPrivateKey(keyPem, keyFile);
    const keyAlgorithm = caKeyAlgorithm(keyObject, keyFile);
    if (!caCert.node.checkPrivateKey(keyObject)) {
      throw new CredentialsError('ERR_MTLS_KEY_MISMATCH', 'the private key does not match the CA certificate', {
        file: keyFile,
        field: 'key',
        fix: `use the key that was generated with ${certFile}`,
      });
    }

    const chain = checkChainToRoot(certs, certFile);
    const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, KEY_SPECS[keyAlgorithm].import, false, ['sign']);
    return new CertificateAuthority({
      cert: caCert.peculiar,
      signingKey,
      keyAlgorithm,
      keyPem: keyObject.export({ type: 'pkcs8', format: 'pem' }).toString(),
      intermediatesPem: chain.intermediates.map((c) => toPem('CERTIFICATE', c.peculiar.rawData)).join(''),
      rootPem: toPem('CERTIFICATE', chain.root.peculiar.rawData),
      trustDomain: signingCertTrustDomain(caCert.peculiar),
    });
  }

  /** Creates an intermediate CA signed by this one. */
  async createIntermediate(options: CertificateAuthorityOptions = {}): Promise<CertificateAuthority> {
    const keyAlgorithm = checkKeyAlgorithm(options.keyAlgorithm);
    const trustDomain = options.trustDomain === undefined ? this.trustDomain : checkTrustDomain(options.trustDomain);
    const validity = resolveValidity(options, YEAR_MS);
    const name = subjectName([options.commonName ?? DEFAULT_INTERMEDIATE_CN]);
    if (name.toString() === this.#cert.subjectName.toString()) {
      // A child named like its parent is "self-issued" to path builders and breaks chain building.
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `intermediate commonName must differ from its issuer's subject "${this.subject}"`,
      );
    }
    const keys = await generateKeyPair(keyAlgorithm);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerialNumber(),
        subject: name,
        issuer: this.#cert.subjectName,
        notBefore: validity.notBefore,
        notAfter: validity.notAfter,
        publicKey: keys.publicKey,
        signingKey: this.#signingKey,
        signingAlgorithm: KEY_SPECS[this.keyAlgorithm].sign,
        extensions: await caExtensions(keys.publicKey, trustDomain, await this.#authorityKeyIdentifier()),
      },
      webcrypto,
    );
    return new CertificateAuthority({
      cert,
      signingKey: keys.privateKey,
      keyAlgorithm,
      keyPem: exportPkcs8Pem(keys.privateKey),
      intermediatesPem: toPem('CERTIFICATE', cert.rawData) + this.intermediatesPem,
      rootPem: this.rootPem,
      trustDomain,
    });
  }

  /** Issues a leaf certificate with a fresh key. */
  async issue(options: IssueOptions = {}): Promise<IssuedCertificate> {
    const keyAlgorithm = checkKeyAlgorithm(options.keyAlgorithm);
    const validity = resolveValidity(options, DAY_MS);
    const sans = subjectAltNames(options);
    const commonNames =
      options.commonName === undefined ? (sans.length === 0 ? [DEFAULT_LEAF_CN] : []) : [options.commonName].flat();
    const keys = await generateKeyPair(keyAlgorithm);

    const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(options.isCa === true, undefined, true)];
    const keyUsage = options.keyUsage === undefined ? defaultLeafKeyUsage(keyAlgorithm) : options.keyUsage;
    if (keyUsage !== null) {
      extensions.push(new x509.KeyUsagesExtension(keyUsageFlags(keyUsage), true));
    }
    const extKeyUsage = options.extKeyUsage === undefined ? (['serverAuth', 'clientAuth'] as const) : options.extKeyUsage;
    if (extKeyUsage !== null) {
      extensions.push(new x509.ExtendedKeyUsageExtension(extKeyUsageOids(extKeyUsage), false));
    }
    if (sans.length > 0) {
      // X509-SVID §3.1 and RFC 5280 §4.2.1.6: with an empty subject the SAN extension is the identity, so critical.
      extensions.push(new x509.SubjectAlternativeNameExtension(sans, commonNames.length === 0));
    }
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto));
    extensions.push(await this.#authorityKeyIdentifier());

    const serialNumber = randomSerialNumber();
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber,
        subject: subjectName(commonNames),
        issuer: this.#cert.subjectName,
        notBefore: validity.notBefore,
        notAfter: validity.notAfter,
        publicKey: keys.publicKey,
        signingKey: this.#signingKey,
        signingAlgorithm: KEY_SPECS[this.keyAlgorithm].sign,
        extensions,
      },
      webcrypto,
    );
    const certPem = toPem('CERTIFICATE', cert.rawData);
    return new MintedCertificate({
      certPem,
      chainPem: certPem + this.intermediatesPem,
      keyPem: exportPkcs8Pem(keys.privateKey),
      serialNumber,
      fingerprint256: new NodeX509Certificate(Buffer.from(cert.rawData)).fingerprint256,
      spiffeId: options.spiffeId,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
    });
  }

  /**
   * Issues an X.509 v2 CRL signed by this CA that revokes the given serial numbers (hex, any case,
   * `:` separators allowed). Returns PEM (`-----BEGIN X509 CRL-----`), as `tls.createSecureContext({ crl })` reads it.
   */
  async createCrl(revokedSerials: string[], options: CrlOptions = {}): Promise<string> {
    const keyUsage = this.#cert.getExtension(x509.KeyUsagesExtension);
    if (keyUsage !== null && (keyUsage.usages & x509.KeyUsageFlags.cRLSign) === 0) {
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `CA "${this.subject}" has no cRLSign key usage and cannot sign a CRL`);
    }
    const thisUpdate = checkDate(options.thisUpdate, 'thisUpdate') ?? new Date(Date.now() - CLOCK_SKEW_MS);
    const nextUpdate = checkDate(options.nextUpdate, 'nextUpdate') ?? new Date(thisUpdate.getTime() + DAY_MS);
    const serials = [...new Set(revokedSerials.map(normalizeSerial))];

    // RFC 5280 §5.2.3: CRL numbers increase monotonically; time-based so they also increase across CA instances.
    const now = BigInt(Date.now());
    const crlNumber = now > this.#lastCrlNumber ? now : this.#lastCrlNumber + 1n;
    this.#lastCrlNumber = crlNumber;

    const crl = await x509.X509CrlGenerator.create(
      {
        issuer: this.#cert.subjectName,
        thisUpdate,
        nextUpdate,
        entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: thisUpdate })),
        extensions: [await this.#authorityKeyIdentifier(), new x509.Extension(OID_CRL_NUMBER, false, derInteger(crlNumber))],
        signingKey: this.#signingKey,
        signingAlgorithm: KEY_SPECS[this.keyAlgorithm].sign,
      },
      webcrypto,
    );
    return toPem('X509 CRL', crl.rawData);
  }

  /** Redacts the key from `JSON.stringify`. */
  toJSON(): Record<string, unknown> {
    return { subject: this.subject, trustDomain: this.trustDomain, fingerprint256: this.fingerprint256, keyPem: REDACTED };
  }

  /** Redacts the key from `util.inspect` (and so from console output) and from Nest's Logger. */
  [inspect.custom](): string {
    return `CertificateAuthority ${inspect(this.toJSON())}`;
  }

  /** The authorityKeyIdentifier for what this CA signs: its own subjectKeyIdentifier, so both always match. */
  async #authorityKeyIdentifier(): Promise<x509.AuthorityKeyIdentifierExtension> {
    const ski = this.#cert.getExtension(x509.SubjectKeyIdentifierExtension);
    if (ski !== null) {
      return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
    }
    return x509.AuthorityKeyIdentifierExtension.create(this.#cert.publicKey, false, webcrypto);
  }
}

/** The leaf returned by `issue`, with the key redacted from logs and JSON. */
class MintedCertificate implements IssuedCertificate {
  readonly certPem: string;
  readonly chainPem: string;
  readonly keyPem: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly spiffeId: string | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;

  constructor(fields: IssuedCertificate) {
    this.certPem = fields.certPem;
    this.chainPem = fields.chainPem;
    this.keyPem = fields.keyPem;
    this.serialNumber = fields.serialNumber;
    this.fingerprint256 = fields.fingerprint256;
    this.spiffeId = fields.spiffeId;
    this.notBefore = fields.notBefore;
    this.notAfter = fields.notAfter;
  }

  toJSON(): Record<string, unknown> {
    return { ...(this as IssuedCertificate), keyPem: REDACTED };
  }

  [inspect.custom](): string {
    return `IssuedCertificate ${inspect(this.toJSON())}`;
  }
}

async function generateKeyPair(algorithm: KeyAlgorithm): Promise<webcrypto.CryptoKeyPair> {
  // Extractable so the key can be handed out as PKCS#8; it never leaves this module otherwise.
  const pair = await webcrypto.subtle.generateKey(KEY_SPECS[algorithm].generate, true, ['sign', 'verify']);
  return pair as webcrypto.CryptoKeyPair;
}

function exportPkcs8Pem(privateKey: webcrypto.CryptoKey): string {
  return KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function caExtensions(
  publicKey: webcrypto.CryptoKey,
  trustDomain: string | undefined,
  authorityKeyIdentifier: x509.AuthorityKeyIdentifierExtension | undefined,
): Promise<x509.Extension[]> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
  ];
  if (authorityKeyIdentifier !== undefined) {
    extensions.push(authorityKeyIdentifier);
  }
  if (trustDomain !== undefined) {
    // X509-SVID §3.2: a signing certificate's SPIFFE ID is the trust domain alone, without a path.
    extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }], false));
  }
  return extensions;
}

function subjectAltNames(options: IssueOptions): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [];
  for (const uri of [...(options.spiffeId === undefined ? [] : [options.spiffeId]), ...(options.uris ?? [])]) {
    names.push({ type: 'url', value: uri });
  }
  for (const dns of options.dnsNames ?? []) {
    names.push({ type: 'dns', value: dns });
  }
  for (const ip of options.ipAddresses ?? []) {
    names.push({ type: 'ip', value: sanIp(ip) });
  }
  for (const email of options.emails ?? []) {
    names.push({ type: 'email', value: email });
  }
  return names;
}

/** The IP text @peculiar/asn1-x509 encodes correctly (see {@link canonicalIp}). */
function sanIp(ip: string): string {
  const canonical = canonicalIp(ip);
  if (canonical === undefined) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `ipAddresses: "${ip}" is not an IPv4 or IPv6 address`);
  }
  return canonical;
}

function subjectName(commonNames: readonly string[]): x509.Name {
  // One RDN per CN (not one multi-valued RDN), the way OpenSSL's -subj "/CN=a/CN=b" encodes it.
  return new x509.Name(commonNames.map((cn) => ({ CN: [cn] })));
}

function defaultLeafKeyUsage(keyAlgorithm: KeyAlgorithm): LeafKeyUsage[] {
  // RSA key exchange (TLS 1.2 RSA kx) needs keyEncipherment; EC and Ed25519 keys only ever sign.
  return keyAlgorithm === 'RSA-2048' ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
}

function keyUsageFlags(usages: readonly LeafKeyUsage[]): number {
  if (usages.length === 0) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      'keyUsage: an empty list cannot be encoded; pass null to omit the extension',
    );
  }
  return usages.reduce((flags, usage) => {
    const flag = KEY_USAGE_FLAGS[usage] as x509.KeyUsageFlags | undefined;
    if (flag === undefined) {
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `keyUsage: unknown usage "${String(usage)}"`);
    }
    return flags | flag;
  }, 0);
}

function extKeyUsageOids(usages: readonly LeafExtKeyUsage[]): string[] {
  if (usages.length === 0) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      'extKeyUsage: an empty list cannot be encoded; pass null to omit the extension',
    );
  }
  return usages.map((usage) => {
    const oid = EXT_KEY_USAGE_OIDS[usage] as string | undefined;
    if (oid === undefined) {
      throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `extKeyUsage: unknown usage "${String(usage)}"`);
    }
    return oid;
  });
}

function checkKeyAlgorithm(value: KeyAlgorithm | undefined): KeyAlgorithm {
  const algorithm = value ?? 'ECDSA-P256';
  if (!Object.hasOwn(KEY_SPECS, algorithm)) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `keyAlgorithm: unknown key algorithm "${String(algorithm)}"; use one of ${Object.keys(KEY_SPECS).join(', ')}`,
    );
  }
  return algorithm;
}

/** A trust domain name as SPIFFE-ID §2.1 defines it (checked by {@link parseTrustDomain}), without a scheme. */
function checkTrustDomain(trustDomain: string | undefined): string | undefined {
  if (trustDomain === undefined) return undefined;
  try {
    // A SPIFFE ID would parse to its trust domain: only the bare name is taken here.
    if (!trustDomain.includes(':/')) return parseTrustDomain(trustDomain);
  } catch {
    // Reported below, with what a trust domain name may hold.
  }
  throw new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `trustDomain: "${trustDomain}" is not a trust domain name (lower-case letters, digits, ".", "-", "_"; no scheme, port or path)`,
  );
}

function checkDate(value: Date | undefined, field: string): Date | undefined {
  if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `${field}: not a valid Date`);
  }
  return value;
}

function resolveValidity(
  options: { notBefore?: Date; notAfter?: Date; validityMs?: number },
  defaultValidityMs: number,
): { notBefore: Date; notAfter: Date } {
  const validityMs = options.validityMs ?? defaultValidityMs;
  if (!Number.isFinite(validityMs) || validityMs <= 0) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `validityMs: must be a positive number of milliseconds, got ${validityMs}`,
    );
  }
  const notBefore = checkDate(options.notBefore, 'notBefore') ?? new Date(Date.now() - CLOCK_SKEW_MS);
  const notAfter = checkDate(options.notAfter, 'notAfter') ?? new Date(notBefore.getTime() + validityMs);
  return { notBefore, notAfter };
}

/** 16 random bytes, positive and without a leading zero byte, so the DER INTEGER is exactly 16 octets. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString('hex');
}

function normalizeSerial(serial: string): string {
  const hex = serial.replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `revokedSerials: "${serial}" is not a hexadecimal serial number`);
  }
  const even = hex.length % 2 === 0 ? hex : `0${hex}`;
  // Strip DER sign padding and leading zeros so "00ab" and "ab" name the same certificate.
  return even.replace(/^(00)+(?=..)/, '');
}

/** DER encoding of a non-negative INTEGER. */
function derInteger(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) {
    hex = `0${hex}`;
  }
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) {
    hex = `00${hex}`;
  }
  const content = Buffer.from(hex, 'hex');
  return Uint8Array.from([0x02, content.length, ...content]);
}

function toPem(label: string, der: ArrayBuffer): string {
  return encodePem(label, new Uint8Array(der));
}
