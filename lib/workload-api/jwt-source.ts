import { Logger } from '@nestjs/common';
import { WorkloadApiError } from '../errors/mtls.errors.js';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.js';
import type { InstallLogger } from '../credentials/credentials-installer.js';
import type { BackoffOptions } from './workload-api.backoff.js';
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidResponse,
  encodeEmpty,
  encodeJwtSvidRequest,
  WORKLOAD_API_METHODS,
} from './workload-api.codec.js';
import { resolveWorkloadApiEndpoint, type WorkloadApiEndpoint } from './workload-api.endpoint.js';
import { GrpcStatus, openWorkloadApiTransport, type WorkloadApiTransport } from './workload-api.transport.js';
import { StreamWatcher } from './workload-api.watcher.js';
import { describeCallEnd } from './x509-source.js';

/** A JSON Web Key as a SPIFFE JWT bundle holds it (public keys only). */
export type JwtBundleKey = Readonly<Record<string, unknown>> & { readonly kty: string; readonly kid?: string };

/** A trust domain's JWT bundle as a JWKS, ready for `jose.createLocalJWKSet`. */
export interface JwtBundle {
  readonly keys: readonly JwtBundleKey[];
}

/** Options of {@link WorkloadJwtSource.connect}. */
export interface WorkloadJwtSourceOptions {
  /** @default `SPIFFE_ENDPOINT_SOCKET` */
  readonly socket?: string;
  /** The SPIFFE ID to request JWT-SVIDs for when the workload has several. @default the first the agent returns */
  readonly spiffeId?: string;
  /** Deadline of one `FetchJWTSVID` call, and of the wait for the first JWT bundles. @default 10_000 */
  readonly timeoutMs?: number;
  readonly backoff?: BackoffOptions;
  readonly logger?: InstallLogger;
}

interface CachedSvid {
  readonly token: string;
  /** Half the token's lifetime: after this, fetch a fresh one. */
  readonly refreshAt: number;
  readonly expiresAt: number;
}

// A JWKS larger than this is not a trust bundle; refusing it bounds what one message can make us hold.
const MAX_BUNDLE_BYTES = 1024 * 1024;
const MAX_CACHED_AUDIENCES = 256;

/** Reads `exp` and `iat` (seconds) of a compact JWS without trusting it: only to decide when to fetch again. */
function lifetimeOf(token: string, fetchedAt: number): { refreshAt: number; expiresAt: number } | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown; iat?: unknown };
    if (typeof claims.exp !== 'number') return undefined;
    const expiresAt = claims.exp * 1000;
    const issuedAt = typeof claims.iat === 'number' ? Math.min(claims.iat * 1000, fetchedAt) : fetchedAt;
    return { expiresAt, refreshAt: issuedAt + (expiresAt - issuedAt) / 2 };
  } catch {
    return undefined;
  }
}

/**
 * JWT-SVIDs and JWT bundles from the SPIFFE Workload API, for the token layer. `jwtSvid(audience)` returns a JWT-SVID
 * for that audience, cached until half its lifetime (`FetchJWTSVID` is a round trip to the agent and a signature);
 * `jwtBundleFor(trustDomain)` returns that trust domain's JWT bundle as a JWKS, kept current by the `FetchJWTBundles`
 * stream (which reconnects with backoff, like the X.509 one). Plain class: no Nest needed.
 * @example
 * ```ts
 * const jwt = await WorkloadJwtSource.connect();
 * await http.get('https://billing.partner.test/invoices', { token: () => jwt.jwtSvid('spiffe://partner.test/billing') });
 * ```
 */
export class WorkloadJwtSource {
  readonly #transport: WorkloadApiTransport;
  readonly #options: WorkloadJwtSourceOptions;
  readonly #logger: InstallLogger;
  readonly #cache = new Map<string, CachedSvid>();
  readonly #inFlight = new Map<string, Promise<string>>();
  readonly #bundleWatcher: StreamWatcher;
  #bundles: ReadonlyMap<string, JwtBundle> | undefined;
  #bundleProblem: string | undefined;
  readonly #bundleWaiters = new Set<() => void>();
  #closed = false;

