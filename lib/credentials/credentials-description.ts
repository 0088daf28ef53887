import { formatDuration } from '../format/duration.js';
import type { Credentials } from './credentials.interfaces.js';

/**
 * One log line describing a credential set: identity, SANs, issuer, validity, fingerprint, bundle and CRLs.
 * Built only from public certificate fields; the key is never touched.
 */
export function describeCredentials(credentials: Credentials, now: Date = new Date()): string {
  const { leaf, identity } = credentials;
  const sans = [
    ...leaf.uris.map((u) => `URI:${u}`),
    ...leaf.dnsNames.map((d) => `DNS:${d}`),
    ...leaf.ipAddresses.map((ip) => `IP:${ip}`),
  ];
  return [
    `identity ${identity.spiffeId ?? '(no SPIFFE ID)'}`,
    `subject "${leaf.subject}"`,
    `SANs [${sans.join(', ')}]`,
    `issuer "${leaf.issuer}"`,
    `valid ${leaf.notBefore.toISOString()} to ${leaf.notAfter.toISOString()} (${formatDuration(leaf.notAfter.getTime() - now.getTime())} left)`,
    `sha256 ${leaf.fingerprint256}`,
    `CA bundle ${credentials.caCertificates.length} certificate(s), earliest expiry ${credentials.caNotAfter.toISOString()}`,
    `CRLs ${credentials.crlPems.length}`,
  ].join('; ');
}
