import type { CertificateInfo } from '../x509/certificate.js';

/** Explicit trust domain → bundle bindings of a set, and which trust domain is the set's own. */
export interface TrustDomainBinding {
  readonly home: string;
  readonly bundles: ReadonlyMap<string, readonly CertificateInfo[]>;
}

/** Keyed by the `caCertificates` array consumers hand to TLS and to `TrustAnchors.of`. */
const bindings = new WeakMap<readonly CertificateInfo[], TrustDomainBinding>();

/** Records that `caCertificates` is the union of explicit per-trust-domain bundles (federation). */
export function bindTrustDomainBundles(caCertificates: readonly CertificateInfo[], binding: TrustDomainBinding): void {
  bindings.set(caCertificates, binding);
}

/** The explicit per-trust-domain bundles behind a `caCertificates` array, if it was built from them. */
export function trustDomainBindingOf(caCertificates: readonly CertificateInfo[]): TrustDomainBinding | undefined {
  return bindings.get(caCertificates);
}
