import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { CredentialStore } from '../credentials/credential-store.js';
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
import { ClientGenerations } from './client-generation.js';
import { notSent, sendRequest } from './client-request.js';
import { MtlsDispatcher } from './mtls-dispatcher.js';
import { MtlsHttpsAgent } from './mtls-https-agent.js';
import type { UpstreamExpectation } from './upstream-identity.js';
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
export class MtlsHttpClient implements OnApplicationShutdown {
  readonly #generations: ClientGenerations;
  readonly #registry: UpstreamRegistry;
  readonly #timeoutMs: number;
  readonly #connections: number;
  readonly #upstreams = new Map<string, MtlsUpstreamClient>();
  readonly #agents = new Set<MtlsHttpsAgent>();
  #closing: Promise<void> | undefined;

  constructor(@Inject(MTLS_OPTIONS) options: ResolvedMtlsOptions, @Inject(MTLS_CLIENT_CREDENTIALS) store: CredentialStore) {
    const { upstreams, connectionsPerOrigin, timeoutMs } = options.client;
    this.#timeoutMs = timeoutMs;
    this.#connections = connectionsPerOrigin;
    // Named upstreams are compiled now: a typo in their expectPeer fails at startup, not on the first call.
    this.#registry = new UpstreamRegistry(upstreams, options.namedPeers);
    this.#generations = new ClientGenerations(store, options.tls, {
      connections: connectionsPerOrigin,
      timeoutMs,
      drainTimeoutMs: timeoutMs,
    });
  }

  /** Sends a request to an https:// URL and collects the response. */
  request<T = unknown>(method: HttpMethod, url: string | URL, options?: MtlsRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send(method, url, options, options?.body);
  }

  /** GET `url`. */
  get<T = unknown>(url: string | URL, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('GET', url, options, undefined);
  }

  /** DELETE `url`. */
  delete<T = unknown>(url: string | URL, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('DELETE', url, options, undefined);
  }

  /** HEAD `url`; the response's body is empty. */
  head(url: string | URL, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<undefined>> {
    return this.#send('HEAD', url, options, undefined);
  }

  /** POST `body` (JSON unless a string or bytes) to `url`. */
  post<T = unknown>(url: string | URL, body?: unknown, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('POST', url, options, body);
  }

  /** PUT `body` (JSON unless a string or bytes) to `url`. */
  put<T = unknown>(url: string | URL, body?: unknown, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('PUT', url, options, body);
  }

  /** PATCH `body` (JSON unless a string or bytes) to `url`. */
  patch<T = unknown>(url: string | URL, body?: unknown, options?: MtlsBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('PATCH', url, options, body);
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
      client = new MtlsUpstreamClient(this.#registry.upstream(name), this.#generations, this.#timeoutMs);
      this.#upstreams.set(name, client);
    }
    return client;
  }

  /**
   * An undici Dispatcher on this client's connections, for `fetch(url, { dispatcher })` (undici's or Node's global
   * one); it follows credential rotation. An identity mismatch rejects with `TypeError('fetch failed')` whose `cause`
   * is the `UpstreamError`.
   */
  dispatcher(options: MtlsConnectionOptions = {}): MtlsDispatcher {
    return new MtlsDispatcher(this.#generations, this.#registry, this.#fixedExpectation(options));
  }

  /** An `https.Agent` for `node:https` and `@nestjs/axios` (`httpsAgent`), fed from the same credentials. */
  httpsAgent(options: MtlsConnectionOptions = {}): MtlsHttpsAgent {
    const agent = new MtlsHttpsAgent(
      this.#generations,
      this.#registry,
      this.#fixedExpectation(options),
      this.#connections,
    );
    this.#agents.add(agent);
    return agent;
  }

  /** Closes every connection: in-flight requests finish (within `client.timeoutMs`), then the rest is destroyed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const agent of this.#agents) agent.shutdown();
      await this.#generations.close();
    })();
    return this.#closing;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  #fixedExpectation(options: MtlsConnectionOptions): UpstreamExpectation | undefined {
    return options.expectPeer === undefined ? undefined : this.#registry.compile(options.expectPeer);
  }

  #send<T>(
    method: HttpMethod,
    url: string | URL,
    options: MtlsRequestOptions | undefined,
    body: unknown,
  ): Promise<MtlsResponse<T>> {
    let target: URL;
    try {
      target = typeof url === 'string' ? new URL(url) : url;
    } catch (error) {
      return Promise.reject(notSent(method, '', JSON.stringify(url), 'not a URL', undefined, error));
    }
    const { origin } = target;
    const path = `${target.pathname}${target.search}`;
    if (target.protocol !== 'https:') {
      return Promise.reject(notSent(method, path, origin, 'only https:// URLs are supported'));
    }
    const generation = this.#generations.current;
    if (generation === undefined) return Promise.reject(notSent(method, path, this.#registry.label(origin), CLOSED));
    let expectation: UpstreamExpectation;
    try {
      expectation = this.#registry.expectation(options?.expectPeer, origin);
    } catch (error) {
      // An unknown named peer or a malformed SPIFFE ID: a configuration error, reported as such.
      return Promise.reject(error);
    }
    const route = generation.pool(origin, expectation, this.#registry.label(origin));
    return sendRequest(route, method, path, options, body, this.#timeoutMs);
  }
}

/**
 * A client bound to one named upstream: paths instead of URLs, and the identity its configuration expects.
 * Get one from {@link MtlsHttpClient.upstream}.
 */
export class MtlsUpstreamClient {
  /** @internal */
  constructor(
    private readonly target: NamedUpstream,
    private readonly generations: ClientGenerations,
    private readonly timeoutMs: number,
  ) {}

  /** The upstream's name. */
  get name(): string {
    return this.target.name;
  }

  /** Sends a request to `path` (starting with `/`) on the upstream and collects the response. */
  request<T = unknown>(method: HttpMethod, path: string, options?: MtlsUpstreamRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send(method, path, options, options?.body);
  }

  /** GET `path`. */
  get<T = unknown>(path: string, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('GET', path, options, undefined);
  }

  /** DELETE `path`. */
  delete<T = unknown>(path: string, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('DELETE', path, options, undefined);
  }

  /** HEAD `path`; the response's body is empty. */
  head(path: string, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<undefined>> {
    return this.#send('HEAD', path, options, undefined);
  }

  /** POST `body` (JSON unless a string or bytes) to `path`. */
  post<T = unknown>(path: string, body?: unknown, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('POST', path, options, body);
  }

  /** PUT `body` (JSON unless a string or bytes) to `path`. */
  put<T = unknown>(path: string, body?: unknown, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('PUT', path, options, body);
  }

  /** PATCH `body` (JSON unless a string or bytes) to `path`. */
  patch<T = unknown>(path: string, body?: unknown, options?: MtlsUpstreamBodyRequestOptions): Promise<MtlsResponse<T>> {
    return this.#send('PATCH', path, options, body);
  }

  #send<T>(
    method: HttpMethod,
    path: string,
    options: MtlsUpstreamRequestOptions | undefined,
    body: unknown,
  ): Promise<MtlsResponse<T>> {
    const { name, origin, basePath, expectation } = this.target;
    if (typeof path !== 'string' || !path.startsWith('/')) {
      const reason = `the path must start with "/", got ${JSON.stringify(path)}`;
      return Promise.reject(notSent(method, '', name, reason, expectation.description));
    }
    const generation = this.generations.current;
    if (generation === undefined) return Promise.reject(notSent(method, path, name, CLOSED, expectation.description));
    // The configured expectation always applies: sendRequest never reads a per-call expectPeer.
    const route = generation.pool(origin, expectation, name);
    return sendRequest(route, method, basePath === '' ? path : basePath + path, options, body, this.timeoutMs);
  }
}

const CLOSED = 'the mTLS client is closed';
