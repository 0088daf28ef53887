import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import type { CredentialStore } from '../credentials/credential-store.js';
import { formatDuration } from '../format/duration.js';
import { credentialSourceStatus, type CredentialSourceStatus } from '../credentials/credential-source.js';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import type { CredentialsErrorCode, CredentialsErrorDetail } from '../errors/mtls.errors.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { MtlsEvents, type CredentialSetName, type MtlsEvent } from './mtls-events.js';

/** How often the expiry watch looks at the clock; a warning is at most this late. */
export const EXPIRY_CHECK_INTERVAL_MS = 60_000;

/** Public facts about the certificate a set currently presents. Safe to log and to serve on a health endpoint. */
export interface CredentialsSummary {
  /** The SPIFFE ID of the leaf, when it is an X509-SVID. */
  readonly spiffeId: string | undefined;
  readonly subject: string;
  readonly serialNumber: string;
  /** SHA-256 of the leaf's DER, `AB:CD:…`. */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Earliest NotAfter among the trust bundle's certificates. */
  readonly caNotAfter: Date;
  /** The store's version: 1 for the set loaded at startup, +1 per rotation. */
  readonly version: number;
}

/** Why a reload was refused: the {@link CredentialsError} without its message's prose. */
export interface RefusalSummary {
  readonly code: CredentialsErrorCode;
  readonly file: string;
  readonly field: CredentialsErrorDetail['field'];
  readonly reason: string;
}

/** The outcome of the latest load or reload of a set. */
export type ReloadOutcome =
  | { readonly result: 'loaded' | 'rotated'; readonly at: Date }
  | { readonly result: 'refused'; readonly at: Date; readonly refusal: RefusalSummary };

/** Everything known about one credential set at one instant. */
export interface CredentialSetStatus {
  readonly set: CredentialSetName;
  readonly current: CredentialsSummary;
  /** Time left before the leaf's NotAfter (negative once expired). */
  readonly remainingMs: number;
  /** The expiry warning window of the current leaf: `expiryWarningMs`, or a third of its lifetime. */
  readonly expiryWarningMs: number;
  /** True once less than `expiryWarningMs` remains. */
  readonly expiring: boolean;
  readonly lastReload: ReloadOutcome;
  /** Outcomes since startup (the initial load counts as `loaded`). */
  readonly counts: { readonly loaded: number; readonly rotated: number; readonly refused: number };
  /** The streaming source feeding the set (the Workload API), if any: whether updates arrive, and why not. */
  readonly source?: CredentialSourceStatus | undefined;
}

function sourceOf(store: CredentialStore): { source?: CredentialSourceStatus } {
  const source = credentialSourceStatus(store);
  return source === undefined ? {} : { source };
}

