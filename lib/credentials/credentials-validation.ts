import { createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CredentialsError, MtlsError } from '../errors/mtls.errors.js';
import type { CredentialsErrorCode, CredentialsErrorDetail } from '../errors/mtls.errors.js';
import { parseCertificateDer } from '../x509/certificate.js';
import type { CertificateInfo } from '../x509/certificate.js';
import { peerIdentityFromCertificate } from '../identity/peer-identity.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { claimsSpiffeId, svidProblems } from '../identity/svid-rules.js';
import { certificateLabel, nodeCertificate, validityAt } from '../x509/certificate-checks.js';
import { USAGE_OIDS, verifyChain } from '../x509/chain-verifier.js';
import { formatDuration } from '../format/duration.js';
import { crlIssuerMismatch, parseCrlPem } from '../x509/crl.js';
import { rememberRevocationLists } from './revocation-lists.js';
import type { RevocationList } from '../x509/crl.js';
import { crlIssuerKey, crlPosition } from './crl-freshness.js';
import type { CredentialFiles, CredentialUsage, Credentials, RawCredentials } from './credentials.interfaces.js';
import { bindTrustDomainBundles } from '../identity/trust-domain-bundles.js';
import { bundleTrustDomainProblem } from '../identity/trust-anchors.js';
import { decodePemBlock, findPemBlocks, isEncryptedKeyBlock, isPrivateKeyLabel } from '../x509/pem.js';
import type { PemBlock } from '../x509/pem.js';
import type { PrivateKeyMaterial } from './private-key.js';

/** Options of {@link validateCredentials}. */
export interface ValidateOptions {
  /** Usages the leaf must carry in its EKU. @default ['serverAuth', 'clientAuth'] */
  usages?: readonly CredentialUsage[];
  /** @default new Date() */
  now?: Date;
  /** Warn when less than this remains before NotAfter. @default a third of the certificate's lifetime */
  expiryWarningMs?: number;
}

const DEFAULT_USAGES: readonly CredentialUsage[] = ['serverAuth', 'clientAuth'];

/**
 * Critical extensions OpenSSL 3 processes itself (`X509_supported_extension`) beyond the four the certificate parser
 * reads; a certificate with any other critical extension fails every handshake (X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION).
 */
const OPENSSL_CRITICAL_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.5.29.30', // nameConstraints
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies
  '2.5.29.33', // policyMappings
  '2.5.29.36', // policyConstraints
  '2.5.29.54', // inhibitAnyPolicy
  '1.3.6.1.5.5.7.1.7', // sbgp-ipAddrBlock (RFC 3779)
  '1.3.6.1.5.5.7.1.8', // sbgp-autonomousSysNum (RFC 3779)
  '1.3.6.1.5.5.7.1.14', // proxyCertInfo
  '1.3.6.1.5.5.7.48.1.5', // id-pkix-ocsp-nocheck
  '2.16.840.1.113730.1.1', // Netscape certificate type
]);

/** PEM labels Node's createPrivateKey loads unencrypted: PKCS#8, PKCS#1 and SEC1. */
const LOADABLE_KEY_LABELS: ReadonlySet<string> = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);
const SVID_PREFIX = 'x509svid: certificate validation failed: ';
const SVID_FIX =
  'the issuer must mint an X509-SVID (SPIRE, cert-manager csi-driver-spiffe, or a CA template following the X509-SVID spec)';

/**
 * Validates a raw set: PEM structure, key, trust bundle, CRLs, key ↔ leaf match, leaf validity, critical extensions
 * OpenSSL supports, chain to the bundle, extended key usage, X509-SVID rules, in that order. The first failure throws
 * a CredentialsError naming the file, the field and the fix; nothing here ever puts key bytes into a message.
 * `createSecureContext` (secure-context.ts) is the final gate: OpenSSL may still refuse e.g. a key below its security
 * level.
 */
