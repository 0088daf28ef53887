import { Inject, Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { PeerError, TokenError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { LogRateLimiter } from '../observability/log-rate-limiter.js';
import { MtlsEvents } from '../observability/mtls-events.js';
import { requestOf } from '../server/peer-request.js';
import { toHttpException } from '../server/mtls-http-errors.js';
import { peerOfRequest } from '../server/peer-request.js';
import { bearerToken, type BearerProblem, type HeaderSource } from './bearer-header.js';
import { TokenIssuers } from './token-issuers.service.js';
import { TokenPolicyRegistry, type RouteTokenPolicy } from './token-policy.registry.js';
import { attachVerifiedToken } from './token-request.js';

const HEADER_MESSAGES: Readonly<Record<BearerProblem, string>> = {
  missing: 'no bearer token in the Authorization header',
  scheme: 'the Authorization header does not use the Bearer scheme',
  duplicate_header: 'more than one Authorization header',
  too_large: 'the Authorization header is larger than 16 KiB',
  malformed: 'the bearer token is not three base64url parts',
};

/**
 * The second global guard: on routes with `@RequireToken`, verifies the request's bearer token after `MtlsGuard`
 * has admitted the peer (Nest runs global guards in order, and a denied peer never reaches this one), so a token
 * never replaces the peer rule: both must pass. Hands the verified token to `@Token()`.
 */
@Injectable()
export class MtlsTokenGuard implements CanActivate {
  readonly #logger = new Logger('MtlsTokens');
  readonly #limiter: LogRateLimiter;

  constructor(
    private readonly policies: TokenPolicyRegistry,
    private readonly issuers: TokenIssuers,
    private readonly events: MtlsEvents,
    private readonly adapterHost: HttpAdapterHost,
    @Inject(MTLS_OPTIONS) options: ResolvedMtlsOptions,
  ) {
    this.#limiter = new LogRateLimiter(options.logRateLimitPerMinute);
  }

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const policy = this.policies.policyFor(context.getHandler() as never, context.getClass());
    if (policy === null) return true;
    return this.#check(context, policy);
  }

  async #check(context: ExecutionContext, policy: NonNullable<RouteTokenPolicy>): Promise<boolean> {
    const request = requestOf(context) as (HeaderSource & { socket?: unknown }) | undefined;
    const peer = request === undefined ? undefined : peerOfRequest(request);
    if (request === undefined || peer === undefined) {
      // Only reachable when MtlsGuard let a request through without a peer (nonHttpContexts: 'allow'): fail closed.
      throw toHttpException(new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', 'a token route needs an admitted mTLS peer'));
    }
    const header = bearerToken(request);
    if ('problem' in header) {
      const code =
        header.problem === 'missing' || header.problem === 'scheme' ? 'ERR_MTLS_TOKEN_MISSING' : 'ERR_MTLS_TOKEN_INVALID';
      return this.#deny(
        context,
        policy,
        peer.spiffeId ?? peer.subject,
        new TokenError(
          code,
          HEADER_MESSAGES[header.problem],
          { issuer: policy.issuer, reason: header.problem },
          header.problem !== 'missing',
        ),
      );
    }
    // The registry refused unknown issuer names at startup.
    const verdict = await this.issuers.verifier(policy.issuer)!.verify(header.token, peer, policy);
    if (verdict instanceof TokenError) return this.#deny(context, policy, peer.spiffeId ?? peer.subject, verdict);
    attachVerifiedToken(request, verdict);
    return true;
  }

  #deny(context: ExecutionContext, policy: NonNullable<RouteTokenPolicy>, peer: string, error: TokenError): never {
    this.events.emit({
      type: 'token.rejected',
      issuer: error.issuer,
      code: error.code,
      reason: error.reason,
      route: policy.route,
      peer,
      kid: error.kid,
      sub: error.sub,
    });
    const suppressed = this.#limiter.admit();
    if (suppressed !== undefined) {
      const more = suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : '';
      const kid = error.kid === undefined ? '' : ` kid ${error.kid}`;
      const sub = error.sub === undefined ? '' : ` sub ${error.sub}`;
      this.#logger.warn(
        `${error.code} on ${policy.route}: peer ${peer}, issuer ${error.issuer}${kid}${sub}: ${error.reason}: ${error.message}${more}`,
      );
    }
    const exception = toHttpException(error);
    if (context.getType() === 'http') {
      const response = context.switchToHttp().getResponse<unknown>();
      for (const [name, value] of Object.entries(exception.headers))
        this.adapterHost.httpAdapter.setHeader(response, name, value);
    }
    throw exception;
  }
}
