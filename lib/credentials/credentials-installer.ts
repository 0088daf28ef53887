import type { LoggerService } from '@nestjs/common';
import { CredentialsError, MtlsError } from '../errors/mtls.errors.js';
import type { TlsPolicyOptions } from '../mtls.options.js';
import type { CredentialStore } from './credential-store.js';
import { formatDuration } from '../format/duration.js';
import { validateCredentials } from './credentials-validation.js';
import type { CredentialSetName, CredentialUsage, Credentials, RawCredentials } from './credentials.interfaces.js';
import { revocationListsOf } from './revocation-lists.js';
import { advanceCrlHighWaterMarks, crlPosition, findCrlRegression } from './crl-freshness.js';
import type { CrlHighWaterMarks, CrlInFile } from './crl-freshness.js';
import { createSecureContext } from './secure-context.js';

/** What a reloader reports about its set; `MtlsEvents` carries these among its events. */
export type CredentialsReloadEvent =
  | {
      readonly type: 'credentials.rotated';
      readonly set: CredentialSetName;
      readonly previous: Credentials;
      readonly current: Credentials;
    }
  | { readonly type: 'credentials.refused'; readonly set: CredentialSetName; readonly error: CredentialsError };

/** Where a source's log lines go: Nest's `Logger` or any `LoggerService`. */
export type InstallLogger = Pick<LoggerService, 'log' | 'warn' | 'error'>;

/** What every credentials source (files, the Workload API) shares: where validated sets go and how they are checked. */
export interface CredentialsInstallTarget {
  /** Which set this is, for logs and events. */
  readonly set: CredentialSetName;
  /** The store to keep current. */
  readonly store: CredentialStore;
  /** The usages the set was validated for at startup: every later set must pass the same checks. */
  readonly usages: readonly CredentialUsage[];
  /** As at startup. @default a third of the certificate's lifetime */
  readonly expiryWarningMs?: number | undefined;
  /** The TLS policy consumers build contexts with: a candidate set must be accepted by OpenSSL under it. */
  readonly tls?: TlsPolicyOptions | undefined;
  /** Where `credentials.rotated` goes (usually `MtlsEvents`). */
  readonly events?: { emit(event: CredentialsReloadEvent): void } | undefined;
  readonly logger: InstallLogger;
}

/**
 * Validates a raw set exactly as a rotation would (including OpenSSL's context under the TLS policy), for the first
 * set of a source, before any store exists. Throws CredentialsError.
 */
export function validateForInstall(
  raw: RawCredentials,
  target: Pick<CredentialsInstallTarget, 'usages' | 'expiryWarningMs' | 'tls'>,
  accept?: (candidate: Credentials) => void,
): Credentials {
  const { usages, expiryWarningMs, tls } = target;
  try {
    const credentials = validateCredentials(raw, { usages, ...(expiryWarningMs === undefined ? {} : { expiryWarningMs }) });
    createSecureContext(credentials, tls);
    accept?.(credentials);
    return credentials;
  } catch (error) {
    throw asCredentialsError(error, raw);
  }
}

/** What offering one raw set led to. */
export type InstallOutcome =
  { readonly result: 'rotated' | 'unchanged' } | { readonly result: 'refused'; readonly error: CredentialsError };

/**
 * The one path from raw credential bytes to the store, whatever their source: skip a set identical to the one served,
 * validate exactly as at startup, let OpenSSL build its context under the TLS policy, then `store.replace` (which
 * re-installs the server context, starts a client generation and re-checks open connections), log the rotation and
 * emit `credentials.rotated`. A refused set is returned, never installed; reporting it is the source's business (a
 * file source retries quietly, the Workload API waits for the next message).
 */
export function installCredentials(
  raw: RawCredentials,
  target: CredentialsInstallTarget,
  /** A source's own check of the validated set (e.g. the Workload API's stated SPIFFE ID); throws CredentialsError. */
  accept?: (candidate: Credentials) => void,
): InstallOutcome {
  const { set, store, usages, expiryWarningMs, tls, logger } = target;
  if (raw.contentHash === store.current.contentHash) return { result: 'unchanged' };
  let next: Credentials;
  try {
    next = validateCredentials(raw, { usages, ...(expiryWarningMs === undefined ? {} : { expiryWarningMs }) });
    // The final gate of startup too: OpenSSL may refuse what the checks above accept.
    createSecureContext(next, tls);
    accept?.(next);
  } catch (error) {
    return { result: 'refused', error: asCredentialsError(error, raw) };
  }
  const previous = store.current;
  try {
    store.replace(next);
  } catch (error) {
    // The store has swapped; a consumer that failed to follow keeps its previous state and says why.
    const failures = error instanceof AggregateError ? error.errors : [error];
    for (const failure of failures) {
      logger.error(`${set} credentials rotated, but a consumer failed to apply them: ${errorText(failure)}`);
    }
  }
  logger.log(`${set} credentials rotated (version ${store.version}): ${describeRotation(previous, next)}`);
  for (const warning of next.warnings) logger.warn(`${set} credentials: ${warning}`);
  target.events?.emit({ type: 'credentials.rotated', set, previous, current: next });
  return { result: 'rotated' };
}

