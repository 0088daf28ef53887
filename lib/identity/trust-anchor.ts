import type { CertificateInfo } from '../x509/certificate.js';
import { parseSpiffeId, spiffeIdError } from './spiffe-id.js';
import { hasSpiffeScheme } from './svid-rules.js';

/*
 * X509-SVID §5.1 validates a leaf against the bundle of *its own* trust domain; a TLS stack given one merged bundle
 * (Node's `ca`) accepts any root for any SPIFFE ID. A trust anchor that names its trust domain with a `spiffe://<td>`
 * URI SAN (X509-SVID §3.2; SPIRE, cert-manager's CSI driver, our dev CA and TestPki all write one) gives the missing
 * link back: such an anchor vouches for that trust domain only.
 *
 * Limitation: an anchor without a SPIFFE URI SAN names no trust domain and so vouches for any of them, as every root
 * did before. Keep such roots out of a bundle shared between trust domains, or give them a `spiffe://<td>` SAN.
 */

/**
 * What a CA certificate says about the trust domain it serves: `ok` with the trust domain, or with `undefined` when it
 * has no spiffe URI SAN (it binds none); not `ok` when its spiffe URI SAN names no single trust domain, in which case
 * it vouches for no SPIFFE ID at all.
 */
export type DeclaredTrustDomain =
  | { readonly ok: true; readonly trustDomain: string | undefined }
  | { readonly ok: false; readonly problem: string };

const NO_TRUST_DOMAIN: DeclaredTrustDomain = Object.freeze({ ok: true, trustDomain: undefined });

/** The certificate as messages name it: its subject, else its first SAN (SVIDs often have no subject), else its serial. */
function anchorLabel(certificate: CertificateInfo): string {
  const { subject, uris, dnsNames, ipAddresses } = certificate;
  const name = subject !== '' ? subject : (uris[0] ?? dnsNames[0] ?? ipAddresses[0]);
  return name === undefined ? `serial ${certificate.serialNumber}` : JSON.stringify(name);
}

/**
 * Reads the trust domain a CA certificate declares: its one `spiffe://<td>` URI SAN, without a path (X509-SVID §3.2).
 * Other URI SANs are ignored; several spiffe URI SANs, an invalid SPIFFE ID or one with a path are a problem.
 */
export function declaredTrustDomain(ca: CertificateInfo): DeclaredTrustDomain {
  let id: string | undefined;
  for (const uri of ca.uris) {
    if (!hasSpiffeScheme(uri)) continue;
    if (id !== undefined) return problem(`${anchorLabel(ca)} carries more than one spiffe URI SAN`);
    id = uri;
  }
  if (id === undefined) return NO_TRUST_DOMAIN;
  const error = spiffeIdError(id);
  if (error !== undefined) {
    return problem(`${anchorLabel(ca)} carries the invalid SPIFFE ID ${JSON.stringify(id)}: ${error}`);
  }
  const { trustDomain, path } = parseSpiffeId(id);
  if (path !== '') {
    return problem(
      `${anchorLabel(ca)} carries the SPIFFE ID ${JSON.stringify(id)}, which has a path; ` +
        "a CA's SPIFFE ID names its trust domain only (X509-SVID §3.2)",
    );
  }
  return Object.freeze({ ok: true, trustDomain });
}

/**
 * The trust domain the anchor of a verified chain vouches for. `chain` runs from the leaf to the trust anchor, which
 * must be self-issued. A leaf that is its own anchor (a self-signed certificate pinned in the bundle) binds nothing.
 */
export function anchorTrustDomain(chain: readonly CertificateInfo[]): DeclaredTrustDomain {
  const anchor = chain[chain.length - 1];
  if (anchor === undefined) return problem('the chain is empty');
  if (!anchor.selfIssued) return problem(`the chain ends at ${anchorLabel(anchor)}, which is not a self-issued trust anchor`);
  return chain.length === 1 ? NO_TRUST_DOMAIN : declaredTrustDomain(anchor);
}

/**
 * Why `anchor` may not vouch for the SPIFFE ID `spiffeId` of trust domain `trustDomain`, or undefined when it may:
 * it declares that trust domain or none. `declared` is what {@link anchorTrustDomain} read from it.
 */
export function trustDomainMismatch(
  spiffeId: string,
  trustDomain: string,
  declared: DeclaredTrustDomain,
  anchor: CertificateInfo | undefined,
): string | undefined {
  const at = anchor === undefined ? '' : ` (${anchorLabel(anchor)})`;
  if (!declared.ok) {
    return `SPIFFE ID ${JSON.stringify(spiffeId)} chains to a trust anchor that vouches for no trust domain: ${declared.problem}`;
  }
  if (declared.trustDomain === undefined || declared.trustDomain === trustDomain) return undefined;
  return (
    `SPIFFE ID ${JSON.stringify(spiffeId)} is in trust domain ${trustDomain} but the certificate chains to the ` +
    `trust anchor of ${declared.trustDomain}${at}`
  );
}

function problem(text: string): DeclaredTrustDomain {
  return Object.freeze({ ok: false, problem: text });
}
