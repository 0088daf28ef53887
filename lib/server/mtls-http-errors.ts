import { HttpException, HttpStatus } from '@nestjs/common';
import type { MtlsError, MtlsErrorCode } from '../errors/mtls.errors.js';

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
};

/**
 * The one place that maps error codes to HTTP. Peer errors become 401/403, proxy header errors 400, upstream errors 502/504,
 * anything else (configuration, credentials) 500 — those belong to startup and should never reach a request.
 */
export function toHttpException(error: MtlsError): MtlsHttpException {
  const [status, name, message] = STATUS[error.code] ?? [
    HttpStatus.INTERNAL_SERVER_ERROR,
    'Internal Server Error',
    'internal error',
  ];
  return new MtlsHttpException(error.code, status, name, message, error);
}
