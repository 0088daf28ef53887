import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { MTLS_TOKEN_REQUIREMENT, type TokenRequirementMetadata } from './token.decorators.js';

type Handler = (...args: unknown[]) => unknown;
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- Nest's ExecutionContext#getClass() type
type Controller = Function;

/** A route's token requirement, or null for a route without `@RequireToken`. */
export type RouteTokenPolicy = (TokenRequirementMetadata & { readonly route: string }) | null;

/**
 * Reads every route's `@RequireToken` once, at startup: a name that is not an issuer of option `tokens.issuers`
 * fails the application before it listens, naming the route. The guard then does one Map lookup per request.
 */
@Injectable()
export class TokenPolicyRegistry implements OnModuleInit {
  readonly #byController = new WeakMap<Controller, Map<Handler, RouteTokenPolicy>>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const { instance, metatype } = wrapper;
      if (!instance || typeof metatype !== 'function') continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler === 'function') this.policyFor(handler as Handler, metatype);
      }
    }
  }

  /** The token policy of a handler; read on first use for handlers discovery did not see. */
  policyFor(handler: Handler, controller: Controller): RouteTokenPolicy {
    let handlers = this.#byController.get(controller);
    if (handlers === undefined) this.#byController.set(controller, (handlers = new Map()));
    let policy = handlers.get(handler);
    if (policy === undefined) {
      const route = `${controller.name}.${handler.name}`;
      const metadata = this.reflector.getAllAndOverride<TokenRequirementMetadata | undefined>(MTLS_TOKEN_REQUIREMENT, [
        handler,
        controller,
      ]);
      if (metadata !== undefined && !this.options.tokens.issuers.has(metadata.issuer)) {
        const known = [...this.options.tokens.issuers.keys()];
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `${route}: @RequireToken('${metadata.issuer}') names no issuer of MtlsModule option "tokens.issuers"` +
            (known.length === 0 ? ' (none is configured)' : `; configured: ${known.join(', ')}`),
        );
      }
      policy = metadata === undefined ? null : { ...metadata, route };
      handlers.set(handler, policy);
    }
    return policy;
  }
}
