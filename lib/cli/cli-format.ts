import { dirname, isAbsolute, relative } from 'node:path';
import type { CertificateInspection } from './certificate-inspection.js';
import type { DevCaResult, DevCertificateResult } from './dev-ca.js';
import { formatDuration } from '../format/duration.js';
import { printable } from '../format/describe-value.js';

/** A path relative to `cwd` when it lies below it (shorter to read), else as it is. */
export function displayPath(path: string, cwd: string = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** One line saying what happened to the dev CA, e.g. `created the dev CA for trust domain shop.test in .dev-certs/ca …`. */
export function describeDevCaResult(result: DevCaResult, cwd?: string): string {
  const { ca } = result;
  const where = displayPath(dirname(result.certFile), cwd);
  const trustDomain = ca.trustDomain === undefined ? 'no trust domain' : `trust domain ${ca.trustDomain}`;
  const until = `valid until ${ca.notAfter.toISOString()}`;
  switch (result.action) {
    case 'created':
      return `created the dev CA for ${trustDomain} in ${where} (${until}, SHA-256 ${ca.fingerprint256})`;
    case 'replaced':
      return (
        `replaced the dev CA in ${where} with a new one for ${trustDomain} (${until}, SHA-256 ${ca.fingerprint256}); ` +
        'certificates of the old CA are re-issued by the next "dev-ca issue"'
      );
    case 'loaded':
      return `using the dev CA in ${where} (${trustDomain}, ${until}, ${formatDuration(ca.notAfter.getTime() - Date.now())} left)`;
  }
}

/** One line saying whether a certificate set was issued or kept, and why. */
export function describeDevCertificateResult(result: DevCertificateResult, cwd?: string): string {
  const where = displayPath(result.dir, cwd);
  if (result.action === 'kept') {
    return `kept   ${result.name}: ${result.spiffeId} in ${where} (${result.detail})`;
  }
  const until = result.notAfter.toISOString();
  return `issued ${result.name}: ${result.spiffeId} in ${where}, valid until ${until} (${result.reason}: ${result.detail})`;
}

/** The inspection as aligned `label  value` lines. Values from the certificate are escaped: it may be hostile. */
export function formatInspection(inspection: CertificateInspection, cwd?: string): string {
  const list = (values: readonly string[]): string => (values.length === 0 ? '(none)' : values.map(printable).join(', '));
  const lifetime =
    inspection.validity === 'expired'
      ? `EXPIRED ${formatDuration(-inspection.remainingMs)} ago`
      : inspection.validity === 'not-yet-valid'
        ? 'NOT YET VALID'
        : `${formatDuration(inspection.remainingMs)} left`;
  const count = inspection.certificatesInFile;
  const rows: Array<[string, string]> = [
    ['file', `${displayPath(inspection.certFile, cwd)} (${count} certificate${count === 1 ? '' : 's'}; the first is shown)`],
    ['subject', inspection.subject === '' ? '(empty)' : printable(inspection.subject)],
    ['SPIFFE ID', inspection.spiffeId ?? `(none: ${printable(inspection.spiffeIdProblem ?? '')})`],
    ['URI SANs', list(inspection.uris)],
    ['DNS SANs', list(inspection.dnsNames)],
    ['IP SANs', list(inspection.ipAddresses)],
    ...(inspection.emails.length > 0 ? [['email SANs', list(inspection.emails)] as [string, string]] : []),
    ['issuer', printable(inspection.issuer)],
    ['not before', inspection.notBefore.toISOString()],
    ['not after', `${inspection.notAfter.toISOString()} (${lifetime})`],
    ['CA', inspection.isCa ? 'yes' : 'no'],
    ['key usage', inspection.keyUsage === undefined ? '(no extension)' : list(inspection.keyUsage)],
    ['ext. key usage', inspection.extKeyUsage === undefined ? '(no extension)' : list(inspection.extKeyUsage)],
    ['public key', inspection.publicKey],
    ['serial', inspection.serialNumber],
    ['SHA-256', inspection.fingerprint256],
  ];
  if (inspection.keyFile !== undefined) {
    rows.push([
      'key',
      `${displayPath(inspection.keyFile, cwd)} ${inspection.keyMatches ? 'matches' : 'DOES NOT MATCH'} the certificate`,
    ]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}
