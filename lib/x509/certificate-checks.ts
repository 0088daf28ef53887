import { X509Certificate } from 'node:crypto';
import type { CertificateInfo } from './certificate.js';

/**
 * Per-certificate derived objects, cached on the (immutable) CertificateInfo so that re-checking open connections
 * against a new bundle or CRL does not re-parse or re-verify anything already seen.
 */
const nodeCertificates = new WeakMap<CertificateInfo, X509Certificate>();
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

/** How messages name a certificate: its subject, or its first SAN when the subject is empty (typical of SVIDs). */
export function certificateLabel(info: CertificateInfo): string {
  const name = info.subject !== '' ? info.subject : (info.uris[0] ?? info.dnsNames[0] ?? info.ipAddresses[0]);
  return name === undefined ? `serial ${info.serialNumber}` : JSON.stringify(name);
}
