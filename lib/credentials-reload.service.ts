import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from './mtls.constants.js';
import { credentialUsages, type ResolvedMtlsOptions } from './mtls.config.js';
import type { CredentialSetName } from './observability/mtls-events.js';
import { MtlsEvents } from './observability/mtls-events.js';
import type { CredentialStore } from './credentials/credential-store.js';
import { CredentialsReloader } from './credentials/credentials-reloader.js';
import type { CredentialFiles } from './credentials/credentials.interfaces.js';

/**
 * Hot reload for the module: on bootstrap starts a {@link CredentialsReloader} for the identity set and, when one is
 * configured, for the separate client set; stops them before the application shuts down. Off with `reload.enabled: false`.
 */
@Injectable()
export class CredentialsReloadService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly #logger = new Logger('MtlsCredentials');
  readonly #reloaders = new Map<CredentialSetName, CredentialsReloader>();

  constructor(
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
    @Inject(MTLS_IDENTITY_CREDENTIALS) private readonly identity: CredentialStore,
    @Inject(MTLS_CLIENT_CREDENTIALS) private readonly client: CredentialStore,
    private readonly events: MtlsEvents,
  ) {}

  /** The running reloader of a set, if any (for health reporting and tests). */
  reloader(set: CredentialSetName): CredentialsReloader | undefined {
    return this.#reloaders.get(set);
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.reload.enabled) {
      this.#logger.log('credential hot reload is off (reload.enabled: false): rotated files take effect on restart');
      return;
    }
    // Sets streamed from the Workload API have no files to watch: their source pushes updates itself.
    const sets: Array<[CredentialSetName, CredentialStore, CredentialFiles]> = [];
    if (this.options.workloadApi === undefined) sets.push(['identity', this.identity, this.options.credentialFiles]);
    if (
      this.client !== this.identity &&
      this.options.clientCredentialFiles !== undefined &&
      this.options.clientWorkloadApi === undefined
    ) {
      sets.push(['client', this.client, this.options.clientCredentialFiles]);
    }
    const { debounceMs, pollIntervalMs, maxRetryDelayMs } = this.options.reload;
    for (const [set, store, files] of sets) {
      const reloader = new CredentialsReloader({
        set,
        files,
        store,
        usages: credentialUsages(set, this.options),
        expiryWarningMs: this.options.expiryWarningMs,
        tls: this.options.tls,
        debounceMs,
        pollIntervalMs,
        maxRetryDelayMs,
        events: this.events,
        logger: this.#logger,
      });
      // Registered first, so that a shutdown racing the start still stops it.
      this.#reloaders.set(set, reloader);
      await reloader.start();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    const reloaders = [...this.#reloaders.values()];
    this.#reloaders.clear();
    await Promise.all(reloaders.map((reloader) => reloader.stop()));
  }
}
