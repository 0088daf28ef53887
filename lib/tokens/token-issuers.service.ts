import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { MtlsHttpClient } from '../client/mtls-http-client.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { MTLS_JWT_BUNDLE_FEEDS, MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { LogRateLimiter } from '../observability/log-rate-limiter.js';
import { MtlsEvents } from '../observability/mtls-events.js';
import { JwksFileSource } from './jwks-file-source.js';
import { MAX_JWKS_BYTES } from './jwks-key-set.js';
import { JwksUrlSource, type JwksFetch } from './jwks-url-source.js';
import { JwtBundleKeySource, type JwtBundleFeedOpener } from './jwt-bundle-key-source.js';
import type { ResolvedJwksSource, ResolvedTokenIssuer } from './token-config.js';
import { TokenVerifier } from './token-verifier.js';

/**
 * The module's token issuers: one {@link TokenVerifier} per issuer, built once at startup with its key source.
 * A JWKS file is read at startup (an invalid one stops the application) and watched from bootstrap on; a JWKS URL is
 * fetched at bootstrap (a failure is logged; tokens are refused until a fetch succeeds). A Workload API source opens
 * the JWT bundle stream at startup and waits for the first bundles at bootstrap, briefly: when the agent is away the
 * application starts all the same, logs it, and refuses the issuer's tokens until the bundles arrive.
 */
