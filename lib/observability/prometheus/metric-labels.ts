import type { PeerErrorCode } from '../../errors/mtls.errors.js';
import { X509_VERIFY_ERRORS } from '../../errors/x509-verify-errors.js';

/** The label value of every reason or route outside the bounded set. */
export const OTHER_LABEL = 'other';

/*
 * Handshake failure reasons as the server sees them: the certificate verification result OpenSSL gives Node
 * (`socket.authorizationError`, the X509_V_ERR names Node maps in src/crypto/crypto_common.cc), else the handshake
 * error's code (`ERR_SSL_<OpenSSL reason>`, Node's own, or a socket errno). A closed list keeps the label's
 * cardinality fixed whatever a scanner on the port sends.
 */
const HANDSHAKE_REASONS: ReadonlySet<string> = new Set([
  // Certificate verification (peer certificate presented, rejected).
  ...X509_VERIFY_ERRORS,
  // Handshake failures before or around verification.
  'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
  'ERR_SSL_CERTIFICATE_VERIFY_FAILED',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_VERSION_TOO_LOW',
  'ERR_SSL_NO_SHARED_CIPHER',
  'ERR_SSL_NO_SHARED_GROUPS',
  'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM',
  'ERR_SSL_INAPPROPRIATE_FALLBACK',
  'ERR_SSL_UNEXPECTED_MESSAGE',
  'ERR_SSL_UNEXPECTED_EOF_WHILE_READING',
  'ERR_SSL_BAD_SIGNATURE',
  // Alerts sent by the client, typically because it does not accept the server's certificate.
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  // Refused by MtlsModule right after the handshake (connection admission): the peer error codes.
  'ERR_MTLS_PEER_UNAUTHENTICATED',
  'ERR_MTLS_PEER_INVALID',
  'ERR_MTLS_PEER_DENIED',
  // Node and the socket: handshake timeout, peer gone (including TCP-only probes).
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

// A Record, so that a new PeerErrorCode fails to compile until it is listed here.
const DENIED_REASONS: Readonly<Record<PeerErrorCode, true>> = {
  ERR_MTLS_PEER_UNAUTHENTICATED: true,
  ERR_MTLS_PEER_INVALID: true,
  ERR_MTLS_PEER_DENIED: true,
  ERR_MTLS_PROXY_HEADER_MALFORMED: true,
  ERR_MTLS_PROXY_HEADER_TOO_LARGE: true,
  ERR_MTLS_PROXY_HEADER_REPEATED: true,
  ERR_MTLS_PROXY_HEADER_MISMATCH: true,
};

/** The `reason` label of a rejected handshake: a known OpenSSL/Node code, else `other`. */
export function handshakeReasonLabel(reason: string): string {
  return HANDSHAKE_REASONS.has(reason) ? reason : OTHER_LABEL;
}

/** The `reason` label of a denied peer: a peer error code, else `other`. */
export function deniedReasonLabel(code: string): string {
  return Object.hasOwn(DENIED_REASONS, code) ? code : OTHER_LABEL;
}

/**
 * Admits the first `limit` distinct values of a label and maps every later one to `other`, so that a label fed from
 * application data (routes) cannot grow without bound.
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();

  constructor(private readonly limit: number) {}

  /** The value itself while fewer than `limit` distinct values were seen, else `other`. */
  value(candidate: string): string {
    if (this.#seen.has(candidate)) return candidate;
    if (this.#seen.size >= this.limit) return OTHER_LABEL;
    this.#seen.add(candidate);
    return candidate;
  }
}

// Every reason the token guard reports (bearer-header.ts, token-verifier.ts): a closed list, whatever a client sends.
const TOKEN_REASONS: ReadonlySet<string> = new Set([
  'missing',
  'scheme',
  'duplicate_header',
  'too_large',
  'malformed',
  'expired',
  'not_yet_valid',
  'issuer',
  'audience',
  'too_old',
  'claims',
  'algorithm',
  'signature',
  'typ',
  'unknown_kid',
  'ambiguous_key',
  'jwks_unavailable',
  'kid_missing',
  'sub_invalid',
  'no_bundle',
  'cnf_missing',
  'cnf_mismatch',
  'sub_mismatch',
  'sub_trust_domain',
  'insufficient_scope',
]);

/** The `reason` label of a rejected token: a known reason, else `other`. */
export function tokenReasonLabel(reason: string): string {
  return TOKEN_REASONS.has(reason) ? reason : OTHER_LABEL;
}
