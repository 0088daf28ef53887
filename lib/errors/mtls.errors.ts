/**
 * Every error this package throws is an {@link MtlsError} with a stable `code`.
 * Codes are public API: match on `err.code`, never on the message text.
 * Only `server/mtls-http-errors.ts` maps codes to HTTP statuses.
 */

import { inspect } from 'node:util';

/** All error codes, one union; each subclass narrows it. */
export type MtlsErrorCode =
  | ConfigErrorCode
  | 'ERR_MTLS_SPIFFE_ID_INVALID'
  | 'ERR_MTLS_CERTIFICATE_INVALID'
  | 'ERR_MTLS_KEY_DISPOSED'
  | CredentialsErrorCode
  | PeerErrorCode
  | UpstreamErrorCode
  | WorkloadApiErrorCode
  | TokenErrorCode;

/** Startup codes (options, wiring, peer names, key sets), and `ERR_MTLS_INVALID_ARGUMENT` for a bad argument to a call. */
export type ConfigErrorCode =
  | 'ERR_MTLS_CONFIG_INVALID'
  | 'ERR_MTLS_NOT_HTTPS'
  | 'ERR_MTLS_UNKNOWN_PEER'
  | 'ERR_MTLS_JWKS_INVALID'
  | 'ERR_MTLS_INVALID_ARGUMENT';

export type CredentialsErrorCode =
  | 'ERR_MTLS_CREDENTIALS_UNREADABLE'
  | 'ERR_MTLS_CREDENTIALS_NOT_PEM'
  | 'ERR_MTLS_KEY_MISMATCH'
  | 'ERR_MTLS_CERT_NOT_YET_VALID'
  | 'ERR_MTLS_CERT_EXPIRED'
  | 'ERR_MTLS_CHAIN_UNTRUSTED'
  | 'ERR_MTLS_EKU_MISSING'
  | 'ERR_MTLS_SVID_INVALID'
  | 'ERR_MTLS_CRL_INVALID'
  | 'ERR_MTLS_CRL_ROLLBACK';

export type PeerErrorCode =
  'ERR_MTLS_PEER_UNAUTHENTICATED' | 'ERR_MTLS_PEER_INVALID' | 'ERR_MTLS_PEER_DENIED' | ProxyHeaderErrorCode;

/** A trusted proxy's identity header could not be read; the request is refused, never partly read. */
export type ProxyHeaderErrorCode =
  | 'ERR_MTLS_PROXY_HEADER_MALFORMED'
  | 'ERR_MTLS_PROXY_HEADER_TOO_LARGE'
  | 'ERR_MTLS_PROXY_HEADER_REPEATED'
  | 'ERR_MTLS_PROXY_HEADER_MISMATCH';

export type UpstreamErrorCode =
  | 'ERR_MTLS_UPSTREAM_IDENTITY'
  | 'ERR_MTLS_UPSTREAM_TLS'
  | 'ERR_MTLS_UPSTREAM_REQUEST'
  | 'ERR_MTLS_UPSTREAM_TIMEOUT'
  | 'ERR_MTLS_UPSTREAM_ABORTED';

export type WorkloadApiErrorCode =
  | 'ERR_MTLS_WORKLOAD_API_ENDPOINT_INVALID'
  | 'ERR_MTLS_WORKLOAD_API_UNAVAILABLE'
  | 'ERR_MTLS_WORKLOAD_API_TIMEOUT'
  | 'ERR_MTLS_WORKLOAD_API_INVALID_ARGUMENT'
  | 'ERR_MTLS_WORKLOAD_API_PERMISSION_DENIED'
  | 'ERR_MTLS_WORKLOAD_API_RESPONSE_INVALID'
  | 'ERR_MTLS_WORKLOAD_API_NO_SVID'
  | 'ERR_MTLS_WORKLOAD_API_CLOSED';