  private constructor(transport: WorkloadApiTransport, options: WorkloadJwtSourceOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#logger = options.logger ?? new Logger('MtlsWorkloadApi');
    this.#bundleWatcher = new StreamWatcher({
      transport,
      method: WORKLOAD_API_METHODS.fetchJwtBundles,
      request: encodeEmpty(),
      onMessage: (message) => this.#onBundles(message),
      onRetry: (end) => {
        this.#bundleProblem = describeCallEnd(end);
      },
      onFatal: (end) => {
        this.#bundleProblem = describeCallEnd(end);
        this.#logger.error(
          `JWT bundles: the Workload API ${this.endpoint} refused the request (${this.#bundleProblem}); not retrying`,
        );
        this.#wakeBundleWaiters();
      },
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    });
  }

  /** Opens a channel to the agent (loading `@grpc/grpc-js` on first use) and starts watching the JWT bundles. */
  static async connect(options: WorkloadJwtSourceOptions = {}): Promise<WorkloadJwtSource> {
    const endpoint: WorkloadApiEndpoint = resolveWorkloadApiEndpoint(options.socket, 'WorkloadJwtSource');
    if (options.spiffeId !== undefined) parseSpiffeId(options.spiffeId);
    const source = new WorkloadJwtSource(await openWorkloadApiTransport(endpoint), options);
    source.#bundleWatcher.start();
    return source;
  }

  /** The endpoint, as configured. */
  get endpoint(): string {
    return this.#transport.endpoint.address;
  }

  /**
   * A JWT-SVID for `audience` (one or several), from the cache while it is younger than half its lifetime, else
   * fetched. Usable as a bearer token function. Rejects with a WorkloadApiError naming the endpoint.
   */
  jwtSvid(audience: string | readonly string[]): Promise<string> {
    const audiences = [...new Set(typeof audience === 'string' ? [audience] : audience)].sort();
    if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a === '')) {
      return Promise.reject(new TypeError('WorkloadJwtSource.jwtSvid: pass at least one non-empty audience'));
    }
    const key = JSON.stringify(audiences);
    const cached = this.#cache.get(key);
    const now = Date.now();
    if (cached !== undefined && now < cached.refreshAt) return Promise.resolve(cached.token);
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      pending = this.#fetch(audiences, key, cached).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  /** A token function for one audience: `token: jwt.tokenFor('spiffe://partner.test/billing')`. */
  tokenFor(audience: string | readonly string[]): () => Promise<string> {
    return () => this.jwtSvid(audience);
  }

  /**
   * The JWT bundle of `trustDomain` (a name or `spiffe://name`) as a JWKS, or undefined when the agent has none for
   * it. Waits for the first bundles message (up to `timeoutMs`). Keys marked `use: "jwt-svid"` are given without
   * `use`, since JOSE libraries skip keys whose `use` is not `sig`; keys of another use (`x509-svid`) are left out.
   */
  async jwtBundleFor(trustDomain: string): Promise<JwtBundle | undefined> {
    const name = parseTrustDomain(trustDomain);
    if (this.#bundles === undefined) await this.#waitForBundles();
    return this.#bundles?.get(name);
  }

  /** Every trust domain's JWT bundle, by name, as {@link jwtBundleFor} gives them; waits for the first bundles like it. */
  async jwtBundles(): Promise<ReadonlyMap<string, JwtBundle>> {
    if (this.#bundles === undefined) await this.#waitForBundles();
    return this.#bundles!;
  }

  /** The JWT bundles received last, by trust domain name, without waiting: undefined until the first message. */
  get currentJwtBundles(): ReadonlyMap<string, JwtBundle> | undefined {
    return this.#bundles;
  }

  /** Stops the bundle stream and closes the channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#bundleWatcher.stop();
    this.#transport.close();
    this.#wakeBundleWaiters();
  }

  async #fetch(audience: string[], key: string, stale: CachedSvid | undefined): Promise<string> {
    const fetchedAt = Date.now();
    let response: Buffer;
    try {
      response = await this.#transport.unary(
        WORKLOAD_API_METHODS.fetchJwtSvid,
        encodeJwtSvidRequest({ audience, spiffeId: this.#options.spiffeId ?? '' }),
        this.#options.timeoutMs ?? 10_000,
      );
    } catch (error) {
      const code = (error as { grpcCode?: number }).grpcCode ?? GrpcStatus.UNKNOWN;
      const text = describeCallEnd({ code, details: (error as Error).message });
      // The agent is away but the token is still valid: better than failing the call; the next call tries again.
      if (stale !== undefined && Date.now() < stale.expiresAt - 1_000) {
        this.#logger.warn(
          `JWT-SVID for ${key}: the Workload API ${this.endpoint} failed (${text}); using the cached one until it expires`,
        );
        return stale.token;
      }
      throw new WorkloadApiError(
        code === GrpcStatus.PERMISSION_DENIED
          ? 'ERR_MTLS_WORKLOAD_API_PERMISSION_DENIED'
          : code === GrpcStatus.INVALID_ARGUMENT
            ? 'ERR_MTLS_WORKLOAD_API_INVALID_ARGUMENT'
            : 'ERR_MTLS_WORKLOAD_API_UNAVAILABLE',
        `FetchJWTSVID for audience ${key} from the Workload API ${this.endpoint} failed: ${text}`,
        this.endpoint,
        { cause: error },
      );
    }
    const svids = decodeJwtSvidResponse(response).svids;
    const wanted = this.#options.spiffeId;
    const svid = wanted === undefined ? svids[0] : svids.find((s) => s.spiffeId === wanted);
    const lifetime = svid === undefined ? undefined : lifetimeOf(svid.svid, fetchedAt);
    if (svid === undefined || lifetime === undefined) {
      throw new WorkloadApiError(
        svid === undefined ? 'ERR_MTLS_WORKLOAD_API_NO_SVID' : 'ERR_MTLS_WORKLOAD_API_RESPONSE_INVALID',
        svid === undefined
          ? `the Workload API ${this.endpoint} returned no JWT-SVID${wanted === undefined ? '' : ` for ${wanted}`} (audience ${key})`
          : `the Workload API ${this.endpoint} returned a JWT-SVID without a numeric exp claim (audience ${key})`,
        this.endpoint,
      );
    }
    if (this.#cache.size >= MAX_CACHED_AUDIENCES && !this.#cache.has(key)) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(key, { token: svid.svid, ...lifetime });
    return svid.svid;
  }

  #onBundles(message: Buffer): void {
    const bundles = new Map<string, JwtBundle>();
    try {
      for (const [name, json] of decodeJwtBundlesResponse(message).bundles) {
        if (json.length > MAX_BUNDLE_BYTES) throw new Error(`the bundle of ${name} is larger than ${MAX_BUNDLE_BYTES} bytes`);
        const parsed = JSON.parse(json.toString('utf8')) as { keys?: unknown };
        if (!Array.isArray(parsed.keys)) throw new Error(`the bundle of ${name} has no "keys" array`);
        const keys = parsed.keys
          .filter(
            (k): k is Record<string, unknown> =>
              k !== null && typeof k === 'object' && typeof (k as { kty?: unknown }).kty === 'string',
          )
          // Public parts only: a bundle that carries a private member ("d") is a leak, not a key to use.
          .filter((k) => !('d' in k))
          // JWT-SVID keys only: an X509-SVID authority ("use": "x509-svid") never verifies a token.
          .filter((k) => k.use === undefined || k.use === 'jwt-svid' || k.use === 'sig')
          .map(({ use: _use, ...rest }) => Object.freeze(rest) as JwtBundleKey);
        bundles.set(parseTrustDomain(name), Object.freeze({ keys: Object.freeze(keys) }));
      }
    } catch (error) {
      this.#bundleProblem = `JWT bundles refused: ${(error as Error).message}`;
      this.#logger.warn(
        `JWT bundles from the Workload API ${this.endpoint} refused, keeping the previous ones: ${(error as Error).message}`,
      );
      return;
    }
    this.#bundles = bundles;
    this.#bundleProblem = undefined;
    this.#wakeBundleWaiters();
  }

  #waitForBundles(): Promise<void> {
    const timeoutMs = this.#options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#bundleWaiters.delete(wake);
        reject(
          new WorkloadApiError(
            'ERR_MTLS_WORKLOAD_API_TIMEOUT',
            `no JWT bundles from the Workload API ${this.endpoint} within ${timeoutMs} ms${this.#bundleProblem === undefined ? '' : ` (last: ${this.#bundleProblem})`}`,
            this.endpoint,
          ),
        );
      }, timeoutMs).unref();
      const wake = (): void => {
        clearTimeout(timer);
        this.#bundleWaiters.delete(wake);
        if (this.#bundles !== undefined) resolve();
        else
          reject(
            new WorkloadApiError(
              'ERR_MTLS_WORKLOAD_API_CLOSED',
              `JWT bundles unavailable from ${this.endpoint}: ${this.#bundleProblem ?? 'closed'}`,
              this.endpoint,
            ),
          );
      };
      this.#bundleWaiters.add(wake);
    });
  }

  #wakeBundleWaiters(): void {
    for (const wake of [...this.#bundleWaiters]) wake();
  }
}
