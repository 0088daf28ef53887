import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { CredentialStore } from '../credentials/credential-store.js';
import { MtlsConfigError, MtlsError, UpstreamError } from '../errors/mtls.errors.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import type {
  HttpMethod,
  MtlsBodyRequestOptions,
  MtlsConnectionOptions,
  MtlsRequestOptions,
  MtlsResponse,
  MtlsUpstreamBodyRequestOptions,
  MtlsUpstreamRequestOptions,
} from './client.interfaces.js';
import { HttpVerbs } from './http-verbs.js';
import { tokenSourceProblem, withBearerToken, type BearerTokenSource } from './bearer-token.js';
import { ClientGenerations, MAX_POOLS_PER_GENERATION } from './client-generation.js';
import { describeRequest, notSent, sendRequest, type RequestDefaults } from './client-request.js';
import { MtlsDispatcher } from './mtls-dispatcher.js';
import { MtlsHttpsAgent } from './mtls-https-agent.js';
import { invalidArgument, methodProblem, optionsProblem, pathProblem, toTarget } from './request-arguments.js';
import type { UpstreamExpectation } from './upstream-identity.js';
import { describeValue } from '../format/describe-value.js';
import { UpstreamRegistry, type NamedUpstream } from './upstream-registry.js';

/**
 * Outbound HTTPS with mutual TLS: presents the service's client certificate, trusts only the configured CA bundle,
 * and checks the server's identity (SPIFFE ID or host name) during the handshake, before any request byte is sent.
 * Built on undici pools with keep-alive and TLS session resumption. Non-2xx answers are responses; failures reject
 * with `UpstreamError`. Usable without Nest: `new MtlsHttpClient(resolveMtlsOptions(...), store)`.
 * @example
 * ```ts
 * const { body } = await this.http.get<Stock>('https://inventory:8443/stock/42', { expectPeer: 'inventory' });
 * ```
 */
@Injectable()
export class MtlsHttpClient extends HttpVerbs<string | URL, MtlsRequestOptions> implements OnApplicationShutdown {
  readonly #generations: ClientGenerations;
  readonly #registry: UpstreamRegistry;
  readonly #defaults: RequestDefaults;
  readonly #connections: number;
  readonly #upstreams = new Map<string, MtlsUpstreamClient>();
  readonly #upstreamTokens = new Map<string, BearerTokenSource>();
  /** Weak: an agent a caller dropped must not be kept alive by the client (one per request would leak). */
  readonly #agents = new Set<WeakRef<MtlsHttpsAgent>>();
  readonly #forgetAgent = new FinalizationRegistry<WeakRef<MtlsHttpsAgent>>((ref) => this.#agents.delete(ref));
  #closing: Promise<void> | undefined;