/**
 * Every error class this package throws, as one union to `switch (error.code)` on: each case narrows to its class
 * (panva/jose's `AnyJOSEError`). `error instanceof MtlsError` first, then the switch.
 */
export type AnyMtlsError =
  | MtlsConfigError
  | SpiffeIdError
  | CertificateParseError
  | CredentialsError
  | PeerError
  | ProxyHeaderError
  | UpstreamError
  | WorkloadApiError
  | TokenError;

export type TokenErrorCode =
  'ERR_MTLS_TOKEN_MISSING' | 'ERR_MTLS_TOKEN_INVALID' | 'ERR_MTLS_TOKEN_UNBOUND' | 'ERR_MTLS_TOKEN_SCOPE';

/** Root of every error thrown by nestjs-mtls. */
export class MtlsError extends Error {
  readonly code: MtlsErrorCode;

  constructor(code: MtlsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * How a startup error prints through `util.inspect` — which Node's report of an uncaught error and Nest's logger
 * both use: one paragraph with the name, code and message (which name the file or option and the fix), not a stack
 * trace into the framework. `error.stack` keeps the trace for whoever wants it.
 */
function startupErrorParagraph(error: MtlsError): string {
  return `${error.name} [${error.code}]: ${error.message}`;
}

/**
 * Something the application wrote is wrong. At startup: module options or wiring (`ERR_MTLS_CONFIG_INVALID`,
 * `ERR_MTLS_NOT_HTTPS`, `ERR_MTLS_UNKNOWN_PEER`). At run time: an argument of a client call or factory
 * (`ERR_MTLS_INVALID_ARGUMENT`, rejected before anything is sent; an unknown peer name stays `ERR_MTLS_UNKNOWN_PEER`).
 */
export class MtlsConfigError extends MtlsError {
  declare readonly code: ConfigErrorCode;

  constructor(code: ConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }

  /** Prints as one readable paragraph when uncaught or logged at bootstrap. */
  [inspect.custom](): string {
    return startupErrorParagraph(this);
  }
}

/** A string is not a valid SPIFFE ID; `message` is go-spiffe's error text for the same input. */
export class SpiffeIdError extends MtlsError {
  declare readonly code: 'ERR_MTLS_SPIFFE_ID_INVALID';

  constructor(message: string) {
    super('ERR_MTLS_SPIFFE_ID_INVALID', message);
  }
}

/** A certificate's DER or PEM cannot be parsed as X.509. */
export class CertificateParseError extends MtlsError {
  declare readonly code: 'ERR_MTLS_CERTIFICATE_INVALID';

  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MTLS_CERTIFICATE_INVALID', message, options);
  }
}

/** Where a credentials problem is and how to fix it. */
export interface CredentialsErrorDetail {
  /** The file at fault (absolute or as configured). */
  readonly file: string;
  /** Which credential: `certificate`, `key`, `ca` or `crl`. */
  readonly field: 'certificate' | 'key' | 'ca' | 'crl';
  /** What to do about it, one sentence. */
  readonly fix: string;
}

/**
 * Credentials failed validation (at startup or on reload). The message names the file,
 * the reason and the fix; it never contains a private key byte.
 */
export class CredentialsError extends MtlsError {
  declare readonly code: CredentialsErrorCode;
  readonly file: string;
  readonly field: CredentialsErrorDetail['field'];
  readonly fix: string;
  /** The reason alone, without file and fix (for logs and metrics labels). */
  readonly reason: string;

  constructor(code: CredentialsErrorCode, reason: string, detail: CredentialsErrorDetail, options?: { cause?: unknown }) {
    super(code, `${detail.file} (${detail.field}): ${reason}. Fix: ${detail.fix}`, options);
    this.file = detail.file;
    this.field = detail.field;
    this.fix = detail.fix;
    this.reason = reason;
  }

