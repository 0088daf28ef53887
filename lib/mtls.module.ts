import { Logger, Module, type Provider } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { MtlsHttpClient } from './client/mtls-http-client.js';
import { CredentialStore } from './credentials/credential-store.js';
import { describeCredentials } from './credentials/credentials-description.js';
import { loadCredentials } from './credentials/credentials-loader.js';
import { CredentialsReloadService } from './credentials-reload.service.js';
import type { CredentialFiles } from './credentials/credentials.interfaces.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_JWT_BUNDLE_FEEDS, MTLS_OPTIONS } from './mtls.constants.js';
import { credentialUsages, resolveMtlsOptions, type ResolvedMtlsOptions } from './mtls.config.js';
import { MTLS_MODULE_OPTIONS, MtlsConfigurableModule } from './mtls.module-definition.js';
import type { CredentialSetName } from './observability/mtls-events.js';
import { CredentialsStatus } from './observability/credentials-status.js';
import { MtlsEvents } from './observability/mtls-events.js';
import { LoopbackListenerBinding } from './proxy/loopback-listener.js';
import { ProxyIdentitySource } from './proxy/proxy-identity.source.js';
import { ConnectionIdentities } from './server/connection-identity.js';
import { MtlsGuard } from './server/mtls.guard.js';
import { MtlsServerBinding } from './server/mtls-server.binding.js';
import { ConnectionIdentitySource, PeerIdentitySource } from './server/peer-identity.source.js';
import { PeerPolicyRegistry } from './server/peer-policy.registry.js';
import { WorkloadApiSources } from './workload-api/workload-api-sources.service.js';
import type { ResolvedWorkloadApiOptions } from './workload-api/workload-api.options.js';
import { WorkloadJwtSource } from './workload-api/jwt-source.js';
import { WorkloadX509Source } from './workload-api/x509-source.js';
import { MtlsTokenGuard } from './tokens/token.guard.js';
import { TokenIssuers } from './tokens/token-issuers.service.js';
import type { JwtBundleFeedOpener } from './tokens/jwt-bundle-key-source.js';
import { TokenPolicyRegistry } from './tokens/token-policy.registry.js';

const logger = new Logger('MtlsModule');

/** How long bootstrap waits for a token issuer's first JWT bundles before starting without them. */
const JWT_BUNDLES_STARTUP_WAIT_MS = 2_000;

/** The JWT bundle stream of `jwks: { workloadApi }` issuers; `@grpc/grpc-js` is loaded by the first one opened. */
const openJwtBundleFeed: JwtBundleFeedOpener = (socket, logger) =>
  WorkloadJwtSource.connect({ socket, logger, timeoutMs: JWT_BUNDLES_STARTUP_WAIT_MS });

async function openStore(
  set: CredentialSetName,
  files: CredentialFiles,
  options: ResolvedMtlsOptions,
  events: MtlsEvents,
  sources: WorkloadApiSources,
): Promise<CredentialStore> {
  const usages = credentialUsages(set, options);
  const workloadApi = set === 'identity' ? options.workloadApi : options.clientWorkloadApi;
  if (workloadApi !== undefined) return openWorkloadApiStore(set, workloadApi, options, events, sources);
  const credentials = await loadCredentials(files, { usages, expiryWarningMs: options.expiryWarningMs });
  logger.log(`${set} credentials loaded from ${files.cert}: ${describeCredentials(credentials)}`);
  for (const warning of credentials.warnings) logger.warn(`${set} credentials: ${warning}`);
  events.emit({ type: 'credentials.loaded', set, credentials });
  return new CredentialStore(credentials);
}