export function validateCredentials(raw: RawCredentials, options: ValidateOptions = {}): Credentials {
  const now = options.now ?? new Date();
  const usages = options.usages ?? DEFAULT_USAGES;
  const { files } = raw;
  const warnings: string[] = [];

  const certificateFile = parseCertificateFile(raw.certPem, files);
  if (certificateFile.holdsPrivateKey) {
    warnings.push(
      `${files.cert} holds a private key next to the certificates; certificate files are often world-readable, keep the key only in ${files.key}`,
    );
  }
  const chain = certificateFile.certificates;
  const leaf = chain[0]!;
  const intermediates = chain.slice(1);
  const key = loadPrivateKey(raw.key, files);
  const caCertificates = parseTrustBundle(raw.caPem, files);
  const crls = parseCrls(raw, [...caCertificates, ...intermediates], now, warnings);
  checkOneCrlPerIssuer(raw, crls);

  checkKeyMatchesLeaf(leaf, key, files);
  checkLeafValidity(leaf, now, files);
  checkCriticalExtensions(chain, files);
  checkChain(leaf, intermediates, caCertificates, crls, usages, now, files);
  checkExtendedKeyUsage(leaf, usages, files);
  checkLeafProfile(leaf, intermediates, files);
  const identity = identityOf(leaf, files);
  const federation = trustDomainBundles(raw, identity, caCertificates);
  const trusted = federation === undefined ? caCertificates : federation.all;

  const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
  const remaining = leaf.notAfter.getTime() - now.getTime();
  if (remaining < (options.expiryWarningMs ?? lifetime / 3)) {
    warnings.push(
      `${files.cert} expires at ${leaf.notAfter.toISOString()} (${formatDuration(remaining)} left of ${formatDuration(lifetime)}); check that its issuer renews it`,
    );
  }

  const credentials: Credentials = {
    files,
    chain: Object.freeze([...chain]),
    leaf,
    identity,
    caCertificates: Object.freeze([...trusted]),
    caNotAfter: new Date(Math.min(...trusted.map((ca) => ca.notAfter.getTime()))),
    ...(federation === undefined ? {} : { trustDomainBundles: federation.byTrustDomain }),
    crlPems: raw.crlPems,
    key: raw.key,
    contentHash: raw.contentHash,
    warnings: Object.freeze(warnings),
  };
  rememberRevocationLists(credentials, crls);
  if (federation !== undefined) {
    bindTrustDomainBundles(credentials.caCertificates, { home: identity.trustDomain!, bundles: federation.byTrustDomain });
  }
  return credentials;
}

function fail(code: CredentialsErrorCode, reason: string, detail: CredentialsErrorDetail): CredentialsError {
  return new CredentialsError(code, reason, detail);
}

/** Why a file without CERTIFICATE blocks looks the way it does. */
function missingCertificatesReason(data: Buffer, blocks: readonly PemBlock[]): { reason: string; fix?: string } {
  if (blocks.length === 0) {
    // 0x30 is a DER SEQUENCE: a binary certificate rather than garbage.
    return data[0] === 0x30
      ? { reason: 'the file is DER, not PEM', fix: 'convert it: `openssl x509 -inform DER -in cert.der -out cert.pem`' }
      : { reason: 'no PEM block found' };
  }
  return { reason: `no CERTIFICATE block (found ${blocks.map((b) => `"${b.label}"`).join(', ')})` };
}

function parseCertificateFile(
  pem: string,
  files: CredentialFiles,
): { certificates: CertificateInfo[]; holdsPrivateKey: boolean } {
  const detail = { file: files.cert, field: 'certificate' as const };
  const data = Buffer.from(pem, 'utf8');
  const scan = findPemBlocks(data);
  if (!scan.ok) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', scan.reason, { ...detail, fix: 'rewrite the file as PEM CERTIFICATE blocks' });
  }
  const keyBlocks = scan.blocks.filter((block) => isPrivateKeyLabel(block.label));
  const certificateBlocks = scan.blocks.filter((block) => block.label === 'CERTIFICATE');
  const other = scan.blocks.find((block) => block.label !== 'CERTIFICATE' && !isPrivateKeyLabel(block.label));
  if (certificateBlocks.length === 0) {
    const missing = missingCertificatesReason(data, scan.blocks);
    const swapped = keyBlocks.length > 0 && keyBlocks.length === scan.blocks.length;
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', swapped ? 'the file holds a private key, not a certificate' : missing.reason, {
      ...detail,
      fix: swapped
        ? `swap the certificate and key paths (key: ${files.key})`
        : (missing.fix ?? 'point the option at the PEM certificate chain (leaf first, then intermediates)'),
    });
  }
  if (other !== undefined) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `unexpected "${other.label}" block in the certificate chain`, {
      ...detail,
      fix: 'keep only the leaf certificate followed by its intermediates',
    });
  }
  const certificates = certificateBlocks.map((block, i) =>
    parseBlock(data, block, `certificate #${i + 1}`, detail, 'reissue the certificate or restore the file from its source'),
  );
  return { certificates, holdsPrivateKey: keyBlocks.length > 0 };
}

