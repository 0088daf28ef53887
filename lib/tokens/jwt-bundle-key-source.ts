import type { ReloadLogger } from '../credentials/credentials-reloader.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { importKeySet, type JwksKeySet } from './jwks-key-set.js';
import type { BundleProblem, TrustDomainKeySource } from './token-verifier.js';
import type { TokenAlgorithm } from './tokens.options.js';

/** A trust domain's JWT bundle: a JWKS document. */
export interface JwtBundleDocument {
  readonly keys: readonly object[];
}

/**
 * The JWT bundles of the SPIFFE Workload API (`FetchJWTBundles`), kept current by the agent's stream: in the module,
 * a `WorkloadJwtSource`. The token layer reads it without knowing gRPC.
 */
export interface JwtBundleFeed {
  /** The bundles received last, by trust domain name; undefined until the first message. Never waits. */
  readonly currentJwtBundles: ReadonlyMap<string, JwtBundleDocument> | undefined;
  /** Resolves with the first bundles; rejects when they do not come within the feed's timeout. */
  jwtBundles(): Promise<unknown>;
  close(): void;
}

/** Opens a feed on a Workload API address (the configured one, else `SPIFFE_ENDPOINT_SOCKET`); does not wait for the agent. */
export type JwtBundleFeedOpener = (socket: string, logger: ReloadLogger) => Promise<JwtBundleFeed>;

/** Options of {@link JwtBundleKeySource}. */
export interface JwtBundleKeySourceOptions {
  /** The issuer's configured name, for logs. */
  readonly issuer: string;
  /** The Workload API address, for logs. */
  readonly endpoint: string;
  readonly feed: JwtBundleFeed;
  readonly algorithms: readonly TokenAlgorithm[] | undefined;
  readonly logger: ReloadLogger;
}

/** Most trust domains whose state is tracked and logged: `sub` chooses the trust domain, so the token names it. */
const MAX_TRACKED_TRUST_DOMAINS = 64;

/** What a key set lookup found for one trust domain, to log each change once. */
type TrustDomainState =
  { readonly kind: 'keys'; readonly digest: string; readonly kids: string } | { readonly kind: BundleProblem };

/**
 * An issuer's keys from the JWT bundles of the Workload API: one key set per trust domain. Each bundle version the
 * agent pushes is imported once, on the first token that needs it (the stream replaces the bundle objects, so a
 * rotation is seen by the next token); keys marked `use: "x509-svid"` never verify a token. A trust domain without a
 * bundle, or whose bundle has no usable key, gets `no_bundle`; before the first bundles arrive, `jwks_unavailable`.
 * Each change of what a trust domain resolves to is logged once, never with token bytes.
 */
export class JwtBundleKeySource implements TrustDomainKeySource {
  readonly #options: JwtBundleKeySourceOptions;
  readonly #imported = new WeakMap<object, Promise<JwksKeySet | undefined>>();
  readonly #states = new Map<string, TrustDomainState>();
  /** Set when startup went on without bundles: their arrival is logged once. */
  #waiting = false;

  constructor(options: JwtBundleKeySourceOptions) {
    this.#options = options;
  }

  /** Waits for the first bundles; when they do not come in time, logs it and resolves all the same. Never rejects. */
  async start(): Promise<void> {
    try {
      await this.#options.feed.jwtBundles();
    } catch (error) {
      this.#options.logger.warn(
        `token issuer ${this.#options.issuer}: no JWT bundles from the Workload API ${this.#options.endpoint} yet ` +
          `(${error instanceof Error ? error.message : String(error)}); tokens are refused until they arrive`,
      );
      this.#waiting = true;
    }
  }

  async keysFor(trustDomain: string): Promise<JwksKeySet | BundleProblem> {
    const bundles = this.#options.feed.currentJwtBundles;
    if (bundles === undefined) return 'jwks_unavailable';
    if (this.#waiting) {
      this.#waiting = false;
      this.#options.logger.log(
        `token issuer ${this.#options.issuer}: JWT bundles from the Workload API ${this.#options.endpoint} arrived`,
      );
    }
    const bundle = bundles.get(trustDomain);
    if (bundle === undefined) {
      this.#note(trustDomain, { kind: 'no_bundle' }, 'the Workload API has no JWT bundle for it');
      return 'no_bundle';
    }
    let imported = this.#imported.get(bundle);
    if (imported === undefined) {
      imported = this.#import(trustDomain, bundle);
      this.#imported.set(bundle, imported);
    }
    const keys = await imported;
    if (keys === undefined) return 'no_bundle';
    this.#note(trustDomain, { kind: 'keys', digest: keys.digest, kids: describe(keys) });
    return keys;
  }

  /** Stops the bundle stream. Idempotent. */
  stop(): void {
    this.#options.feed.close();
  }

  async #import(trustDomain: string, bundle: JwtBundleDocument): Promise<JwksKeySet | undefined> {
    const where = `JWT bundle of ${trustDomain} from the Workload API ${this.#options.endpoint}`;
    // The feed drops `use` other than "jwt-svid" already; filtering here too keeps this source safe on its own.
    const keys = bundle.keys.filter((key) => {
      const use = (key as { use?: unknown }).use;
      return use === undefined || use === 'jwt-svid' || use === 'sig';
    });
    try {
      return await importKeySet(JSON.stringify({ keys }), where, this.#options.algorithms);
    } catch (error) {
      const reason = error instanceof MtlsConfigError ? error.message : String(error);
      this.#note(trustDomain, { kind: 'no_bundle' }, `its bundle is refused: ${reason}`);
      return undefined;
    }
  }

  #note(trustDomain: string, state: TrustDomainState, why?: string): void {
    const previous = this.#states.get(trustDomain);
    if (previous !== undefined && sameState(previous, state)) return;
    if (previous === undefined && this.#states.size >= MAX_TRACKED_TRUST_DOMAINS) return;
    this.#states.set(trustDomain, state);
    const { issuer, logger } = this.#options;
    if (state.kind === 'keys') {
      const before = previous?.kind === 'keys' ? `${previous.kids} → ` : '';
      logger.log(`token issuer ${issuer}: JWT bundle of ${trustDomain}: keys ${before}${state.kids}`);
    } else {
      logger.warn(`token issuer ${issuer}: tokens of trust domain ${trustDomain} are refused: ${why ?? state.kind}`);
    }
  }
}

function sameState(a: TrustDomainState, b: TrustDomainState): boolean {
  return a.kind === 'keys' && b.kind === 'keys' ? a.digest === b.digest : a.kind === b.kind;
}

function describe(keys: JwksKeySet): string {
  return keys.kids.length === 0 ? '(no kid)' : keys.kids.map((kid) => JSON.stringify(kid)).join(', ');
}