@Injectable()
export class TokenIssuers implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly #logger = new Logger('MtlsTokens');
  readonly #verifiers = new Map<string, TokenVerifier>();
  readonly #sources = new Map<string, JwksFileSource | JwksUrlSource | JwtBundleKeySource>();
  readonly #files: JwksFileSource[] = [];
  readonly #bundles: JwtBundleKeySource[] = [];
  readonly #urls: JwksUrlSource[] = [];
  readonly #agents: Agent[] = [];
  readonly #staleLog: LogRateLimiter;

  constructor(
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
    private readonly events: MtlsEvents,
    private readonly http: MtlsHttpClient,
    @Optional() @Inject(MTLS_JWT_BUNDLE_FEEDS) private readonly openJwtBundleFeed?: JwtBundleFeedOpener,
  ) {
    this.#staleLog = new LogRateLimiter(options.logRateLimitPerMinute);
  }

  /** The verifier of a configured issuer name. */
  verifier(name: string): TokenVerifier | undefined {
    return this.#verifiers.get(name);
  }

  /** The key source of an issuer (for health and tests). */
  source(name: string): JwksFileSource | JwksUrlSource | JwtBundleKeySource | undefined {
    return this.#sources.get(name);
  }

  async onModuleInit(): Promise<void> {
    for (const issuer of this.options.tokens.issuers.values()) {
      const { jwks } = issuer;
      const source =
        jwks.kind === 'file'
          ? await this.#fileSource(issuer, jwks.file)
          : jwks.kind === 'url'
            ? this.#urlSource(issuer, jwks)
            : await this.#bundleSource(issuer, jwks);
      this.#sources.set(issuer.name, source);
      this.#verifiers.set(issuer.name, new TokenVerifier(issuer, source));
      this.#logger.log(
        `token issuer ${issuer.name}: iss ${issuer.issuer ?? '(not checked)'}, aud ${issuer.audience.join(' ')}, keys from ${describeSource(jwks)}`,
      );
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.reload.enabled) await Promise.all(this.#files.map((source) => source.start()));
    // A failure is logged by the source; requests retry (at most once a second while it fails).
    await Promise.all([
      ...this.#urls.map((source) => source.keys().catch(() => undefined)),
      ...this.#bundles.map((source) => source.start()),
    ]);
  }

  async beforeApplicationShutdown(): Promise<void> {
    const files = this.#files.splice(0);
    await Promise.all(files.map((source) => source.stop()));
    for (const source of this.#bundles.splice(0)) source.stop();
    await Promise.all(this.#agents.splice(0).map((agent) => agent.close()));
  }

  async #fileSource(issuer: ResolvedTokenIssuer, file: string): Promise<JwksFileSource> {
    const { debounceMs, pollIntervalMs, maxRetryDelayMs } = this.options.reload;
    let source: JwksFileSource;
    try {
      source = await JwksFileSource.open({
        issuer: issuer.name,
        file,
        algorithms: issuer.algorithms,
        debounceMs,
        pollIntervalMs,
        maxRetryDelayMs,
        logger: this.#logger,
        onChange: ({ result, error }) =>
          this.events.emit(
            result === 'rotated'
              ? { type: 'jwks.rotated', issuer: issuer.name }
              : { type: 'jwks.refused', issuer: issuer.name, error: error! },
          ),
      });
    } catch (error) {
      if (error instanceof MtlsConfigError) {
        throw new MtlsConfigError(error.code, `MtlsModule option "tokens.issuers.${issuer.name}.jwks": ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
    this.#files.push(source);
    return source;
  }

  async #bundleSource(
    issuer: ResolvedTokenIssuer,
    jwks: Extract<ResolvedJwksSource, { kind: 'workloadApi' }>,
  ): Promise<JwtBundleKeySource> {
    // The module resolved the address (option or SPIFFE_ENDPOINT_SOCKET) and provides the opener.
    if (this.openJwtBundleFeed === undefined || jwks.socket === undefined) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "tokens.issuers.${issuer.name}.jwks.workloadApi" needs MtlsModule (TokenIssuers was provided without it)`,
      );
    }
    const source = new JwtBundleKeySource({
      issuer: issuer.name,
      endpoint: jwks.socket,
      feed: await this.openJwtBundleFeed(jwks.socket, this.#logger),
      algorithms: issuer.algorithms,
      logger: this.#logger,
    });
    this.#bundles.push(source);
    return source;
  }

  #urlSource(issuer: ResolvedTokenIssuer, jwks: Extract<ResolvedJwksSource, { kind: 'url' }>): JwksUrlSource {
    const source = new JwksUrlSource({
      issuer: issuer.name,
      url: jwks.url.href,
      fetch: jwks.caFile === undefined ? this.#mtlsFetch(jwks) : this.#caFetch(jwks, jwks.caFile),
      algorithms: issuer.algorithms,
      refreshMs: jwks.refreshMs,
      cooldownMs: jwks.cooldownMs,
      staleIfErrorMs: jwks.staleIfErrorMs,
      logger: this.#logger,
      onStale: (ageMs, error) => {
        this.events.emit({ type: 'jwks.stale', issuer: issuer.name, ageMs });
        const suppressed = this.#staleLog.admit();
        if (suppressed !== undefined) {
          this.#logger.warn(
            `token issuer ${issuer.name}: serving JWKS fetched ${Math.round(ageMs / 1000)} s ago (stale-if-error) because fetching ${jwks.url.href} fails: ` +
              `${error instanceof Error ? error.message : String(error)}${suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : ''}`,
          );
        }
      },
    });
    this.#urls.push(source);
    return source;
  }

  #mtlsFetch(jwks: Extract<ResolvedJwksSource, { kind: 'url' }>): JwksFetch {
    return async () => {
      const response = await this.http.get(jwks.url, {
        ...(jwks.expectPeer === undefined ? {} : { expectPeer: jwks.expectPeer }),
        timeoutMs: jwks.timeoutMs,
        maxResponseBytes: MAX_JWKS_BYTES,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      return response.text;
    };
  }

  #caFetch(jwks: Extract<ResolvedJwksSource, { kind: 'url' }>, caFile: string): JwksFetch {
    let agent: Agent | undefined;
    return async () => {
      if (agent === undefined) {
        const ca = await readFile(caFile, 'utf8');
        agent = new Agent({ connect: { ca, rejectUnauthorized: true } });
        this.#agents.push(agent);
      }
      // undici's request follows no redirect: the key set comes from the configured origin or not at all. One signal
      // bounds the whole fetch (connection, headers, body): undici's own timeouts are per phase and per chunk, which a
      // server trickling its body byte by byte never trips, and bootstrap and token requests wait on this fetch.
      const deadline = AbortSignal.timeout(jwks.timeoutMs);
      const chunks: Buffer[] = [];
      try {
        const response = await request(jwks.url, {
          dispatcher: agent,
          signal: deadline,
          headers: { accept: 'application/jwk-set+json, application/json' },
        });
        let length = 0;
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          length += chunk.length;
          if (length > MAX_JWKS_BYTES) {
            response.body.destroy();
            throw new Error(`the document is larger than ${MAX_JWKS_BYTES} bytes`);
          }
          chunks.push(chunk);
        }
        if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
      } catch (error) {
        if (deadline.aborted)
          throw new Error(`no complete response within ${jwks.timeoutMs} ms (option timeoutMs)`, { cause: error });
        throw error;
      }
      return Buffer.concat(chunks);
    };
  }
}

function describeSource(jwks: ResolvedJwksSource): string {
  if (jwks.kind === 'file') return jwks.file;
  if (jwks.kind === 'workloadApi') {
    const trustDomain = jwks.trustDomain === undefined ? "the trust domain of each token's sub" : jwks.trustDomain;
    return `the JWT bundles of the Workload API ${jwks.socket ?? ''} (${trustDomain})`;
  }
  return jwks.caFile === undefined ? `${jwks.url.href} (mTLS)` : `${jwks.url.href} (CA ${jwks.caFile})`;
}
