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

export {
  CertificateParseError,
  CredentialsError,
  MtlsConfigError,
  MtlsError,
  PeerError,
  ProxyHeaderError,
  SpiffeIdError,
  TokenError,
  UpstreamError,
  WorkloadApiError,
} from './errors/mtls.errors.js';
export type {
  ConfigErrorCode,
  CredentialsErrorCode,
  CredentialsErrorDetail,
  MtlsErrorCode,
  PeerErrorCode,
  TokenErrorCode,
  TokenErrorDetail,
  ProxyHeaderErrorCode,
  UpstreamErrorCode,
  UpstreamErrorDetail,
  WorkloadApiErrorCode,
} from './errors/mtls.errors.js';
export type { WorkloadApiCredentialsOptions, WorkloadApiOptions } from './workload-api/workload-api.options.js';
export {
  EKU_CLIENT_AUTH,
  EKU_SERVER_AUTH,
  SPIFFE_ID_MAX_BYTES,
  SpiffeId,
  TRUST_DOMAIN_MAX_BYTES,
  isValidSpiffeId,
  joinSpiffePathSegments,
  parseCertificateDer,
  parseCertificatesPem,
  parseSpiffeId,
  parseTrustDomain,
  peerIdentityFromCertificate,
  peerIdentityFromDer,
  spiffeIdError,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  validateSpiffePath,
  validateSpiffePathSegment,
} from './identity/index.js';
export type { CertificateInfo, KeyUsageBits, PeerIdentity } from './identity/index.js';
export type { PeerSource } from './identity/peer-identity.js';
export {
  authorizeAny,
  authorizeAnyOf,
  authorizeCommonName,
  authorizeDnsName,
  authorizeId,
  authorizeMatch,
  authorizeMemberOf,
  authorizeNone,
  authorizeOneOf,
  compileSpiffePattern,
} from './authorization/index.js';
export type { Authorizer } from './authorization/index.js';
export { MtlsDispatcher, MtlsHttpClient, MtlsHttpsAgent, MtlsUpstreamClient } from './client/index.js';
export type {
  ExpectedPeer,
  HttpMethod,
  MtlsBodyRequestOptions,
  MtlsConnectionOptions,
  MtlsRequestOptions,
  MtlsResponse,
  MtlsUpstreamBodyRequestOptions,
  MtlsUpstreamRequestOptions,
  QueryValue,
} from './client/index.js';

export { CredentialStore } from './credentials/credential-store.js';
export { CredentialsReloader } from './credentials/credentials-reloader.js';
export type { CredentialsReloaderOptions, ReloadResult } from './credentials/credentials-reloader.js';
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

export { RequireToken, Token, MTLS_TOKEN_REQUIREMENT } from './tokens/token.decorators.js';
export { MtlsTokenGuard } from './tokens/token.guard.js';
export { TokenIssuers } from './tokens/token-issuers.service.js';
export { verifiedTokenOf } from './tokens/token-request.js';
export type { VerifiedToken } from './tokens/token-verifier.js';
export type {
  JwksFileOptions,
  JwksUrlOptions,
  MtlsTokensOptions,
  RequireTokenOptions,
  TokenAlgorithm,
  TokenBinding,
  TokenIssuerOptions,
} from './tokens/tokens.options.js';

// Behind a trusted proxy (module option `proxy`): the caller's identity from its XFCC or RFC 9440 header.
export type { MtlsProxyOptions } from './proxy/proxy.options.js';
export { forwardedCertificateDer } from './proxy/forwarded-identity.js';