/** One line saying what changed between two sets: certificate, identity, bundle, trust domains, CRLs. */
export function describeRotation(previous: Credentials, next: Credentials): string {
  const validity = (c: Credentials): string => `${c.leaf.notBefore.toISOString()} to ${c.leaf.notAfter.toISOString()}`;
  const parts = [
    `certificate sha256 ${previous.leaf.fingerprint256} (valid ${validity(previous)}) → ` +
      `sha256 ${next.leaf.fingerprint256} (valid ${validity(next)}, ${formatDuration(next.leaf.notAfter.getTime() - Date.now())} left)`,
  ];
  if (next.identity.spiffeId !== previous.identity.spiffeId) {
    parts.push(`identity ${previous.identity.spiffeId ?? '(none)'} → ${next.identity.spiffeId ?? '(none)'}`);
  }
  const bundle = (c: Credentials): string => c.caCertificates.map((ca) => ca.fingerprint256).join(',');
  if (bundle(previous) !== bundle(next)) {
    parts.push(
      `CA bundle changed (${previous.caCertificates.length} → ${next.caCertificates.length} certificate(s), earliest expiry ${next.caNotAfter.toISOString()})`,
    );
  }
  const domains = (c: Credentials): string => [...(c.trustDomainBundles?.keys() ?? [])].join(', ');
  if (domains(previous) !== domains(next)) {
    parts.push(`trust domains [${domains(previous)}] → [${domains(next)}]`);
  }
  if (previous.crlPems.join('') !== next.crlPems.join('')) {
    parts.push(`CRLs changed (${previous.crlPems.length} → ${next.crlPems.length})`);
  }
  return parts.join('; ');
}

/** Any failure as a CredentialsError naming the set's certificate source. */
export function asCredentialsError(error: unknown, raw: Pick<RawCredentials, 'files'>): CredentialsError {
  if (error instanceof CredentialsError) return error;
  // Not expected from the reader or validator; still refused, and reported with the code of whatever threw.
  const reason = error instanceof MtlsError ? `${error.code}: ${error.message}` : `unexpected error: ${errorText(error)}`;
  return new CredentialsError(
    'ERR_MTLS_CREDENTIALS_UNREADABLE',
    reason,
    { file: raw.files.cert, field: 'certificate', fix: 'the reload retries; if this persists, report it with this message' },
    { cause: error },
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The CRLs of a validated set, each with the file (or source) it came from. */
function crlsInFiles(credentials: Credentials, files: readonly string[] | string): CrlInFile[] {
  return revocationListsOf(credentials).map((crl, i) => ({
    crl,
    file: typeof files === 'string' ? files : (files[i] ?? files.join(', ')),
  }));
}

/**
 * The newest CRL seen per issuer since startup, for any source: a set whose CRL is older than one already installed
 * (a lower cRLNumber, a stale cache or mirror, a replayed download) is refused, so that a revocation cannot be undone.
 */
export class CrlRollbackGuard {
  #marks: CrlHighWaterMarks;

  constructor(current: Credentials) {
    this.#marks = advanceCrlHighWaterMarks(new Map(), crlsInFiles(current, current.files.crl.join(', ')));
  }

  /** Throws CredentialsError('ERR_MTLS_CRL_ROLLBACK') when `candidate` would install an older CRL. */
  check(candidate: Credentials, crlFiles: readonly string[]): void {
    const regression = findCrlRegression(this.#marks, crlsInFiles(candidate, crlFiles));
    if (regression === undefined) return;
    const { candidate: crl, inForce } = regression;
    throw new CredentialsError('ERR_MTLS_CRL_ROLLBACK', regression.reason, {
      file: crl.file,
      field: 'crl',
      fix:
        `write the current CRL of "${crl.crl.issuer}" (${crlPosition(inForce.crl)}, or later) to ${crl.file} ` +
        'and check what wrote this one (a stale cache or mirror, a replayed download); if the CA was rebuilt and restarted its numbering, restart the service to accept its new CRLs',
    });
  }

  /** Records the CRLs of the set just installed. */
  installed(current: Credentials, crlFiles: readonly string[]): void {
    this.#marks = advanceCrlHighWaterMarks(this.#marks, crlsInFiles(current, crlFiles));
  }
}
