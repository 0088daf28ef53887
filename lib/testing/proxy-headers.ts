import { parseCertificatesPem } from '../x509/certificate.js';
import type { IssuedCertificate } from '../x509/certificate-authority.js';

/** What an XFCC element should carry, as Envoy's `set_current_client_cert_details` chooses. */
export interface XfccElementOptions {
  /** `By`: the proxy's own SAN. */
  by?: string;
  /** Add `Cert` (URL-encoded PEM of the leaf). @default false (Istio's default) */
  cert?: boolean;
  /** Add `Chain` (URL-encoded PEM of the whole chain, leaf first). @default false */
  chain?: boolean;
  /** Add `Subject` (RFC 2253, as Envoy prints it). @default true */
  subject?: boolean;
  /** Add `URI` (the leaf's URI SAN). @default true */
  uri?: boolean;
  /** Add one `DNS` per DNS SAN. @default true */
  dns?: boolean;
  /** Replace the text fields with these values (to write hostile or inconsistent elements on purpose). */
  override?: { subject?: string; uri?: string; dns?: string[]; hash?: string };
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** One XFCC element about `peer`'s certificate, written the way Envoy writes it (`By;Hash;Cert;Chain;Subject;URI;DNS`). */
export function xfccElement(peer: Pick<IssuedCertificate, 'certPem' | 'chainPem'>, options: XfccElementOptions = {}): string {
  // The package's own DER reader: Node's subjectAltName string is not to be split (CVE-2021-44532).
  const [leaf] = parseCertificatesPem(peer.certPem);
  if (leaf === undefined) throw new TypeError('certPem holds no certificate');
  const parts: string[] = [];
  if (options.by !== undefined) parts.push(`By=${options.by}`);
  parts.push(`Hash=${options.override?.hash ?? leaf.fingerprint256.replaceAll(':', '').toLowerCase()}`);
  if (options.cert) parts.push(`Cert=${quoted(encodeURIComponent(peer.certPem))}`);
  if (options.chain) parts.push(`Chain=${quoted(encodeURIComponent(peer.chainPem))}`);
  if (options.subject ?? true) {
    const subject = options.override?.subject ?? leaf.subject;
    parts.push(`Subject=${quoted(subject)}`);
  }
  const uri = options.override?.uri ?? leaf.uris[0];
  if ((options.uri ?? true) && uri !== undefined) parts.push(`URI=${uri}`);
  for (const dns of options.dns === false ? [] : (options.override?.dns ?? leaf.dnsNames)) parts.push(`DNS=${dns}`);
  return parts.join(';');
}

/** RFC 9440 `Client-Cert` for `peer`'s leaf, and `Client-Cert-Chain` for the rest of its chain (absent when empty). */
export function rfc9440Fields(peer: Pick<IssuedCertificate, 'chainPem'>): {
  clientCert: string;
  clientCertChain: string | undefined;
} {
  const ders = parseCertificatesPem(peer.chainPem).map((certificate) => certificate.der.toString('base64'));
  const [leaf, ...rest] = ders;
  if (leaf === undefined) throw new TypeError('chainPem holds no certificate');
  return { clientCert: `:${leaf}:`, clientCertChain: rest.length === 0 ? undefined : rest.map((der) => `:${der}:`).join(', ') };
}
