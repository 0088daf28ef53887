import type { Credentials } from './credentials.interfaces.js';

function duration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(Math.round(ms / 1000));
  const days = Math.floor(rest / 86_400);
  rest -= days * 86_400;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  const seconds = rest - minutes * 60;
  if (days > 0) return `${sign}${days}d${hours}h`;
  if (hours > 0) return `${sign}${hours}h${minutes}m`;
  return `${sign}${minutes}m${seconds}s`;
}

/** Human-readable time left, e.g. `23h59m`, `4m10s`. */
export function formatDuration(ms: number): string {
  return duration(ms);
}

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
    `valid ${leaf.notBefore.toISOString()} to ${leaf.notAfter.toISOString()} (${duration(leaf.notAfter.getTime() - now.getTime())} left)`,
    `sha256 ${leaf.fingerprint256}`,
    `CA bundle ${credentials.caCertificates.length} certificate(s), earliest expiry ${credentials.caNotAfter.toISOString()}`,
    `CRLs ${credentials.crlPems.length}`,
  ].join('; ');
}
