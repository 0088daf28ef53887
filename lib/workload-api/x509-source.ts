import { Logger } from '@nestjs/common';
import { CredentialStore } from '../credentials/credential-store.js';
import { registerCredentialSource, type CredentialSourceStatus } from '../credentials/credential-source.js';
import { formatDuration } from '../format/duration.js';
import {
  CrlRollbackGuard,
  installCredentials,
  validateForInstall,
  type CredentialsInstallTarget,
  type InstallLogger,
} from '../credentials/credentials-installer.js';
import type { Credentials, RawCredentials } from '../credentials/credentials.interfaces.js';
import { CredentialsError, WorkloadApiError } from '../errors/mtls.errors.js';
import type { BackoffOptions } from './workload-api.backoff.js';
import { decodeX509SvidResponse, encodeEmpty, WORKLOAD_API_METHODS } from './workload-api.codec.js';
import type { WorkloadApiEndpoint } from './workload-api.endpoint.js';
import { GrpcStatus, openWorkloadApiTransport, type CallEnd, type WorkloadApiTransport } from './workload-api.transport.js';
import { StreamWatcher } from './workload-api.watcher.js';
import { rawCredentialsFromResponse, workloadApiLabels, type SvidSelector } from './x509-svid-response.js';

/** Options of {@link WorkloadX509Source}. */
export interface WorkloadX509SourceOptions extends Omit<CredentialsInstallTarget, 'store' | 'logger'> {
  readonly endpoint: WorkloadApiEndpoint;
  /** Which SVID: a SPIFFE ID or a hint. @default the first */
  readonly svid?: SvidSelector;
  /** Reconnect backoff. @default 1 s doubling to 30 s, with jitter */
  readonly backoff?: BackoffOptions;
  /** A channel to share; otherwise one is opened (and closed by `stop()`). */
  readonly transport?: WorkloadApiTransport;
  /** How often the wait for the first SVID says what it is waiting for. @default 5_000 */
  readonly waitLogIntervalMs?: number;
  readonly logger?: InstallLogger;
}

const STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(GrpcStatus).map(([name, code]) => [code, name]),
);

/** `UNAVAILABLE: connect ENOENT …`: a gRPC end as people read it. */
export function describeCallEnd(end: CallEnd): string {
  const name = STATUS_NAMES[end.code] ?? `status ${end.code}`;
  if (end.code === GrpcStatus.OK) return 'the stream ended';
  return end.details === '' ? name : `${name}: ${end.details}`;
}

/**
 * X509-SVIDs and bundles streamed from the SPIFFE Workload API (`FetchX509SVID`), kept current in a
 * {@link CredentialStore}. Every message is the full state: the chosen SVID, its bundle, the CRLs and the federated
 * bundles go through the same validation and install path as a file rotation (`installCredentials`), so the server's
 * context, the client's generations, open-connection re-checks, events and metrics follow. A refused message leaves the
 * last good set serving; so does an agent that goes away (the stream reconnects with backoff). Like go-spiffe's
 * `workloadapi.X509Source`, but feeding the package's store rather than a `tls.Config`.
 */
