import { MtlsConfigError } from '../errors/mtls.errors.js';
import type { MtlsRequestOptions } from './client.interfaces.js';

/** A bearer token, or a function that returns one (called per request, e.g. to relay `@Token('token')` or renew). */
export type BearerTokenSource = string | (() => string | Promise<string>);

// RFC 6750 §2.1 b64token: nothing that could end the header or start another one.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Same bound as the server side's: a token larger than this is a mistake, not a credential. */
const MAX_TOKEN_CHARS = 16 * 1024;

/** Why a `token` option cannot be used, or undefined; never quotes the value. */
export function tokenSourceProblem(token: unknown): string | undefined {
  if (token === undefined || typeof token === 'function') return undefined;
  if (typeof token !== 'string') return `options.token must be a string or a function returning one; got ${typeof token}`;
  return tokenProblem(token);
}

function tokenProblem(token: string): string | undefined {
  if (token.length === 0 || token.length > MAX_TOKEN_CHARS || !B64TOKEN.test(token)) {
    return `options.token is not a bearer token (RFC 6750 b64token of at most ${MAX_TOKEN_CHARS} characters); its value is not shown`;
  }
  return undefined;
}

/**
 * The call's options with `Authorization: Bearer <token>` added. Refuses a call that sets its own Authorization
 * header as well (which one was meant?). The header goes into this one request only: the client follows no redirect,
 * so the token reaches no other origin than the one whose identity the handshake verified.
 */
export async function withBearerToken<T extends Pick<MtlsRequestOptions, 'headers'>>(
  options: T | undefined,
  source: BearerTokenSource,
  call: string,
): Promise<T> {
  const token = typeof source === 'function' ? await source() : source;
  const problem = typeof token === 'string' ? tokenProblem(token) : 'options.token returned no string';
  if (problem !== undefined) throw new MtlsConfigError('ERR_MTLS_INVALID_ARGUMENT', `${call}: ${problem}; nothing was sent`);
  const headers = options?.headers ?? {};
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() === 'authorization' && headers[name] !== undefined) {
      throw new MtlsConfigError(
        'ERR_MTLS_INVALID_ARGUMENT',
        `${call}: both options.token and an Authorization header are set; keep one. Nothing was sent`,
      );
    }
  }
  return { ...(options as T), headers: { ...headers, authorization: `Bearer ${token}` } };
}
