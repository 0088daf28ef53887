import { X509Certificate } from 'node:crypto';
import type { CertificateInfo } from '../identity/certificate.js';
import { certificateNames } from './der.js';
import type { CertificateNames } from './der.js';

/**
 * Per-certificate derived objects, cached on the (immutable) CertificateInfo so that re-checking open connections
 * against a new bundle or CRL does not re-parse or re-verify anything already seen.
 */
const nodeCertificates = new WeakMap<CertificateInfo, X509Certificate>();
const names = new WeakMap<CertificateInfo, CertificateNames | null>();
const signatures = new WeakMap<CertificateInfo, WeakMap<CertificateInfo, boolean>>();

/** Node's X509Certificate for a parsed certificate (built once per CertificateInfo). */
export function nodeCertificate(info: CertificateInfo): X509Certificate {
  let certificate = nodeCertificates.get(info);
  if (certificate === undefined) {
    certificate = new X509Certificate(info.der);
    nodeCertificates.set(info, certificate);
  }
  return certificate;
}

/** The encoded issuer and subject Names, or undefined when the DER does not have the certificate shape. */
export function rawNames(info: CertificateInfo): CertificateNames | undefined {
  let cached = names.get(info);
  if (cached === undefined) {
    cached = certificateNames(info.der) ?? null;
    names.set(info, cached);
  }
  return cached ?? undefined;
}

/** True when `issuer`'s subject is `subject`'s issuer, byte for byte. */
export function namesIssuer(subject: CertificateInfo, issuer: CertificateInfo): boolean {
  const a = rawNames(subject);
  const b = rawNames(issuer);
  return a !== undefined && b !== undefined && a.issuer.equals(b.subject);
}

/** True when `subject`'s signature verifies with `issuer`'s public key (cached per pair). */
export function signatureVerifies(subject: CertificateInfo, issuer: CertificateInfo): boolean {
  let byIssuer = signatures.get(subject);
  if (byIssuer === undefined) {
    byIssuer = new WeakMap();
    signatures.set(subject, byIssuer);
  }
  let verified = byIssuer.get(issuer);
  if (verified === undefined) {
    try {
      verified = nodeCertificate(subject).verify(nodeCertificate(issuer).publicKey);
    } catch {
      // Unsupported key or signature algorithm: not a signature we can accept.
      verified = false;
    }
    byIssuer.set(issuer, verified);
  }
  return verified;
}

/** Whether a certificate's validity period contains `now`. */
export function validityAt(info: CertificateInfo, now: Date): 'valid' | 'not-yet-valid' | 'expired' {
  if (now.getTime() < info.notBefore.getTime()) return 'not-yet-valid';
  if (now.getTime() > info.notAfter.getTime()) return 'expired';
  return 'valid';
}

/** Serial numbers as lower-case hex without leading zero bytes, so that CRL entries and certificates compare equal. */
export function normalizeSerial(hex: string): string {
  let serial = hex.toLowerCase().replace(/[^0-9a-f]/g, '');
  if (serial.length % 2 === 1) serial = `0${serial}`;
  while (serial.length > 2 && serial.startsWith('00')) serial = serial.slice(2);
  return serial;
}

/** How messages name a certificate: its subject, or its first SAN when the subject is empty (typical of SVIDs). */
export function certificateLabel(info: CertificateInfo): string {
  const name = info.subject !== '' ? info.subject : (info.uris[0] ?? info.dnsNames[0] ?? info.ipAddresses[0]);
  return name === undefined ? `serial ${info.serialNumber}` : JSON.stringify(name);
}
