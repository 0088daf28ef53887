import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { authorizeAny, authorizeNone, type Authorizer } from '../authorization/authorizer.js';
import { compileRule, type PeerRule } from '../authorization/peer-rule.js';
import { describeDefaultPolicy, describePeerRule } from '../authorization/rule-description.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS, MTLS_PEER_RULE } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { formatRouteTable, routesOf, type RouteTableRow } from './route-table.js';

/** A route's compiled rule. */
export interface RoutePolicy {
  /** `Controller.method`: a stable, low-cardinality label for logs and metrics. */
  readonly route: string;
  readonly authorizer: Authorizer;
  /** The rule as its decorator was written (`@AllowPeers(orders)`), or the default policy: for logs. */
  readonly rule: string;
}

type Handler = (...args: unknown[]) => unknown;
/** A controller class, typed as Nest's Reflector takes it (`ExecutionContext#getClass()` gives the same). */
type Controller = Parameters<Reflector['getAllAndOverride']>[1][number];

/**
 * Compiles every route's peer rule once, at startup: a rule that names an undeclared peer fails the application
 * before it listens, naming the route. The guard then does one Map lookup per request.
 */
@Injectable()
export class PeerPolicyRegistry implements OnModuleInit {
  // Keyed by controller first: a method inherited by two controllers has one function but two rules.
  readonly #byController = new WeakMap<Controller, Map<Handler, RoutePolicy>>();
  readonly #compiled = new WeakMap<PeerRule, Authorizer>();
  readonly #defaultAuthorizer: Authorizer;
  readonly #defaultRule: string;
  readonly #logger = new Logger('MtlsModule');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
  ) {
    this.#defaultAuthorizer =
      options.defaultPolicy === 'any-peer'
        ? authorizeAny()
        : authorizeNone('the route has no @Allow… rule and the default policy denies');
    this.#defaultRule = describeDefaultPolicy(options.defaultPolicy);
  }

  /** Compiles every route's rule, then logs one table of routes and rules. */
  onModuleInit(): void {
    const rows: RouteTableRow[] = [];
    for (const wrapper of this.discovery.getControllers()) {
      const { instance, metatype } = wrapper;
      if (!instance || typeof metatype !== 'function') continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[name];
        if (typeof handler !== 'function') continue;
        const policy = this.policyFor(handler as Handler, metatype);
        for (const route of routesOf(metatype, handler)) rows.push({ route, handler: policy.route, rule: policy.rule });
      }
    }
    const { mode, defaultPolicy, namedPeers } = this.options;
    this.#logger.log(formatRouteTable(rows, { mode, defaultPolicy, namedPeers }));
  }

  /** The policy of a controller's handler; compiled on first use for handlers discovery did not see. */
  policyFor(handler: Handler, controller: Controller): RoutePolicy {
    let handlers = this.#byController.get(controller);
    if (handlers === undefined) {
      handlers = new Map();
      this.#byController.set(controller, handlers);
    }
    let policy = handlers.get(handler);
    if (policy === undefined) {
      const route = `${controller.name}.${handler.name}`;
      const rule = this.reflector.getAllAndOverride<PeerRule | undefined>(MTLS_PEER_RULE, [handler, controller]);
      policy =
        rule === undefined
          ? { route, authorizer: this.#defaultAuthorizer, rule: this.#defaultRule }
          : { route, authorizer: this.#compile(rule, route), rule: describePeerRule(rule) };
      handlers.set(handler, policy);
    }
    return policy;
  }

  #compile(rule: PeerRule, route: string): Authorizer {
    const cached = this.#compiled.get(rule);
    if (cached !== undefined) return cached;
    let authorizer: Authorizer;
    try {
      authorizer = compileRule(rule, this.options.namedPeers);
    } catch (error) {
      if (error instanceof MtlsConfigError) {
        // The same error with the route in front; its cause would only repeat the message in an uncaught report.
        throw new MtlsConfigError(error.code, `${route}: ${error.message}`);
      }
      throw error;
    }
    this.#compiled.set(rule, authorizer);
    return authorizer;
  }
}