function parseBlock(
  data: Buffer,
  block: PemBlock,
  what: string,
  detail: Omit<CredentialsErrorDetail, 'fix'>,
  fix: string,
): CertificateInfo {
  const der = decodePemBlock(data, block);
  if (der === undefined) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `${what} is not valid base64`, { ...detail, fix });
  }
  try {
    return parseCertificateDer(der);
  } catch (error) {
    // Certificate bytes are public; the parser's message helps and cannot contain key material.
    const why = error instanceof MtlsError ? `: ${error.message}` : '';
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `${what} does not parse as X.509${why}`, { ...detail, fix });
  }
}

/** Loads the key with Node and returns the KeyObject for the match check. The key bytes never reach a message. */
function loadPrivateKey(material: PrivateKeyMaterial, files: CredentialFiles): KeyObject {
  const detail = { file: files.key, field: 'key' as const };
  const data = material.pem();
  const scan = findPemBlocks(data);
  if (!scan.ok) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', scan.reason, { ...detail, fix: 'restore the key file from its source' });
  }
  const keyBlocks = scan.blocks.filter((block) => block.label.endsWith('PRIVATE KEY'));
  if (keyBlocks.length === 0) {
    const labels = scan.blocks.map((b) => b.label);
    if (labels.length === 0) {
      const der = data[0] === 0x30;
      throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', der ? 'the key is DER, not PEM' : 'no PEM private key block found', {
        ...detail,
        fix: der
          ? 'convert it: `openssl pkey -inform DER -in key.der -out key.pem`'
          : 'point the option at the PEM private key (a "PRIVATE KEY" block)',
      });
    }
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `no private key block (found ${labels.map((l) => `"${l}"`).join(', ')})`, {
      ...detail,
      fix: labels.includes('CERTIFICATE')
        ? `swap the certificate and key paths (certificate: ${files.cert})`
        : 'point the option at the PEM private key (a "PRIVATE KEY" block)',
    });
  }
  if (keyBlocks.length > 1) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `the file holds ${keyBlocks.length} private keys`, {
      ...detail,
      fix: 'keep exactly the key of the certificate',
    });
  }
  const block = keyBlocks[0]!;
  if (isEncryptedKeyBlock(data, block)) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', 'the private key is encrypted', {
      ...detail,
      fix: 'provide it unencrypted and protect it with file permissions (`openssl pkey -in key.pem -out key.pem` asks for the passphrase once)',
    });
  }
  if (!LOADABLE_KEY_LABELS.has(block.label)) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `"${block.label}" keys are not supported`, {
      ...detail,
      fix: 'convert it to PKCS#8: `openssl pkey -in key.pem -out key.pkcs8.pem`',
    });
  }
  try {
    return createPrivateKey({ key: data.subarray(block.start, block.end), format: 'pem' });
  } catch (error) {
    // Only the error code: Node's message is OpenSSL's, but nothing derived from the input may reach a log.
    const code = (error as { code?: unknown }).code;
    const safeCode = typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? ` (${code})` : '';
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `the "${block.label}" block does not load as a private key${safeCode}`, {
      ...detail,
      fix: 'restore the key file from its source, or reissue the certificate and key',
    });
  }
}

