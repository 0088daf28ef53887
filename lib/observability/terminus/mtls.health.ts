import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { formatDuration } from '../../format/duration.js';
import { MtlsConfigError } from '../../errors/mtls.errors.js';
import { CredentialsStatus, type CredentialSetStatus } from '../credentials-status.js';

/** Options of {@link MtlsHealthIndicator.isHealthy}. */
export interface MtlsHealthCheckOptions {
  /**
   * Down when less than this remains before the NotAfter of one of the service's own certificates.
   * @default each certificate's expiry warning window (module option `expiryWarningMs`, else a third of its lifetime)
   */
  minRemainingMs?: number;
}

// Type aliases, not interfaces: terminus wants data assignable to Record<string, unknown>.
/** What the indicator reports about one credential set (JSON-ready). */
export type MtlsHealthSetDetails = {
  readonly spiffeId: string | null;
  readonly subject: string;
  readonly fingerprint256: string;
  readonly notAfter: string;
  readonly secondsLeft: number;
  /** The threshold below which this set makes the indicator down. */
  readonly minRemainingSeconds: number;
  readonly caNotAfter: string;
  readonly version: number;
  readonly lastReload: {
    readonly result: 'loaded' | 'rotated' | 'refused';
    readonly at: string;
    readonly code?: string;
    readonly file?: string;
    readonly reason?: string;
  };
  readonly reloads: { readonly rotated: number; readonly refused: number };
  /** The Workload API stream feeding the set, when it is one. */
  readonly source?: { readonly endpoint: string; readonly state: string; readonly since: string; readonly problem?: string };
};

/** The data of the indicator's result: the identity set, the client set when separate, and why it is down. */
export type MtlsHealthDetails = {
  readonly identity: MtlsHealthSetDetails;
  readonly client?: MtlsHealthSetDetails;
  readonly message?: string;
};

function setDetails(status: CredentialSetStatus, minRemainingMs: number): MtlsHealthSetDetails {
  const { current, lastReload, counts } = status;
  return {
    spiffeId: current.spiffeId ?? null,
    subject: current.subject,
    fingerprint256: current.fingerprint256,
    notAfter: current.notAfter.toISOString(),
    secondsLeft: Math.floor(status.remainingMs / 1000),
    minRemainingSeconds: Math.ceil(minRemainingMs / 1000),
    caNotAfter: current.caNotAfter.toISOString(),
    version: current.version,
    lastReload:
      lastReload.result === 'refused'
        ? { result: 'refused', at: lastReload.at.toISOString(), ...lastReload.refusal }
        : { result: lastReload.result, at: lastReload.at.toISOString() },
    reloads: { rotated: counts.rotated, refused: counts.refused },
    ...(status.source === undefined
      ? {}
      : {
          source: {
            endpoint: status.source.endpoint,
            state: status.source.state,
            since: status.source.since.toISOString(),
            ...(status.source.problem === undefined ? {} : { problem: status.source.problem }),
          },
        }),
  };
}

/**
 * `@nestjs/terminus` indicator of the service's own certificates: up with their identity, time left and last reload
 * outcome; down when one has less than the threshold left. A refused reload alone keeps it up (the previous set still
 * serves) and shows in `lastReload`. Provide it next to `TerminusModule`; `MtlsModule` supplies what it reads.
 * @example
 * ```ts
 * @Get('health') @HealthCheck() @AllowAnyPeer()
 * check() { return this.health.check([() => this.mtls.isHealthy('mtls')]); }
 * ```
 */
@Injectable()
export class MtlsHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    private readonly credentials: CredentialsStatus,
  ) {}

  /** Checks the certificates now; synchronous, so cheap enough for every probe. */
  isHealthy<const Key extends string = 'mtls'>(
    key: Key = 'mtls' as Key,
    options: MtlsHealthCheckOptions = {},
  ): HealthIndicatorResult<Key, 'up' | 'down', MtlsHealthDetails> {
    const { minRemainingMs } = options;
    if (minRemainingMs !== undefined && !(Number.isFinite(minRemainingMs) && minRemainingMs >= 0)) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsHealthIndicator option "minRemainingMs" is ${String(minRemainingMs)}; use a number of milliseconds ≥ 0`,
      );
    }
    const indicator = this.healthIndicatorService.check(key);
    const now = Date.now();
    const problems: string[] = [];
    const sets: Partial<Record<'identity' | 'client', MtlsHealthSetDetails>> = {};
    for (const status of this.credentials.all(now)) {
      const threshold = minRemainingMs ?? status.expiryWarningMs;
      sets[status.set] = setDetails(status, threshold);
      // An agent that is away is not a problem while the last SVID has time left; one that refused us for good is.
      if (status.source?.state === 'failed') {
        problems.push(
          `${status.set} credentials: the Workload API ${status.source.endpoint} stopped serving (${status.source.problem ?? 'failed'}); no rotation will come`,
        );
      }
      if (status.remainingMs < threshold) {
        const { current } = status;
        const name = `${status.set} certificate ${current.spiffeId ?? current.subject}`;
        const notAfter = current.notAfter.toISOString();
        problems.push(
          status.remainingMs > 0
            ? `${name} expires in ${formatDuration(status.remainingMs)} (at ${notAfter}), ` +
                `less than the ${formatDuration(threshold)} threshold`
            : `${name} expired at ${notAfter}`,
        );
      }
    }
    const details: MtlsHealthDetails = { identity: sets.identity!, ...(sets.client ? { client: sets.client } : {}) };
    return problems.length === 0 ? indicator.up(details) : indicator.down({ ...details, message: problems.join('; ') });
  }
}
