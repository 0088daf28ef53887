import { Logger, Module, type Provider } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { CredentialStore } from './credentials/credential-store.js';
import { describeCredentials } from './credentials/credentials-description.js';
import { loadCredentials } from './credentials/credentials-loader.js';
import type { CredentialFiles, CredentialUsage } from './credentials/credentials.interfaces.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from './mtls.constants.js';
import { resolveMtlsOptions, type ResolvedMtlsOptions } from './mtls.config.js';
import { MTLS_MODULE_OPTIONS, MtlsConfigurableModule } from './mtls.module-definition.js';
import type { CredentialSetName } from './observability/mtls-events.js';
import { MtlsEvents } from './observability/mtls-events.js';
import { ConnectionIdentities } from './server/connection-identity.js';
import { MtlsExceptionFilter } from './server/mtls-exception.filter.js';
import { MtlsGuard } from './server/mtls.guard.js';
import { MtlsServerBinding } from './server/mtls-server.binding.js';
import { PeerPolicyRegistry } from './server/peer-policy.registry.js';

const logger = new Logger('MtlsModule');

async function openStore(
  set: CredentialSetName,
  files: CredentialFiles,
  usages: readonly CredentialUsage[],
  options: ResolvedMtlsOptions,
  events: MtlsEvents,
): Promise<CredentialStore> {
  const credentials = await loadCredentials(files, { usages, expiryWarningMs: options.expiryWarningMs });
  logger.log(`${set} credentials loaded from ${files.cert}: ${describeCredentials(credentials)}`);
  for (const warning of credentials.warnings) logger.warn(`${set} credentials: ${warning}`);
  events.emit({ type: 'credentials.loaded', set, credentials });
  return new CredentialStore(credentials);
}

const providers: Provider[] = [
  { provide: MTLS_OPTIONS, inject: [MTLS_MODULE_OPTIONS], useFactory: resolveMtlsOptions },
  MtlsEvents,
  {
    provide: MTLS_IDENTITY_CREDENTIALS,
    inject: [MTLS_OPTIONS, MtlsEvents],
    useFactory: (options: ResolvedMtlsOptions, events: MtlsEvents) =>
      // Without a separate client set, the identity certificate also authenticates outbound calls.
      openStore(
        'identity',
        options.credentialFiles,
        options.clientCredentialFiles === undefined ? ['serverAuth', 'clientAuth'] : ['serverAuth'],
        options,
        events,
      ),
  },
  {
    provide: MTLS_CLIENT_CREDENTIALS,
    inject: [MTLS_OPTIONS, MtlsEvents, MTLS_IDENTITY_CREDENTIALS],
    useFactory: (options: ResolvedMtlsOptions, events: MtlsEvents, identity: CredentialStore) =>
      options.clientCredentialFiles === undefined
        ? identity
        : openStore('client', options.clientCredentialFiles, ['clientAuth'], options, events),
  },
  ConnectionIdentities,
  PeerPolicyRegistry,
  MtlsServerBinding,
  { provide: APP_GUARD, useClass: MtlsGuard },
  { provide: APP_FILTER, useClass: MtlsExceptionFilter },
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
  exports: [MTLS_OPTIONS, MTLS_IDENTITY_CREDENTIALS, MTLS_CLIENT_CREDENTIALS, MtlsEvents],
})
export class MtlsModule extends MtlsConfigurableModule {}