function parseTrustBundle(pem: string, files: CredentialFiles): CertificateInfo[] {
  const detail = { file: files.ca, field: 'ca' as const };
  const fix = 'point the option at the PEM trust bundle (the root CA certificates peers chain to)';
  const data = Buffer.from(pem, 'utf8');
  const scan = findPemBlocks(data);
  if (!scan.ok) throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', scan.reason, { ...detail, fix });
  const other = scan.blocks.find((block) => block.label !== 'CERTIFICATE');
  if (other !== undefined && isPrivateKeyLabel(other.label)) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', 'the trust bundle holds a private key', {
      ...detail,
      fix: 'remove it from the bundle now and rotate it: the bundle is distributed to every workload',
    });
  }
  if (other !== undefined) {
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `unexpected "${other.label}" block in the trust bundle`, {
      ...detail,
      fix: 'keep only CERTIFICATE blocks',
    });
  }
  if (scan.blocks.length === 0) {
    const missing = missingCertificatesReason(data, scan.blocks);
    throw fail('ERR_MTLS_CREDENTIALS_NOT_PEM', `the trust bundle has no certificate: ${missing.reason}`, {
      ...detail,
      fix: missing.fix ?? fix,
    });
  }
  return scan.blocks.map((block, i) => {
    const ca = parseBlock(data, block, `bundle certificate #${i + 1}`, detail, fix);
    if (!ca.isCa) {
      throw fail(
        'ERR_MTLS_CHAIN_UNTRUSTED',
        `bundle certificate #${i + 1} ${certificateLabel(ca)} is not a CA (basicConstraints cA is not true)`,
        {
          ...detail,
          fix: 'keep only CA certificates in the trust bundle (a leaf there would be trusted to issue nothing and is a sign of a wrong file)',
        },
      );
    }
    const unsupported = unsupportedCriticalExtension(ca);
    if (unsupported !== undefined) {
      throw fail(
        'ERR_MTLS_CHAIN_UNTRUSTED',
        `bundle certificate #${i + 1} ${certificateLabel(ca)} has critical extension ${unsupported}, which OpenSSL does not support: it would reject every chain through this CA`,
        { ...detail, fix: 'remove that CA from the trust bundle, or reissue it without the extension (or with it non-critical)' },
      );
    }
    return ca;
  });
}

/**
 * Parses every CRL and checks it is current and, where its issuer is known (bundle or own chain), signed by it.
 * A CRL of a CA we cannot see (a sibling intermediate that only peers present) is kept with a warning: OpenSSL
 * verifies its signature against the peer's chain at handshake time.
 */
function parseCrls(raw: RawCredentials, knownCas: readonly CertificateInfo[], now: Date, warnings: string[]): RevocationList[] {
  return raw.crlPems.map((pem, i) => {
    const file = raw.crlFiles[i] ?? raw.files.crl.join(', ');
    const detail = { file, field: 'crl' as const };
    const what = `CRL #${i + 1}`;
    const parsed = parseCrlPem(pem);
    if (!parsed.ok) {
      const subject = parsed.issuer === undefined ? what : `${what} of "${parsed.issuer}"`;
      const verdict = parsed.kind === 'malformed' ? 'does not parse' : 'is refused';
      throw fail('ERR_MTLS_CRL_INVALID', `${subject} ${verdict}: ${parsed.reason}`, { ...detail, fix: parsed.fix });
    }
    const crl = parsed.crl;
    const sameName = knownCas.filter((ca) => crl.issuerDer.equals(ca.subjectDer));
    if (sameName.length === 0) {
      warnings.push(
        `${file}: ${what} is issued by "${crl.issuer}", which is neither in the trust bundle nor in the certificate chain; its signature is checked only when a peer presents that CA`,
      );
    } else if (!sameName.some((ca) => crlIssuerMismatch(crl, ca) === undefined)) {
      throw fail(
        'ERR_MTLS_CRL_INVALID',
        `${what} of "${crl.issuer}" is not validly signed: ${crlIssuerMismatch(crl, sameName[0]!)}`,
        {
          ...detail,
          fix: 'use the CRL published by that CA (a CRL from another CA of the same name, or a tampered file, is refused)',
        },
      );
    }
    if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now.getTime()) {
      throw fail('ERR_MTLS_CRL_INVALID', `${what} of "${crl.issuer}" expired at ${crl.nextUpdate.toISOString()} (nextUpdate)`, {
        ...detail,
        fix: 'fetch a fresh CRL from the CA: once a CRL expires Node rejects every peer of that CA (CRL_HAS_EXPIRED)',
      });
    }
    if (crl.thisUpdate.getTime() > now.getTime()) {
      throw fail(
        'ERR_MTLS_CRL_INVALID',
        `${what} of "${crl.issuer}" is not valid before ${crl.thisUpdate.toISOString()} (thisUpdate)`,
        {
          ...detail,
          fix: "check this host's clock and the CA's",
        },
      );
    }
    return crl;
  });
}