/** Waits for the first X509-SVID of the Workload API (the app does not start without one), then streams updates. */
async function openWorkloadApiStore(
  set: CredentialSetName,
  workloadApi: ResolvedWorkloadApiOptions,
  options: ResolvedMtlsOptions,
  events: MtlsEvents,
  sources: WorkloadApiSources,
): Promise<CredentialStore> {
  const source = new WorkloadX509Source({
    endpoint: workloadApi.endpoint,
    svid: workloadApi.svid,
    set,
    usages: credentialUsages(set, options),
    expiryWarningMs: options.expiryWarningMs,
    tls: options.tls,
    events,
  });
  sources.add(source);
  logger.log(`${set} credentials: waiting for the first X509-SVID from the Workload API ${workloadApi.endpoint.address}`);
  const store = await source.start(workloadApi.startupTimeoutMs);
  const credentials = store.current;
  logger.log(
    `${set} credentials loaded from the Workload API ${workloadApi.endpoint.address}: ${describeCredentials(credentials)}`,
  );
  for (const warning of credentials.warnings) logger.warn(`${set} credentials: ${warning}`);
  events.emit({ type: 'credentials.loaded', set, credentials });
  return store;
}

const providers: Provider[] = [
  { provide: MTLS_OPTIONS, inject: [MTLS_MODULE_OPTIONS], useFactory: resolveMtlsOptions },
  MtlsEvents,
  WorkloadApiSources,
  {
    provide: MTLS_IDENTITY_CREDENTIALS,
    inject: [MTLS_OPTIONS, MtlsEvents, WorkloadApiSources],
    useFactory: (options: ResolvedMtlsOptions, events: MtlsEvents, sources: WorkloadApiSources) =>
      openStore('identity', options.credentialFiles, options, events, sources),
  },
  {
    provide: MTLS_CLIENT_CREDENTIALS,
    inject: [MTLS_OPTIONS, MtlsEvents, MTLS_IDENTITY_CREDENTIALS, WorkloadApiSources],
    useFactory: (options: ResolvedMtlsOptions, events: MtlsEvents, identity: CredentialStore, sources: WorkloadApiSources) =>
      options.clientCredentialFiles === undefined
        ? identity
        : openStore('client', options.clientCredentialFiles, options, events, sources),
  },
  CredentialsStatus,
  ConnectionIdentities,
  {
    // Where the guard reads identities, decided once: the TLS connection, or a trusted proxy's header.
    provide: PeerIdentitySource,
    inject: [MTLS_OPTIONS, ConnectionIdentities, MTLS_IDENTITY_CREDENTIALS],
    useFactory: (options: ResolvedMtlsOptions, connections: ConnectionIdentities, store: CredentialStore) =>
      options.proxy === undefined
        ? new ConnectionIdentitySource(connections)
        : new ProxyIdentitySource(options.proxy, connections, store, options.logRateLimitPerMinute),
  },
  LoopbackListenerBinding,
  PeerPolicyRegistry,
  MtlsServerBinding,
  CredentialsReloadService,
  MtlsHttpClient,
  MtlsGuard,
  { provide: APP_GUARD, useExisting: MtlsGuard },
  TokenPolicyRegistry,
  { provide: MTLS_JWT_BUNDLE_FEEDS, useValue: openJwtBundleFeed },
  TokenIssuers,
  MtlsTokenGuard,
  // After MtlsGuard: Nest runs global guards in this order, so the peer rule is always checked before the token.
  { provide: APP_GUARD, useExisting: MtlsTokenGuard },
];

/**
 * Makes the application an mTLS server: loads and validates the credentials at startup, installs them into the
 * HTTPS server, guards every route by peer identity (deny by default) and provides the mTLS client.
 * Global: import it once, in the root module.
 * @example
 * ```ts
 * MtlsModule.forRoot({ credentials: { dir: '/var/run/secrets/tls' }, peers: { orders: 'spiffe://shop.test/ns/shop/sa/orders' } })
 * ```
 */
@Module({
  imports: [DiscoveryModule],
  providers,
  exports: [MTLS_OPTIONS, MTLS_IDENTITY_CREDENTIALS, MTLS_CLIENT_CREDENTIALS, MtlsEvents, CredentialsStatus, MtlsHttpClient],
})
export class MtlsModule extends MtlsConfigurableModule {}
