import { Inject, Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { PeerError } from '../errors/mtls.errors.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { clipped, printable } from '../format/describe-value.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import { MtlsEvents } from '../observability/mtls-events.js';
import { toHttpException } from './mtls-http-errors.js';
import { attachPeer, requestOf } from './peer-request.js';
import { PeerIdentitySource } from './peer-identity.source.js';
import { PeerPolicyRegistry, type RoutePolicy } from './peer-policy.registry.js';

/**
 * Admits a request only when its TLS peer satisfies the route's rule (deny by default), then hands the
 * peer to the handler. Registered globally by `MtlsModule`. Reads only the request's TLS connection
 * ({@link connectionOf}: `request.socket`, or the HTTP/2 session's socket), so it does not depend on the HTTP adapter. Handlers of other transports
 * (microservices, websockets) are denied unless `nonHttpContexts: 'allow'`: they are not served by the mTLS server.
 */
@Injectable()
export class MtlsGuard implements CanActivate {
  readonly #logger = new Logger('MtlsGuard');
  readonly #denials: RateLimitedLogger;

  constructor(
    private readonly policies: PeerPolicyRegistry,
    private readonly identities: PeerIdentitySource,
    private readonly events: MtlsEvents,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
  ) {
    this.#denials = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
  }

  canActivate(context: ExecutionContext): boolean {
    const request = requestOf(context);
    if (request === undefined && this.options.nonHttpContexts === 'allow') return true;
    const policy = this.policies.policyFor(context.getHandler() as never, context.getClass());
    if (request === undefined) {
      const reason = `a ${context.getType()} handler carries no TLS connection to authenticate (option nonHttpContexts)`;
      return this.#deny(new PeerError('ERR_MTLS_PEER_UNAUTHENTICATED', reason), policy, undefined);
    }
    const peer = this.identities.identify(request);
    if (peer instanceof PeerError) return this.#deny(peer, policy, undefined);
    const reason = policy.authorizer(peer);
    if (reason !== undefined) {
      return this.#deny(new PeerError('ERR_MTLS_PEER_DENIED', reason, policy.rule), policy, peer);
    }
    attachPeer(request, peer, this.identities.scope);
    return true;
  }

  #deny(error: PeerError, policy: RoutePolicy, peer: PeerIdentity | undefined): never {
    const who = peer === undefined ? undefined : (peer.spiffeId ?? peer.subject);
    this.events.emit({ type: 'peer.denied', code: error.code, route: policy.route, peer: who });
    this.#denials.warn(() => {
      const rule = error.rule ?? policy.rule;
      return `${error.code} on ${policy.route}: peer ${who === undefined ? '(unauthenticated)' : shownPeer(who)}: ${error.message}; rule: ${rule}`;
    });
    throw toHttpException(error);
  }
}

/** Most characters of a peer's name in a denial line: a legacy subject (or a proxy's text `Subject`) can be long. */
const MAX_SHOWN_PEER = 256;

/** A peer's name for a log line: control characters escaped, clipped. */
function shownPeer(name: string): string {
  const shown = printable(clipped(name, MAX_SHOWN_PEER));
  return name.length > MAX_SHOWN_PEER ? `${shown} (${name.length} characters)` : shown;
}