/**
 * At most one CRL per issuer (Name + authorityKeyIdentifier, as the freshness rule of reloads keys them): with two,
 * OpenSSL uses the one with the later thisUpdate, and an older CRL kept next to the current one is a rollback waiting
 * for the newer file to go. The same CRL twice is harmless and allowed.
 */
function checkOneCrlPerIssuer(raw: RawCredentials, crls: readonly RevocationList[]): void {
  const seen = new Map<string, number>();
  for (const [i, crl] of crls.entries()) {
    const key = crlIssuerKey(crl);
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, i);
    } else if (!crls[first]!.der.equals(crl.der)) {
      const file = raw.crlFiles[i] ?? raw.files.crl.join(', ');
      const firstFile = raw.crlFiles[first] ?? file;
      throw fail(
        'ERR_MTLS_CRL_INVALID',
        `CRL #${i + 1} of "${crl.issuer}" (${crlPosition(crl)}) and CRL #${first + 1}${firstFile === file ? '' : ` in ${firstFile}`} (${crlPosition(crls[first]!)}) are two different CRLs of one CA`,
        { file, field: 'crl', fix: "keep only the CA's current CRL" },
      );
    }
  }
}

function checkKeyMatchesLeaf(leaf: CertificateInfo, key: KeyObject, files: CredentialFiles): void {
  let matches: boolean;
  try {
    matches = nodeCertificate(leaf).checkPrivateKey(key);
  } catch {
    matches = false;
  }
  if (!matches) {
    throw fail('ERR_MTLS_KEY_MISMATCH', `the private key does not belong to the certificate in ${files.cert}`, {
      file: files.key,
      field: 'key',
      fix: 'install the key issued with this certificate; when a writer updates cert and key one after the other, the reload retries until both match',
    });
  }
}

/** The first critical extension of `certificate` that OpenSSL cannot process, if any. */
function unsupportedCriticalExtension(certificate: CertificateInfo): string | undefined {
  return certificate.unhandledCriticalExtensions.find((oid) => !OPENSSL_CRITICAL_EXTENSIONS.has(oid));
}

/** Peers running OpenSSL reject a chain holding a critical extension it does not support, in every handshake. */
function checkCriticalExtensions(chain: readonly CertificateInfo[], files: CredentialFiles): void {
  for (const [i, certificate] of chain.entries()) {
    const unsupported = unsupportedCriticalExtension(certificate);
    if (unsupported === undefined) continue;
    const which = i === 0 ? 'the certificate' : `intermediate ${certificateLabel(certificate)} (certificate #${i + 1})`;
    throw fail(
      'ERR_MTLS_CHAIN_UNTRUSTED',
      `${which} has critical extension ${unsupported}, which OpenSSL does not support: every peer would reject it (unhandled critical extension)`,
      {
        file: files.cert,
        field: 'certificate',
        fix: 'have the issuer reissue it without that extension, or with the extension marked non-critical',
      },
    );
  }
}

function checkLeafValidity(leaf: CertificateInfo, now: Date, files: CredentialFiles): void {
  const detail = { file: files.cert, field: 'certificate' as const };
  const validity = validityAt(leaf, now);
  if (validity === 'not-yet-valid') {
    throw fail(
      'ERR_MTLS_CERT_NOT_YET_VALID',
      `the certificate is not valid before ${leaf.notBefore.toISOString()} (now ${now.toISOString()})`,
      { ...detail, fix: "check this host's clock and the issuer's" },
    );
  }
  if (validity === 'expired') {
    throw fail('ERR_MTLS_CERT_EXPIRED', `the certificate expired at ${leaf.notAfter.toISOString()} (now ${now.toISOString()})`, {
      ...detail,
      fix: 'renew it and check why its issuer did not (cert-manager Certificate status, Vault Agent, SPIRE agent logs)',
    });
  }
}

