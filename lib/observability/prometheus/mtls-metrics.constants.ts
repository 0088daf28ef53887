/** Injection token of the prom-client `Registry` that {@link MtlsMetrics} registers into (default: the global one). */
export const MTLS_METRICS_REGISTRY = Symbol('MTLS_METRICS_REGISTRY');

/** Names of the metrics {@link MtlsMetrics} registers. */
export const MTLS_METRIC_NAMES = {
  certificateNotAfter: 'nestjs_mtls_certificate_not_after_seconds',
  caNotAfter: 'nestjs_mtls_ca_not_after_seconds',
  credentialReloads: 'nestjs_mtls_credential_reloads_total',
  handshakeFailures: 'nestjs_mtls_handshake_failures_total',
  peerDenied: 'nestjs_mtls_peer_denied_total',
  connectionsRevoked: 'nestjs_mtls_connections_revoked_total',
  tokenRejections: 'nestjs_mtls_token_rejections_total',
  jwksStaleServed: 'nestjs_mtls_jwks_stale_served_total',
} as const;
