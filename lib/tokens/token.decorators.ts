import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { verifiedTokenOf } from './token-request.js';
import type { RequireTokenOptions, TokenBinding } from './tokens.options.js';

/** Metadata key of `@RequireToken`. */
export const MTLS_TOKEN_REQUIREMENT = 'MTLS:TOKEN_REQUIREMENT';

/** What `@RequireToken` records; compiled against the module's issuers at startup. */
export interface TokenRequirementMetadata {
  readonly issuer: string;
  readonly bind: TokenBinding;
  readonly scopes: readonly string[];
}

const BINDINGS: readonly TokenBinding[] = ['none', 'certificate', 'peer-id'];

/**
 * Requires a bearer token from the named issuer (`tokens.issuers.<name>`), in addition to the route's peer rule:
 * the peer is checked first (a denied peer gets its 403 and the token is not even read), then the token.
 * On a method it replaces the controller's requirement. An issuer name that is not configured fails at startup.
 * @example
 * ```ts
 * @Post(':sku/refund')
 * @AllowPeers('frontend')
 * @RequireToken('shop', { bind: 'certificate', scopes: ['orders:refund'] })
 * refund(@Token() claims: JWTPayload) {}
 * ```
 */
export function RequireToken(issuer: string, options: RequireTokenOptions = {}): ClassDecorator & MethodDecorator {
  if (typeof issuer !== 'string' || issuer === '')
    throw new TypeError('@RequireToken() needs the name of an issuer of MtlsModule option "tokens.issuers"');
  const bind = options.bind ?? 'none';
  if (!BINDINGS.includes(bind))
    throw new TypeError(`@RequireToken('${issuer}'): bind must be one of ${BINDINGS.map((b) => `'${b}'`).join(', ')}`);
  const scopes = options.scopes ?? [];
  if (!Array.isArray(scopes) || scopes.some((scope) => typeof scope !== 'string' || scope === '' || /\s/.test(scope))) {
    throw new TypeError(`@RequireToken('${issuer}'): scopes must be non-empty strings without spaces`);
  }
  return SetMetadata(
    MTLS_TOKEN_REQUIREMENT,
    Object.freeze({ issuer, bind, scopes: Object.freeze([...scopes]) }) satisfies TokenRequirementMetadata,
  );
}

/**
 * Injects the verified claims of the request's bearer token (`@Token()`), or the compact token itself to relay it
 * (`@Token('token')`, e.g. to `MtlsHttpClient` option `token`). Undefined on routes without `@RequireToken`.
 * @example
 * ```ts
 * create(@Token() claims: JWTPayload, @Token('token') bearer: string) {}
 * ```
 */
export const Token = createParamDecorator((data: 'claims' | 'token' | undefined, context: ExecutionContext) => {
  const verified = verifiedTokenOf(context.switchToHttp().getRequest<object>());
  return data === 'token' ? verified?.token : verified?.claims;
});