function checkChain(
  leaf: CertificateInfo,
  intermediates: readonly CertificateInfo[],
  caCertificates: readonly CertificateInfo[],
  crls: readonly RevocationList[],
  usages: readonly CredentialUsage[],
  now: Date,
  files: CredentialFiles,
): void {
  const result = verifyChain(leaf, intermediates, caCertificates, { now, crls, usages });
  if (result.ok) return;
  switch (result.kind) {
    case 'crl-missing':
    case 'crl-expired':
    case 'crl-not-yet-valid':
      throw fail('ERR_MTLS_CRL_INVALID', result.reason, {
        file: files.crl.join(', '),
        field: 'crl',
        fix:
          result.kind === 'crl-missing'
            ? 'add a current CRL from every CA of the chain, or configure no CRL at all'
            : 'fetch a fresh CRL from that CA',
      });
    case 'revoked':
      throw fail('ERR_MTLS_CHAIN_UNTRUSTED', result.reason, {
        file: files.cert,
        field: 'certificate',
        fix:
          result.certificate === leaf
            ? 'issue a new certificate: this one is revoked'
            : 'a CA of the chain is revoked; reissue from a current CA',
      });
    default: {
      const culprit = result.certificate;
      if (culprit !== undefined && culprit !== leaf && intermediates.includes(culprit) && !caCertificates.includes(culprit)) {
        throw fail('ERR_MTLS_CHAIN_UNTRUSTED', `intermediate ${result.reason}`, {
          file: files.cert,
          field: 'certificate',
          fix: 'the certificate file must hold the leaf followed by the valid intermediate CAs that issued it',
        });
      }
      throw fail(
        'ERR_MTLS_CHAIN_UNTRUSTED',
        `the certificate (issuer "${leaf.issuer}") does not chain to the trust bundle: ${result.reason}`,
        {
          file: files.ca,
          field: 'ca',
          fix: `put the root CA of "${leaf.issuer}" into the trust bundle, and its intermediates after the leaf in ${files.cert}`,
        },
      );
    }
  }
}

function checkExtendedKeyUsage(leaf: CertificateInfo, usages: readonly CredentialUsage[], files: CredentialFiles): void {
  // X509-SVID §4.4 only says a leaf SHOULD carry EKU; without the extension every usage is allowed (OpenSSL agrees).
  if (leaf.extKeyUsage === undefined) return;
  const missing = usages.filter((usage) => !leaf.extKeyUsage!.includes(USAGE_OIDS[usage]));
  if (missing.length === 0) return;
  throw fail(
    'ERR_MTLS_EKU_MISSING',
    `certificate lacks the ${missing.join(' and ')} extended key usage${missing.length > 1 ? 's' : ''}`,
    {
      file: files.cert,
      field: 'certificate',
      fix: 'the issuer must add it (cert-manager: spec.usages: [server auth, client auth])',
    },
  );
}

/**
 * The X509-SVID rules for our own leaf (`svidProblems` with go-spiffe's own-SVID checks and wording) and, for any leaf,
 * that it cannot sign certificates. For an SVID, also the two profile rules go-spiffe leaves out and strict verifiers
 * apply: A9 (SAN critical when the subject is empty) and A10 (key usage critical).
 */
