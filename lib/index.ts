// The Nest surface of nestjs-mtls. Building blocks have their own entries: `nestjs-mtls/spiffe` (SPIFFE IDs, trust
// domains, authorizers), `nestjs-mtls/credentials` (credential sets without Nest), `nestjs-mtls/testing`,
// `nestjs-mtls/terminus`, `nestjs-mtls/prometheus`, `nestjs-mtls/fastify` and `nestjs-mtls/workload-api`. Every export is a promise: add one deliberately.
export { MtlsModule } from './mtls.module.js';
export type { MTLS_ASYNC_OPTIONS_TYPE, MTLS_OPTIONS_TYPE } from './mtls.module-definition.js';
export { MTLS_CLIENT_CREDENTIALS, MTLS_IDENTITY_CREDENTIALS, MTLS_OPTIONS } from './mtls.constants.js';
export type {
  MtlsClientOptions,
  MtlsModuleOptions,
  MtlsReloadOptions,
  TlsPolicyOptions,
  UpstreamOptions,
} from './mtls.options.js';
export type { ResolvedMtlsOptions } from './mtls.config.js';
export type {
  CredentialFilesOptions,
  CredentialsSourceOptions,
  SecretDirectoryOptions,
} from './credentials/credentials.interfaces.js';

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
  AnyMtlsError,
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

export { mtlsHttpsOptions } from './server/mtls-https.options.js';
export type { MtlsHttpsOptions } from './server/mtls-https.options.js';
export { MtlsGuard } from './server/mtls.guard.js';
export { AllowAnyPeer, AllowCommonNames, AllowDnsNames, AllowPeers, AllowTrustDomain, Peer } from './server/peer.decorators.js';
export { peerOfRequest } from './server/peer-request.js';
export type { PeerIdentity, PeerSource } from './identity/peer-identity.js';
export { MtlsHttpException, toHttpException } from './server/mtls-http-errors.js';
export { MtlsExceptionFilter } from './server/mtls-exception.filter.js';
export type { MtlsHttpErrorBody } from './server/mtls-http-errors.js';

export type { WorkloadApiCredentialsOptions, WorkloadApiOptions } from './workload-api/workload-api.options.js';

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

export { MtlsEvents } from './observability/mtls-events.js';
export type { CredentialSetName, MtlsEvent } from './observability/mtls-events.js';
export { CredentialsStatus } from './observability/credentials-status.js';
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
  JwksWorkloadApiOptions,
  MtlsTokensOptions,
  RequireTokenOptions,
  TokenAlgorithm,
  TokenBinding,
  TokenIssuerOptions,
} from './tokens/tokens.options.js';

// Behind a trusted proxy (module option `proxy`): the caller's identity from its XFCC or RFC 9440 header.
export type { MtlsProxyOptions } from './proxy/proxy.options.js';
export { forwardedCertificateDer } from './proxy/forwarded-identity.js';