  /** Prints as one readable paragraph when uncaught or logged at bootstrap. */
  [inspect.custom](): string {
    return startupErrorParagraph(this);
  }
}

/** An inbound peer is not authenticated, not an acceptable identity, or not allowed on a route. */
export class PeerError extends MtlsError {
  declare readonly code: PeerErrorCode;
  /** Description of the rule that denied the peer, for logs (never sent to the client). */
  readonly rule: string | undefined;

  constructor(code: PeerErrorCode, message: string, rule?: string) {
    super(code, message);
    this.rule = rule;
  }
}

/**
 * A proxy identity header (XFCC, RFC 9440) is malformed, too large, sent on several lines, or contradicts the
 * certificate it forwards. The message names the field and the position, never the header's content.
 */
export class ProxyHeaderError extends PeerError {
  declare readonly code: ProxyHeaderErrorCode;

  constructor(code: ProxyHeaderErrorCode, message: string) {
    super(code, message);
  }
}

/** What the client knew about a failed outbound call. */
export interface UpstreamErrorDetail {
  /** The upstream's name or origin. */
  readonly upstream: string;
  /** The identity the caller expected (SPIFFE ID or host name), if any. */
  readonly expected?: string | undefined;
  /** What the server presented (SPIFFE ID, SANs) or the TLS error seen. */
  readonly seen?: string | undefined;
}

/** An outbound call failed: wrong server identity, TLS failure, timeout, abort or transport error. */
export class UpstreamError extends MtlsError {
  declare readonly code: UpstreamErrorCode;
  readonly upstream: string;
  readonly expected: string | undefined;
  readonly seen: string | undefined;

  constructor(code: UpstreamErrorCode, message: string, detail: UpstreamErrorDetail, options?: { cause?: unknown }) {
    super(code, message, options);
    this.upstream = detail.upstream;
    this.expected = detail.expected;
    this.seen = detail.seen;
  }
}

/** A SPIFFE Workload API call failed or answered something unusable; `endpoint` names the socket. */
export class WorkloadApiError extends MtlsError {
  declare readonly code: WorkloadApiErrorCode;
  /** The Workload API endpoint, as configured (`unix:///…` or `tcp://…`). */
  readonly endpoint: string;

  constructor(code: WorkloadApiErrorCode, message: string, endpoint: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.endpoint = endpoint;
  }
}

/** What a refused bearer token is known by in logs and metrics: never the token or any part of it. */
export interface TokenErrorDetail {
  /** The configured issuer name (`tokens.issuers.<name>`). */
  readonly issuer: string;
  /** A stable, low-cardinality reason, e.g. `expired`, `signature`, `cnf_mismatch` (the metric label). */
  readonly reason: string;
  /** The token's `kid` header, sanitised, when one could be read. */
  readonly kid?: string | undefined;
  /** The token's `sub`, sanitised, only once its signature was verified. */
  readonly sub?: string | undefined;
  /** For `ERR_MTLS_TOKEN_SCOPE`: the scopes the route requires, space-separated (configuration, not token data). */
  readonly scope?: string | undefined;
}

/**
 * A bearer token is missing, fails verification, is not bound to the connection it arrived on, or lacks a scope.
 * The message says why in fixed words; it never contains the token or any part of it.
 */
export class TokenError extends MtlsError {
  declare readonly code: TokenErrorCode;
  readonly issuer: string;
  readonly reason: string;
  readonly kid: string | undefined;
  readonly sub: string | undefined;
  readonly scope: string | undefined;
  /** A token was presented (RFC 6750 §3: then `error="invalid_token"`). */
  readonly presented: boolean;

  constructor(code: TokenErrorCode, message: string, detail: TokenErrorDetail, presented = code !== 'ERR_MTLS_TOKEN_MISSING') {
    super(code, message);
    this.issuer = detail.issuer;
    this.reason = detail.reason;
    this.kid = detail.kid;
    this.sub = detail.sub;
    this.scope = detail.scope;
    this.presented = presented;
  }
}
