import { HttpException, HttpStatus } from '@nestjs/common';
import { TokenError, type MtlsError, type MtlsErrorCode } from '../errors/mtls.errors.js';

/** The JSON body of every HTTP error this package produces: fixed texts, a stable code, no certificate details. */
export interface MtlsHttpErrorBody {
  readonly statusCode: number;
  readonly error: string;
  readonly code: MtlsErrorCode;
  readonly message: string;
}

/** An HTTP error answered for an {@link MtlsError}; its body is {@link MtlsHttpErrorBody}. */
export class MtlsHttpException extends HttpException {
  constructor(
    readonly mtlsCode: MtlsErrorCode,
    status: number,
    error: string,
    message: string,
    cause: MtlsError,
    /** Response headers the refusal needs (`WWW-Authenticate` for bearer tokens, RFC 6750 §3). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super({ statusCode: status, error, code: mtlsCode, message } satisfies MtlsHttpErrorBody, status, { cause });
  }
}

const STATUS: Partial<Record<MtlsErrorCode, readonly [status: number, error: string, message: string]>> = {
  ERR_MTLS_PEER_UNAUTHENTICATED: [HttpStatus.UNAUTHORIZED, 'Unauthorized', 'a valid client certificate is required'],
  ERR_MTLS_PEER_INVALID: [HttpStatus.FORBIDDEN, 'Forbidden', 'peer not allowed'],
  ERR_MTLS_PEER_DENIED: [HttpStatus.FORBIDDEN, 'Forbidden', 'peer not allowed'],
  // A trusted proxy's identity header that cannot be read: the request is malformed, never half-authenticated.
  ERR_MTLS_PROXY_HEADER_MALFORMED: [HttpStatus.BAD_REQUEST, 'Bad Request', 'malformed client certificate header'],
  ERR_MTLS_PROXY_HEADER_TOO_LARGE: [HttpStatus.BAD_REQUEST, 'Bad Request', 'client certificate header too large'],
  ERR_MTLS_PROXY_HEADER_REPEATED: [HttpStatus.BAD_REQUEST, 'Bad Request', 'client certificate header sent more than once'],
  ERR_MTLS_PROXY_HEADER_MISMATCH: [HttpStatus.BAD_REQUEST, 'Bad Request', 'client certificate header contradicts itself'],
  ERR_MTLS_UPSTREAM_IDENTITY: [HttpStatus.BAD_GATEWAY, 'Bad Gateway', 'upstream identity mismatch'],
  ERR_MTLS_UPSTREAM_TLS: [HttpStatus.BAD_GATEWAY, 'Bad Gateway', 'upstream TLS handshake failed'],
  ERR_MTLS_UPSTREAM_REQUEST: [HttpStatus.BAD_GATEWAY, 'Bad Gateway', 'upstream request failed'],
  ERR_MTLS_UPSTREAM_ABORTED: [HttpStatus.BAD_GATEWAY, 'Bad Gateway', 'upstream request aborted'],
  ERR_MTLS_UPSTREAM_TIMEOUT: [HttpStatus.GATEWAY_TIMEOUT, 'Gateway Timeout', 'upstream request timed out'],
  ERR_MTLS_TOKEN_MISSING: [HttpStatus.UNAUTHORIZED, 'Unauthorized', 'a bearer token is required'],
  ERR_MTLS_TOKEN_INVALID: [HttpStatus.UNAUTHORIZED, 'Unauthorized', 'the bearer token is not valid'],
  ERR_MTLS_TOKEN_UNBOUND: [HttpStatus.UNAUTHORIZED, 'Unauthorized', 'the bearer token is not bound to this caller'],
  ERR_MTLS_TOKEN_SCOPE: [HttpStatus.FORBIDDEN, 'Forbidden', 'insufficient_scope'],
};

/**
 * The `WWW-Authenticate` challenge of a token refusal (RFC 6750 §3): a bare `Bearer` when no token was sent,
 * `error="invalid_token"` when one was, `error="insufficient_scope"` with the scopes the route needs.
 */
function bearerChallenge(error: TokenError): string {
  if (error.code === 'ERR_MTLS_TOKEN_SCOPE') {
    return `Bearer error="insufficient_scope"${error.scope === undefined ? '' : `, scope="${error.scope}"`}`;
  }
  return error.presented ? 'Bearer error="invalid_token"' : 'Bearer';
}

/**
 * The one place that maps error codes to HTTP. Peer errors become 401/403, token errors 401 (403 for a missing
 * scope) with their `WWW-Authenticate` challenge in `headers`, proxy header errors 400, upstream errors 502/504,
 * anything else (configuration, credentials) 500 — those belong to startup and should never reach a request.
 */
export function toHttpException(error: MtlsError): MtlsHttpException {
  const [status, name, message] = STATUS[error.code] ?? [
    HttpStatus.INTERNAL_SERVER_ERROR,
    'Internal Server Error',
    'internal error',
  ];
  const headers = error instanceof TokenError ? { 'WWW-Authenticate': bearerChallenge(error) } : undefined;
  return new MtlsHttpException(error.code, status, name, message, error, headers);
}
