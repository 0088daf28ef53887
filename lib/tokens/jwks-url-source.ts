import type { ReloadLogger } from '../credentials/credentials-reloader.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { importKeySet, type JwksKeySet } from './jwks-key-set.js';
import type { KeySource } from './token-verifier.js';
import type { TokenAlgorithm } from './tokens.options.js';

/** Fetches the document at the source's URL: the body of a 200 answer, else rejects. */
export type JwksFetch = () => Promise<Uint8Array | string>;

/** Options of {@link JwksUrlSource}. */
export interface JwksUrlSourceOptions {
  readonly issuer: string;
  /** The URL, for logs only (the fetch knows where to go). */
  readonly url: string;
  readonly fetch: JwksFetch;
  readonly algorithms: readonly TokenAlgorithm[] | undefined;
  readonly refreshMs: number;
  readonly cooldownMs: number;
  readonly staleIfErrorMs: number;
  readonly logger: ReloadLogger;
  /** Told each time a key set past `refreshMs` is used because fetches fail (the stale-if-error window). */
  readonly onStale?: ((ageMs: number, error: unknown) => void) | undefined;
  /** @default Date.now */
  readonly now?: () => number;
}

/**
 * An issuer's keys from an HTTPS URL, cached: fresh for `refreshMs`; concurrent fetches share one request; a token
 * with an unknown `kid` refetches at most once per `cooldownMs`; while fetches fail, the last good set keeps serving
 * for `staleIfErrorMs` past its freshness, with a log line and a metric each time.
 */
export class JwksUrlSource implements KeySource {
  readonly #options: JwksUrlSourceOptions;
  readonly #now: () => number;
  #current: JwksKeySet | undefined;
  #fetchedAt = 0;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<JwksKeySet> | undefined;
  #lastError: unknown;
  /** Fetches started, for tests and diagnostics. */
  fetches = 0;

  constructor(options: JwksUrlSourceOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async keys(): Promise<JwksKeySet> {
    const current = this.#current;
    const age = this.#now() - this.#fetchedAt;
    if (current !== undefined && age < this.#options.refreshMs) return current;
    const withinStale = current !== undefined && age < this.#options.refreshMs + this.#options.staleIfErrorMs;
    // While fetches fail, retry at most once per cooldown (and per second): each request must not become a fetch.
    if (
      withinStale &&
      this.#lastError !== undefined &&
      this.#inFlight === undefined &&
      this.#now() - this.#lastAttemptAt < Math.max(this.#options.cooldownMs, 1_000)
    ) {
      this.#options.onStale?.(age, this.#lastError);
      return current;
    }
    if (
      current === undefined &&
      this.#lastError !== undefined &&
      this.#inFlight === undefined &&
      this.#now() - this.#lastAttemptAt < Math.max(this.#options.cooldownMs, 1_000)
    ) {
      throw this.#lastError;
    }
    try {
      return await this.#fetchShared();
    } catch (error) {
      if (withinStale) {
        this.#options.onStale?.(age, error);
        return current;
      }
      throw error;
    }
  }

  async refreshForUnknownKid(): Promise<JwksKeySet> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    if (this.#now() - this.#lastAttemptAt < this.#options.cooldownMs) return this.keys();
    try {
      return await this.#fetchShared();
    } catch {
      return this.keys();
    }
  }

  /** The last fetch error while fetches fail; undefined once one succeeds. */
  get lastError(): unknown {
    return this.#lastError;
  }

  #fetchShared(): Promise<JwksKeySet> {
    this.#inFlight ??= this.#fetch().finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  async #fetch(): Promise<JwksKeySet> {
    const { issuer, url, logger } = this.#options;
    this.#lastAttemptAt = this.#now();
    this.fetches++;
    try {
      const body = await this.#options.fetch();
      const next = await importKeySet(body, url, this.#options.algorithms);
      const previous = this.#current;
      this.#current = next;
      this.#fetchedAt = this.#now();
      if (this.#lastError !== undefined) logger.log(`token issuer ${issuer}: JWKS from ${url} fetched again after failures`);
      this.#lastError = undefined;
      if (previous?.digest !== next.digest)
        logger.log(
          `token issuer ${issuer}: JWKS from ${url}: keys ${next.kids.map((k) => JSON.stringify(k)).join(', ') || '(no kid)'}`,
        );
      return next;
    } catch (error) {
      this.#lastError = error;
      const reason = error instanceof MtlsConfigError ? error.message : error instanceof Error ? error.message : String(error);
      logger.warn(`token issuer ${issuer}: fetching JWKS from ${url} failed: ${reason}`);
      throw error;
    }
  }
}