function checkLeafProfile(leaf: CertificateInfo, intermediates: readonly CertificateInfo[], files: CredentialFiles): void {
  const svid = claimsSpiffeId(leaf);
  const detail = { file: files.cert, field: 'certificate' as const, fix: SVID_FIX };
  const problem = svidProblems(leaf, 'own', intermediates)[0];
  if (problem !== undefined) {
    if (svid) throw fail('ERR_MTLS_SVID_INVALID', `${SVID_PREFIX}${problem.message}`, detail);
    // Peers refuse a CA certificate as an identity (peerIdentityFromCertificate), so refuse to present one.
    throw fail('ERR_MTLS_SVID_INVALID', problem.message, {
      ...detail,
      fix: 'issue an end-entity certificate (basicConstraints cA false, no keyCertSign or cRLSign)',
    });
  }
  if (!svid) return;
  // X509-SVID §3.1 (A9): with an empty subject the URI SAN is the whole identity.
  if (leaf.subject === '' && !leaf.subjectAltNameCritical) {
    throw fail(
      'ERR_MTLS_SVID_INVALID',
      `${SVID_PREFIX}leaf certificate with an empty subject must have its subjectAltName extension marked critical`,
      detail,
    );
  }
  // X509-SVID §4.3 (A10): present (svidProblems required digitalSignature) and critical.
  if (!leaf.keyUsageCritical) {
    throw fail(
      'ERR_MTLS_SVID_INVALID',
      `${SVID_PREFIX}leaf certificate must have its key usage extension marked critical`,
      detail,
    );
  }
}

/**
 * Federation: the bundle of each trust domain, own one first, and their union (what OpenSSL is given). A federated
 * bundle keyed by our own trust domain is refused: it would let another party's CA mint identities in ours. So is a
 * bundle, own or federated, that holds a CA declaring another trust domain than its own.
 */
function trustDomainBundles(
  raw: RawCredentials,
  identity: PeerIdentity,
  own: readonly CertificateInfo[],
): { byTrustDomain: ReadonlyMap<string, readonly CertificateInfo[]>; all: readonly CertificateInfo[] } | undefined {
  if (raw.federatedBundlePems === undefined) return undefined;
  const home = identity.trustDomain;
  if (home === undefined) {
    throw fail('ERR_MTLS_SVID_INVALID', 'federated bundles need an X509-SVID: the certificate has no SPIFFE ID', {
      file: raw.files.cert,
      field: 'certificate',
      fix: SVID_FIX,
    });
  }
  checkBundleTrustDomain(home, own, raw.files.ca);
  const byTrustDomain = new Map<string, readonly CertificateInfo[]>([[home, Object.freeze([...own])]]);
  const all = [...own];
  const seen = new Set(own.map((ca) => ca.fingerprint256));
  for (const [trustDomain, pem] of raw.federatedBundlePems) {
    const file = `${raw.files.ca} [federated trust domain ${trustDomain}]`;
    if (trustDomain === home) {
      throw fail('ERR_MTLS_CHAIN_UNTRUSTED', `a federated bundle is keyed by our own trust domain ${home}`, {
        file,
        field: 'ca',
        fix: 'the Workload API must send our own bundle only with the SVID; check the federation relationships of the SPIRE server',
      });
    }
    const bundle = parseTrustBundle(pem, { ...raw.files, ca: file });
    checkBundleTrustDomain(trustDomain, bundle, file);
    byTrustDomain.set(trustDomain, Object.freeze(bundle));
    for (const ca of bundle) {
      if (seen.has(ca.fingerprint256)) continue;
      seen.add(ca.fingerprint256);
      all.push(ca);
    }
  }
  return { byTrustDomain, all };
}

/** Refuses a bundle that holds the CA of another trust domain than the one it was delivered for (federation). */
function checkBundleTrustDomain(trustDomain: string, bundle: readonly CertificateInfo[], file: string): void {
  const problem = bundleTrustDomainProblem(trustDomain, bundle);
  if (problem === undefined) return;
  throw fail('ERR_MTLS_CHAIN_UNTRUSTED', problem, {
    file,
    field: 'ca',
    fix: `the Workload API must send each trust domain's own CAs only; check the federation relationship (bundle endpoint) of ${trustDomain} on the SPIRE server`,
  });
}

function identityOf(leaf: CertificateInfo, files: CredentialFiles): PeerIdentity {
  try {
    return peerIdentityFromCertificate(leaf);
  } catch (error) {
    throw fail('ERR_MTLS_SVID_INVALID', error instanceof MtlsError ? error.message : 'the certificate is not a usable identity', {
      file: files.cert,
      field: 'certificate',
      fix: SVID_FIX,
    });
  }
}