/** The expiry warning window of a certificate: the configured one, or a third of its lifetime by default. */
export function expiryWarningWindow(
  leaf: { readonly notBefore: Date; readonly notAfter: Date },
  expiryWarningMs: number | undefined,
): number {
  // A third of the lifetime is when cert-manager renews by default: still expiring then means renewal is failing.
  return expiryWarningMs ?? Math.max(0, Math.floor((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 3));
}

/** The public summary of a credential set. */
export function summarizeCredentials(credentials: Credentials, version: number): CredentialsSummary {
  const { leaf } = credentials;
  return {
    spiffeId: credentials.identity.spiffeId,
    subject: leaf.subject,
    serialNumber: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    caNotAfter: credentials.caNotAfter,
    version,
  };
}

interface SetState {
  readonly name: CredentialSetName;
  readonly store: CredentialStore;
  lastReload: ReloadOutcome;
  readonly counts: { loaded: number; rotated: number; refused: number };
  /** Store version already warned about (expiring) and already reported expired: once per version, not per tick. */
  warnedVersion: number;
  expiredVersion: number;
}

/**
 * What the service's own credentials look like now: per set (`identity`, and `client` when configured separately),
 * the certificate presented, its time left, the last reload's outcome and counts. Also the expiry watch: emits
 * `credentials.expiring` and logs a warning once per certificate version when it enters its warning window.
 * Read by the health indicator and the metrics; usable directly for a custom status endpoint.
 */
@Injectable()
export class CredentialsStatus implements OnModuleInit, OnModuleDestroy {
  readonly #logger = new Logger('MtlsCredentials');
  readonly #sets: ReadonlyMap<CredentialSetName, SetState>;
  readonly #subscription: Subscription;
  readonly #unsubscribeStores: Array<() => void> = [];
  readonly #expiryWarningMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: MtlsEvents,
    @Inject(MTLS_IDENTITY_CREDENTIALS) identity: CredentialStore,
    @Inject(MTLS_CLIENT_CREDENTIALS) client: CredentialStore,
    @Inject(MTLS_OPTIONS) options: Pick<ResolvedMtlsOptions, 'expiryWarningMs'>,
  ) {
    this.#expiryWarningMs = options.expiryWarningMs;
    const startedAt = new Date();
    const state = (name: CredentialSetName, store: CredentialStore): SetState => ({
      name,
      store,
      // The stores were filled (and `credentials.loaded` emitted) before this provider existed.
      lastReload: { result: 'loaded', at: startedAt },
      counts: { loaded: 1, rotated: 0, refused: 0 },
      warnedVersion: 0,
      expiredVersion: 0,
    });
    const sets = new Map<CredentialSetName, SetState>([['identity', state('identity', identity)]]);
    if (client !== identity) sets.set('client', state('client', client));
    this.#sets = sets;
    // Subscribed at construction so that no reload outcome between construction and init is missed.
    this.#subscription = events.events$.subscribe((event) => this.#record(event));
  }

  /** The sets this service has: `identity`, then `client` when a separate client set is configured. */
  get setNames(): readonly CredentialSetName[] {
    return [...this.#sets.keys()];
  }

  /**
   * The status of one set (default `identity`) at `now`. Without a separate client set, `client` answers with the
   * identity set (its `set` says so), since that is what the client presents.
   */
  status(set: CredentialSetName = 'identity', now: number = Date.now()): CredentialSetStatus {
    const state = this.#sets.get(set) ?? this.#sets.get('identity')!;
    const { store } = state;
    const current = store.current;
    const remainingMs = current.leaf.notAfter.getTime() - now;
    const expiryWarningMs = expiryWarningWindow(current.leaf, this.#expiryWarningMs);
    return {
      set: state.name,
      current: summarizeCredentials(current, store.version),
      remainingMs,
      expiryWarningMs,
      expiring: remainingMs < expiryWarningMs,
      lastReload: state.lastReload,
      counts: { ...state.counts },
      ...sourceOf(store),
    };
  }

  /** The status of every set, identity first. */
  all(now: number = Date.now()): CredentialSetStatus[] {
    return this.setNames.map((set) => this.status(set, now));
  }

  onModuleInit(): void {
    for (const state of this.#sets.values()) {
      this.#unsubscribeStores.push(state.store.subscribe(() => this.#checkExpiry(state, true)));
      this.#checkExpiry(state, true);
    }
    // Backs up the per-rotation check: a certificate enters its window by the clock alone. Unref'd, so it never keeps
    // the process alive.
    this.#timer = setInterval(() => this.checkExpiry(), EXPIRY_CHECK_INTERVAL_MS).unref();
  }

  onModuleDestroy(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const unsubscribe of this.#unsubscribeStores.splice(0)) unsubscribe();
    this.#subscription.unsubscribe();
  }

  /** Runs the expiry watch now (it also runs on every rotation and once a minute). */
  checkExpiry(): void {
    for (const state of this.#sets.values()) this.#checkExpiry(state, false);
  }

  #record(event: MtlsEvent): void {
    if (event.type === 'credentials.refused') {
      const state = this.#sets.get(event.set);
      if (state === undefined) return;
      const { code, file, field, reason } = event.error;
      state.lastReload = { result: 'refused', at: new Date(), refusal: { code, file, field, reason } };
      state.counts.refused++;
    } else if (event.type === 'credentials.loaded' || event.type === 'credentials.rotated') {
      const state = this.#sets.get(event.set);
      if (state === undefined) return;
      const result = event.type === 'credentials.loaded' ? 'loaded' : 'rotated';
      state.lastReload = { result, at: new Date() };
      state.counts[result]++;
    }
  }

  /** `installed`: the set was just loaded or rotated in, and the loader already logged its validation warnings. */
  #checkExpiry(state: SetState, installed: boolean): void {
    const { store } = state;
    const version = store.version;
    const credentials = store.current;
    const { leaf } = credentials;
    const remainingMs = leaf.notAfter.getTime() - Date.now();
    const windowMs = expiryWarningWindow(leaf, this.#expiryWarningMs);
    const name = credentials.identity.spiffeId ?? leaf.subject;
    const who = `${state.name} certificate ${name} (sha256 ${leaf.fingerprint256})`;
    if (remainingMs < windowMs && state.warnedVersion !== version) {
      state.warnedVersion = version;
      // Validation warns with the same window rule when a set is installed inside it: say it once, not twice.
      if (remainingMs > 0 && !(installed && credentials.warnings.length > 0)) {
        this.#logger.warn(
          `${who} expires in ${formatDuration(remainingMs)}, at ${leaf.notAfter.toISOString()} ` +
            `(warning window ${formatDuration(windowMs)}): check that its issuer renews ${credentials.files.cert}`,
        );
      }
      this.events.emit({ type: 'credentials.expiring', set: state.name, credentials, remainingMs });
    }
    if (remainingMs <= 0 && state.expiredVersion !== version) {
      state.expiredVersion = version;
      this.#logger.error(
        `${who} expired at ${leaf.notAfter.toISOString()}; peers reject it until ${credentials.files.cert} is renewed`,
      );
    }
  }
}