export class WorkloadX509Source {
  readonly #options: WorkloadX509SourceOptions;
  readonly #logger: InstallLogger;
  readonly #address: string;
  #transport: WorkloadApiTransport | undefined;
  #ownsTransport = false;
  #watcher: StreamWatcher | undefined;
  #store: CredentialStore | undefined;
  #crls: CrlRollbackGuard | undefined;
  #first: { resolve(store: CredentialStore): void; reject(error: Error): void } | undefined;
  /** Why the latest message (or the wait) did not give a usable set. */
  #lastProblem: string | undefined;
  #refusedKey: string | undefined;
  #reportedEnd: string | undefined;
  #state: CredentialSourceStatus['state'] = 'reconnecting';
  #since = new Date();
  #expiryTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: WorkloadX509SourceOptions) {
    this.#options = options;
    this.#logger = options.logger ?? new Logger('MtlsWorkloadApi');
    this.#address = options.endpoint.address;
  }

  /** The store, once the first SVID was installed. */
  get store(): CredentialStore | undefined {
    return this.#store;
  }

  /** The source's state now (also reported through the store to health). */
  status(): CredentialSourceStatus {
    return {
      kind: 'workload-api',
      endpoint: this.#address,
      state: this.#state,
      problem: this.#state === 'streaming' ? undefined : this.#lastProblem,
      since: this.#since,
    };
  }

  /**
   * Connects, and resolves with the store once the first usable X509-SVID is installed. Rejects with
   * `ERR_MTLS_WORKLOAD_API_TIMEOUT` (naming the socket and the last problem seen) when none comes within `timeoutMs`,
   * and at once with `ERR_MTLS_WORKLOAD_API_INVALID_ARGUMENT` when the agent refuses the request itself.
   */
  async start(timeoutMs: number): Promise<CredentialStore> {
    if (this.#watcher !== undefined) throw new Error('WorkloadX509Source.start() was already called');
    const first = new Promise<CredentialStore>((resolve, reject) => (this.#first = { resolve, reject }));
    const started = Date.now();
    const waitLog = setInterval(() => {
      this.#logger.log(
        `${this.#options.set} credentials: waiting for the first X509-SVID from the Workload API ${this.#address} ` +
          `(${formatDuration(Date.now() - started)} of ${formatDuration(timeoutMs)})${this.#lastProblem === undefined ? '' : `: ${this.#lastProblem}`}`,
      );
    }, this.#options.waitLogIntervalMs ?? 5_000).unref();
    const timer = setTimeout(() => {
      this.#rejectFirst(
        new WorkloadApiError(
          'ERR_MTLS_WORKLOAD_API_TIMEOUT',
          `no usable X509-SVID from the Workload API ${this.#address} within ${formatDuration(timeoutMs)}` +
            `${this.#lastProblem === undefined ? '' : ` (last: ${this.#lastProblem})`}. Fix: check that the SPIRE agent ` +
            'runs and listens on that socket, that this process can open it, and that a registration entry matches this workload',
          this.#address,
        ),
      );
    }, timeoutMs).unref();
    try {
      if (this.#options.transport === undefined) {
        this.#transport = await openWorkloadApiTransport(this.#options.endpoint);
        this.#ownsTransport = true;
      } else {
        this.#transport = this.#options.transport;
      }
      if (this.#stopped) throw new WorkloadApiError('ERR_MTLS_WORKLOAD_API_CLOSED', 'the source was stopped', this.#address);
      this.#watcher = new StreamWatcher({
        transport: this.#transport,
        method: WORKLOAD_API_METHODS.fetchX509Svid,
        request: encodeEmpty(),
        onMessage: (message) => this.#onMessage(message),
        onRetry: (end, delay) => this.#onRetry(end, delay),
        onFatal: (end) => this.#onFatal(end),
        ...(this.#options.backoff === undefined ? {} : { backoff: this.#options.backoff }),
      });
      this.#watcher.start();
      return await first;
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      clearTimeout(timer);
      clearInterval(waitLog);
    }
  }

  /** Stops streaming and closes the channel it opened. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.stop();
    clearTimeout(this.#expiryTimer);
    if (this.#ownsTransport) this.#transport?.close();
    this.#ownsTransport = false;
    this.#rejectFirst(
      new WorkloadApiError('ERR_MTLS_WORKLOAD_API_CLOSED', 'the source was stopped before the first X509-SVID', this.#address),
    );
  }

  #rejectFirst(error: Error): void {
    const first = this.#first;
    this.#first = undefined;
    first?.reject(error);
  }

  #setState(state: CredentialSourceStatus['state']): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#since = new Date();
  }

  #onMessage(message: Buffer): void {
    if (this.#stopped) return;
    if (this.#state !== 'streaming' && this.#reportedEnd !== undefined) {
      this.#logger.log(`${this.#options.set} credentials: the Workload API ${this.#address} is back`);
    }
    this.#reportedEnd = undefined;
    this.#setState('streaming');
    let outcome: { ok: true; rotated: boolean } | { ok: false; error: CredentialsError; key: string };
    try {
      outcome = this.#apply(message);
    } catch (error) {
      const refusal =
        error instanceof CredentialsError
          ? error
          : new CredentialsError('ERR_MTLS_SVID_INVALID', `the X509SVIDResponse does not decode: ${(error as Error).message}`, {
              file: workloadApiLabels(this.#address).cert,
              field: 'certificate',
              fix: 'report this to the Workload API server operator',
            });
      outcome = { ok: false, error: refusal, key: `${refusal.code}\0${refusal.reason}` };
    }
    if (outcome.ok) {
      this.#lastProblem = undefined;
      this.#refusedKey = undefined;
      return;
    }
    this.#refuse(outcome.error, outcome.key);
  }

  #apply(message: Buffer): { ok: true; rotated: boolean } | { ok: false; error: CredentialsError; key: string } {
    const { raw, spiffeId } = rawCredentialsFromResponse(decodeX509SvidResponse(message), this.#options.svid, this.#address);
    const result = this.#install(raw, spiffeId);
    // A set received but not installed (unchanged, refused) is dropped here: its key bytes go with it.
    if (!result.ok || !result.rotated) raw.key.dispose();
    return result;
  }

  #install(
    raw: RawCredentials,
    spiffeId: string,
  ): { ok: true; rotated: boolean } | { ok: false; error: CredentialsError; key: string } {
    const accept = (candidate: Credentials): void => {
      this.#crls?.check(candidate, raw.crlFiles);
      // The agent says which ID the SVID carries; a leaf that says otherwise is not the SVID it claims to be.
      if (candidate.identity.spiffeId !== spiffeId) {
        throw new CredentialsError(
          'ERR_MTLS_SVID_INVALID',
          `the X509-SVID is announced as ${spiffeId} but its certificate carries ${candidate.identity.spiffeId ?? 'no SPIFFE ID'}`,
          { file: raw.files.cert, field: 'certificate', fix: 'report this to the Workload API server operator' },
        );
      }
    };
    const store = this.#store;
    if (store === undefined) {
      let credentials: Credentials;
      try {
        credentials = validateForInstall(raw, this.#options, accept);
      } catch (error) {
        return { ok: false, error: error as CredentialsError, key: `content\0${raw.contentHash}` };
      }
      const created = new CredentialStore(credentials);
      this.#store = created;
      this.#crls = new CrlRollbackGuard(credentials);
      registerCredentialSource(created, () => this.status());
      created.subscribe(() => this.#watchExpiry());
      this.#watchExpiry();
      const first = this.#first;
      this.#first = undefined;
      first?.resolve(created);
      return { ok: true, rotated: true };
    }
    const outcome = installCredentials(raw, { ...this.#options, store, logger: this.#logger }, accept);
    if (outcome.result === 'refused') return { ok: false, error: outcome.error, key: `content\0${raw.contentHash}` };
    if (outcome.result === 'rotated') this.#crls?.installed(store.current, raw.crlFiles);
    return { ok: true, rotated: outcome.result === 'rotated' };
  }

  #refuse(error: CredentialsError, key: string): void {
    this.#lastProblem = `refused: ${error.message}`;
    if (key === this.#refusedKey) return;
    this.#refusedKey = key;
    const current = this.#store?.current.leaf;
    this.#logger.warn(
      `${this.#options.set} credentials from the Workload API ${this.#address} refused` +
        (current === undefined
          ? ''
          : `, still serving sha256 ${current.fingerprint256} (valid until ${current.notAfter.toISOString()})`) +
        `: ${error.message}`,
    );
    if (this.#store !== undefined) this.#options.events?.emit({ type: 'credentials.refused', set: this.#options.set, error });
  }

  #onRetry(end: CallEnd, delayMs: number): void {
    this.#setState('reconnecting');
    const text = describeCallEnd(end);
    this.#lastProblem = text;
    // One line per distinct reason, not one per attempt: an agent down for an hour must not flood the log.
    if (text === this.#reportedEnd) return;
    this.#reportedEnd = text;
    const current = this.#store?.current.leaf;
    const serving =
      current === undefined
        ? 'no SVID yet'
        : `still serving sha256 ${current.fingerprint256} until ${current.notAfter.toISOString()}`;
    const hint = end.code === GrpcStatus.PERMISSION_DENIED ? ' (no registration entry matches this workload yet; retrying)' : '';
    this.#logger.warn(
      `${this.#options.set} credentials: Workload API ${this.#address}: ${text}${hint}; reconnecting in ${formatDuration(delayMs)}, ${serving}`,
    );
  }

  #onFatal(end: CallEnd): void {
    this.#setState('failed');
    const text = describeCallEnd(end);
    this.#lastProblem = text;
    const error = new WorkloadApiError(
      'ERR_MTLS_WORKLOAD_API_INVALID_ARGUMENT',
      `the Workload API ${this.#address} refused the request itself (${text}); not retrying. Fix: check that the ` +
        'endpoint is a SPIFFE Workload API and that nothing between this process and it strips gRPC metadata',
      this.#address,
    );
    this.#logger.error(`${this.#options.set} credentials: ${error.message}`);
    this.#rejectFirst(error);
  }

  /** Says once, loudly, when the SVID being served expires with no successor: health is already down by then. */
  #watchExpiry(): void {
    clearTimeout(this.#expiryTimer);
    const store = this.#store;
    if (store === undefined || this.#stopped) return;
    const version = store.version;
    const notAfter = store.current.leaf.notAfter;
    // setTimeout holds 32-bit delays only; re-arm until the instant.
    const delay = Math.min(Math.max(0, notAfter.getTime() - Date.now()), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      if (store.version !== version) return;
      if (Date.now() < notAfter.getTime()) return this.#watchExpiry();
      this.#logger.error(
        `${this.#options.set} credentials: the X509-SVID expired at ${notAfter.toISOString()} and the Workload API ` +
          `${this.#address} sent no successor (${this.#lastProblem ?? 'no message'}); peers refuse it from now on`,
      );
    }, delay).unref();
  }
}