  constructor(@Inject(MTLS_OPTIONS) options: ResolvedMtlsOptions, @Inject(MTLS_CLIENT_CREDENTIALS) store: CredentialStore) {
    super();
    const { upstreams, connectionsPerOrigin, timeoutMs } = options.client;
    this.#defaults = { timeoutMs, maxResponseBytes: options.client.maxResponseBytes };
    this.#connections = connectionsPerOrigin;
    // Named upstreams are compiled now: a typo in their expectPeer fails at startup, not on the first call.
    this.#registry = new UpstreamRegistry(upstreams, options.namedPeers);
    for (const [name, upstream] of upstreams) {
      if (upstream.token === undefined) continue;
      const problem = tokenSourceProblem(upstream.token);
      if (problem !== undefined) {
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `MtlsModule option "client.upstreams.${name}.token": ${problem.replace('options.token ', '')}`,
        );
      }
      this.#upstreamTokens.set(name, upstream.token);
    }
    this.#generations = new ClientGenerations(store, options.tls, {
      connections: connectionsPerOrigin,
      timeoutMs,
      drainTimeoutMs: timeoutMs,
      maxPools: MAX_POOLS_PER_GENERATION,
      http2: options.client.http2,
    });
    this.#generations.onRotate(() => {
      for (const ref of this.#agents) ref.deref()?.retireIdle();
    });
  }

  /**
   * A client bound to the named upstream of `client.upstreams`: its origin, path prefix and expected identity.
   * Throws MtlsConfigError for a name that is not configured.
   * @example
   * ```ts
   * const inventory = this.http.upstream('inventory');
   * const { body } = await inventory.get<Stock>('/stock/42');
   * ```
   */
  upstream(name: string): MtlsUpstreamClient {
    let client = this.#upstreams.get(name);
    if (client === undefined) {
      client = new MtlsUpstreamClient(
        this.#registry.upstream(name),
        this.#generations,
        this.#defaults,
        this.#upstreamTokens.get(name),
      );
      this.#upstreams.set(name, client);
    }
    return client;
  }

  /**
   * An undici Dispatcher on this client's connections, for `fetch(url, { dispatcher })` (undici's or Node's global
   * one); it follows credential rotation. An identity mismatch rejects with `TypeError('fetch failed')` whose `cause`
   * is the `UpstreamError`. Throws MtlsConfigError for a bad `expectPeer`.
   */
  dispatcher(options: MtlsConnectionOptions = {}): MtlsDispatcher {
    return new MtlsDispatcher(this.#generations, this.#registry, this.#fixedExpectation('dispatcher', options));
  }

  /**
   * An `https.Agent` for `node:https` and `@nestjs/axios` (`httpsAgent`), fed from the same credentials.
   * Throws MtlsConfigError for a bad `expectPeer`. Build one per expectation and reuse it: each has its own sockets.
   */
  httpsAgent(options: MtlsConnectionOptions = {}): MtlsHttpsAgent {
    const agent = new MtlsHttpsAgent(
      this.#generations,
      this.#registry,
      this.#fixedExpectation('httpsAgent', options),
      this.#connections,
    );
    const ref = new WeakRef(agent);
    this.#agents.add(ref);
    this.#forgetAgent.register(agent, ref);
    return agent;
  }

  /** Closes every connection: in-flight requests finish (within `client.timeoutMs`), then the rest is destroyed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const ref of this.#agents) ref.deref()?.shutdown();
      await this.#generations.close();
    })();
    return this.#closing;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  #fixedExpectation(factory: string, options: MtlsConnectionOptions): UpstreamExpectation | undefined {
    if (typeof options !== 'object' || options === null) {
      throw new MtlsConfigError(
        'ERR_MTLS_INVALID_ARGUMENT',
        `MtlsHttpClient.${factory}(): options must be an object; got ${describeValue(options)}`,
      );
    }
    if (options.expectPeer === undefined) return undefined;
    try {
      return this.#registry.compile(options.expectPeer);
    } catch (error) {
      throw expectPeerError(`MtlsHttpClient.${factory}()`, error, '');
    }
  }

  /** @internal */
  protected override send<T>(
    method: HttpMethod,
    url: string | URL,
    options: MtlsBodyRequestOptions | undefined,
    body: unknown,
  ): Promise<MtlsResponse<T>> {
    const badMethod = methodProblem(method);
    if (badMethod !== undefined) return Promise.reject(invalidArgument('MtlsHttpClient.request()', badMethod));
    const target = toTarget(url);
    if (!(target instanceof URL)) return Promise.reject(invalidArgument(method, target.problem));
    const { origin } = target;
    const path = `${target.pathname}${target.search}`;
    const upstream = this.#registry.label(origin);
    const badOptions = optionsProblem(options, false);
    if (badOptions !== undefined) {
      return Promise.reject(invalidArgument(`${describeRequest(method, path)} to upstream ${upstream}`, badOptions));
    }
    if (options?.token !== undefined) {
      const { token, ...rest } = options;
      return withBearerToken(rest, token, `${describeRequest(method, path)} to upstream ${upstream}`).then((withToken) =>
        this.send<T>(method, target, withToken, body),
      );
    }
    const generation = this.#generations.current;
    if (generation === undefined) return Promise.reject(notSent(method, path, upstream, CLOSED));
    try {
      const call = `${describeRequest(method, path)} to upstream ${upstream}`;
      const expectPeer = options?.expectPeer;
      let expectation: UpstreamExpectation;
      if (expectPeer === undefined) {
        // The named upstream's expectation, or a refusal: never the URL's host name by default.
        expectation = this.#registry.expectation(undefined, origin, call);
      } else {
        try {
          expectation = this.#registry.compile(expectPeer);
        } catch (error) {
          // An unknown named peer or a malformed SPIFFE ID: a configuration error, reported as such.
          throw expectPeerError(call, error, '; nothing was sent');
        }
      }
      const route = generation.pool(origin, expectation, upstream);
      return sendRequest(route, method, path, options, body, this.#defaults);
    } catch (error) {
      return Promise.reject(unexpected(error, method, path, upstream));
    }
  }
}

/**
 * A client bound to one named upstream: paths instead of URLs, and the identity its configuration expects.
 * Get one from {@link MtlsHttpClient.upstream}.
 */
export class MtlsUpstreamClient extends HttpVerbs<string, MtlsUpstreamRequestOptions> {
  /** @internal */
  constructor(
    private readonly target: NamedUpstream,
    private readonly generations: ClientGenerations,
    private readonly defaults: RequestDefaults,
    private readonly token?: BearerTokenSource,
  ) {
    super();
  }

  /** The upstream's name. */
  get name(): string {
    return this.target.name;
  }

  /** @internal */
  protected override send<T>(
    method: HttpMethod,
    path: string,
    options: MtlsUpstreamBodyRequestOptions | undefined,
    body: unknown,
    tokenResolved = false,
  ): Promise<MtlsResponse<T>> {
    const { name, origin, basePath, expectation } = this.target;
    const badMethod = methodProblem(method);
    if (badMethod !== undefined) return Promise.reject(invalidArgument(`request to upstream ${name}`, badMethod));
    const badPath = pathProblem(path);
    if (badPath !== undefined) return Promise.reject(invalidArgument(`${method} to upstream ${name}`, badPath));
    // Refuses a per-call expectPeer: the configured expectation always applies.
    const badOptions = optionsProblem(options, true);
    if (badOptions !== undefined) {
      return Promise.reject(invalidArgument(`${describeRequest(method, path)} to upstream ${name}`, badOptions));
    }
    const token = options?.token ?? this.token;
    if (token !== undefined && !tokenResolved) {
      const { token: _token, ...rest } = options ?? {};
      // Resolved first, then sent as a call without `token`: the header reaches this upstream's origin only.
      return withBearerToken(rest, token, `${describeRequest(method, path)} to upstream ${name}`).then((withToken) =>
        this.send<T>(method, path, withToken, body, true),
      );
    }
    const generation = this.generations.current;
    if (generation === undefined) return Promise.reject(notSent(method, path, name, CLOSED, expectation.description));
    try {
      const route = generation.pool(origin, expectation, name);
      return sendRequest(route, method, basePath === '' ? path : basePath + path, options, body, this.defaults);
    } catch (error) {
      return Promise.reject(unexpected(error, method, path, name));
    }
  }
}

const CLOSED = 'the mTLS client is closed';

/**
 * An expectPeer argument that does not compile, named in the error of the call or factory that received it: an
 * unknown peer name keeps its code, anything else is a bad argument.
 */
function expectPeerError(call: string, error: unknown, suffix: string): MtlsConfigError {
  const code =
    error instanceof MtlsConfigError && error.code === 'ERR_MTLS_UNKNOWN_PEER' ? error.code : 'ERR_MTLS_INVALID_ARGUMENT';
  const reason = error instanceof Error ? error.message : String(error);
  return new MtlsConfigError(code, `${call}: options.expectPeer: ${reason}${suffix}`, { cause: error });
}

/** Whatever a call threw: typed errors as they are, anything else wrapped, so that callers only ever see MtlsErrors. */
function unexpected(error: unknown, method: string, path: string, upstream: string): MtlsError {
  if (error instanceof MtlsError) return error;
  return new UpstreamError(
    'ERR_MTLS_UPSTREAM_REQUEST',
    `${describeRequest(method, path)} to upstream ${upstream}: ${error instanceof Error ? error.message : String(error)}`,
    { upstream },
    { cause: error },
  );
}
