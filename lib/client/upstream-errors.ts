import { UpstreamError, type UpstreamErrorCode } from '../errors/mtls.errors.js';
import { errorCode } from '../errors/error-code.js';
import { X509_VERIFY_ERRORS } from '../errors/x509-verify-errors.js';
import { isConnectError } from './client-generation.js';

const TIMEOUT_ERRORS: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
]);

/** Alerts a server sends about the client's certificate (OpenSSL names them `ERR_SSL_<version>_ALERT_<alert>`). */
const REFUSAL_ALERT =
  /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_(EXPIRED|REVOKED|UNKNOWN|UNSUPPORTED)|HANDSHAKE_FAILURE|ACCESS_DENIED)$/;

const REFUSED_OUR_CERTIFICATE =
  'the server may have refused our client certificate (with TLS 1.3 a client learns that only on its first read); ' +
  'its log names the reason';

/** Where a failed call was going, for the error's message and detail. */
export interface UpstreamCall {
  readonly upstream: string;
  readonly expected: string;
  /** `GET /stock/42` (never the query string: it may carry secrets). */
  readonly request: string;
}

/**
 * Maps what undici or Node's TLS threw to an {@link UpstreamError} with a stable code; the original is the `cause`.
 * Identity mismatches are already UpstreamErrors, made by the handshake check; they are re-thrown with the call named.
 */
export function toUpstreamError(error: unknown, call: UpstreamCall): UpstreamError {
  const { upstream, expected, request } = call;
  if (error instanceof UpstreamError) {
    return new UpstreamError(error.code, `${request}: ${error.message}`, error, { cause: error });
  }
  const code = errorCode(error);
  const detail = error instanceof Error ? error.message : String(error);
  const seen = code ?? detail;
  const fail = (kind: UpstreamErrorCode, message: string): UpstreamError =>
    new UpstreamError(kind, `${request} to upstream ${upstream}: ${message}`, { upstream, expected, seen }, { cause: error });

  if (code !== undefined && TIMEOUT_ERRORS.has(code)) return fail('ERR_MTLS_UPSTREAM_TIMEOUT', `timed out (${detail})`);
  if (code !== undefined && X509_VERIFY_ERRORS.has(code)) {
    return fail('ERR_MTLS_UPSTREAM_TLS', `the server's certificate was refused: ${code} (${detail})`);
  }
  if (code !== undefined && /^ERR_(SSL|TLS|OSSL)_/.test(code)) {
    const note = REFUSAL_ALERT.test(code) ? `; ${REFUSED_OUR_CERTIFICATE}` : '';
    return fail('ERR_MTLS_UPSTREAM_TLS', `TLS failed: ${code}${note}`);
  }
  if (isConnectError(error) && (code === 'ECONNRESET' || code === 'EPIPE')) {
    const what = `the server closed the connection during the TLS handshake (${code})`;
    return fail('ERR_MTLS_UPSTREAM_TLS', `${what}; ${REFUSED_OUR_CERTIFICATE}`);
  }
  if (code === 'UND_ERR_SOCKET' && bytesRead(error) === 0) {
    const what = `the server closed a new connection before answering (${detail})`;
    return fail('ERR_MTLS_UPSTREAM_TLS', `${what}; ${REFUSED_OUR_CERTIFICATE}`);
  }
  if (code === 'UND_ERR_ABORTED' || (error instanceof Error && error.name === 'AbortError')) {
    return fail('ERR_MTLS_UPSTREAM_ABORTED', 'aborted');
  }
  return fail('ERR_MTLS_UPSTREAM_REQUEST', `failed: ${code === undefined ? detail : `${code} (${detail})`}`);
}

/** undici's SocketError carries the socket's counters: 0 bytes read means no byte of any response ever arrived. */
function bytesRead(error: unknown): number | undefined {
  const socket = (error as { socket?: { bytesRead?: unknown } | null }).socket;
  return typeof socket?.bytesRead === 'number' ? socket.bytesRead : undefined;
}
