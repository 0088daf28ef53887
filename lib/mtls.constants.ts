/** Injection token of the resolved module options ({@link ResolvedMtlsOptions}). */
export const MTLS_OPTIONS = Symbol('MTLS_OPTIONS');
/** Injection token of the identity {@link CredentialStore} (the certificate the server presents). */
export const MTLS_IDENTITY_CREDENTIALS = Symbol('MTLS_IDENTITY_CREDENTIALS');
/** Injection token of the client's {@link CredentialStore} (the identity store unless a client set is configured). */
export const MTLS_CLIENT_CREDENTIALS = Symbol('MTLS_CLIENT_CREDENTIALS');
/** Metadata key of the peer rule set by the `@Allow…` decorators. */
export const MTLS_PEER_RULE = 'MTLS:PEER_RULE';
/** Injection token of the function that opens the Workload API's JWT bundle stream for the token layer. */
export const MTLS_JWT_BUNDLE_FEEDS = Symbol('MTLS_JWT_BUNDLE_FEEDS');
