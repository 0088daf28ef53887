export { MtlsModule } from './mtls.module.js';
export { MTLS_ASYNC_OPTIONS_TYPE, MTLS_MODULE_OPTIONS, MTLS_OPTIONS_TYPE } from './mtls.module-definition.js';
export { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS, MTLS_PEER_RULE } from './mtls.constants.js';
export type {
  MtlsClientOptions,
  MtlsModuleOptions,
  MtlsReloadOptions,
  TlsPolicyOptions,
  UpstreamOptions,
} from './mtls.options.js';
export type { ResolvedMtlsOptions } from './mtls.config.js';

export * from './errors/mtls.errors.js';
export * from './identity/index.js';
export * from './authorization/index.js';
export * from './client/index.js';

export { CredentialStore } from './credentials/credential-store.js';
export type { CredentialsListener } from './credentials/credential-store.js';
export { PrivateKeyMaterial } from './credentials/private-key.js';
export { loadCredentials, readCredentials, resolveCredentialFiles, validateCredentials } from './credentials/credentials-loader.js';
export type { ValidateOptions } from './credentials/credentials-loader.js';
export type {
  CredentialFiles,
  CredentialFilesOptions,
  Credentials,
  CredentialsSourceOptions,
  CredentialUsage,
  RawCredentials,
  SecretDirectoryOptions,
} from './credentials/credentials.interfaces.js';
export { describeCredentials } from './credentials/credentials-description.js';

export { mtlsHttpsOptions } from './server/mtls-https.options.js';
export type { MtlsHttpsOptions } from './server/mtls-https.options.js';
export { MtlsGuard } from './server/mtls.guard.js';
export {
  AllowAnyPeer,
  AllowCommonNames,
  AllowDnsNames,
  AllowPeers,
  AllowTrustDomain,
  Peer,
} from './server/peer.decorators.js';
export { peerOfRequest } from './server/peer-request.js';
export { MtlsHttpException, toHttpException } from './server/mtls-http-errors.js';
export { MtlsExceptionFilter } from './server/mtls-exception.filter.js';
export type { MtlsHttpErrorBody } from './server/mtls-http-errors.js';

export { MtlsEvents } from './observability/mtls-events.js';
export type { CredentialSetName, MtlsEvent } from './observability/mtls-events.js';
export { CredentialsStatus, expiryWarningWindow, summarizeCredentials } from './observability/credentials-status.js';
export type {
  CredentialSetStatus,
  CredentialsSummary,
  RefusalSummary,
  ReloadOutcome,
} from './observability/credentials-status.js';
