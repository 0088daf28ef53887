import { isIP } from 'node:net';
import { didYouMean } from '../errors/did-you-mean.js';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { normalizeDnsName } from '../identity/dns-name.js';
import type { UpstreamOptions } from '../mtls.options.js';
import type { ExpectedPeer } from './client.interfaces.js';
import { LruMap } from './lru-map.js';
import { describeValue } from '../format/describe-value.js';
import { expectHostName, expectSpiffePeer, type UpstreamExpectation } from './upstream-identity.js';

/** Expectations compiled from call arguments that are kept, per kind; configured ones are kept apart, all of them. */
export const MAX_CACHED_EXPECTATIONS = 256;

/** A named upstream, resolved: where it is and what its server must prove. */
export interface NamedUpstream {
  readonly name: string;
  /** `https://host:port`, as `URL.origin` writes it. */
  readonly origin: string;
  /** Path prefix of the configured URL without its trailing `/` (usually empty). */
  readonly basePath: string;
  readonly expectation: UpstreamExpectation;
}

/**
 * The client's view of `client.upstreams` and `peers`: named upstreams by name and by origin, and compiled
 * expectations (an expectation object is also the key of its connection pools, so equal inputs should share one).
 * Expectations from configuration (upstreams, named peers and their IDs) are kept for good; those from call
 * arguments in an LRU of {@link MAX_CACHED_EXPECTATIONS} per kind, so that callers cannot grow it without bound.
 */
export class UpstreamRegistry {
  readonly #byName = new Map<string, NamedUpstream>();
  readonly #byOrigin = new Map<string, NamedUpstream>();
  readonly #configuredIds: ReadonlySet<string>;
  readonly #configured = new Map<string, UpstreamExpectation>();
  readonly #configuredHostNames = new Map<string, UpstreamExpectation>();
  readonly #spiffe = new LruMap<string, UpstreamExpectation>(MAX_CACHED_EXPECTATIONS);
  readonly #hostNames = new LruMap<string, UpstreamExpectation>(MAX_CACHED_EXPECTATIONS);
  #compilingConfiguration = true;

  constructor(
    upstreams: ReadonlyMap<string, UpstreamOptions>,
    private readonly namedPeers: ReadonlyMap<string, string>,
  ) {
    this.#configuredIds = new Set(namedPeers.values());
    for (const [name, options] of upstreams) {
      const upstream = this.#resolve(name, options);
      this.#byName.set(name, upstream);
      const key = originKey(upstream.origin);
      const sameOrigin = this.#byOrigin.get(key);
      if (sameOrigin === undefined) {
        this.#byOrigin.set(key, upstream);
      } else if (sameOrigin.expectation !== upstream.expectation) {
        // One TLS server per origin: a URL call to it could not know which of the two identities to demand.
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `MtlsModule options "client.upstreams.${sameOrigin.name}" and "client.upstreams.${name}" share the origin ` +
            `${upstream.origin} but expect different peers; give them the same "expectPeer"`,
        );
      }
    }
    this.#compilingConfiguration = false;
  }

  /** @internal Compiled expectations held: configured ones, and those cached from call arguments. */
  get cacheSizes(): { readonly configured: number; readonly spiffe: number; readonly hostNames: number } {
    return {
      configured: this.#configured.size + this.#configuredHostNames.size,
      spiffe: this.#spiffe.size,
      hostNames: this.#hostNames.size,
    };
  }

  /** The named upstream. Throws MtlsConfigError (`ERR_MTLS_INVALID_ARGUMENT`) naming the configured ones. */
  upstream(name: string): NamedUpstream {
    const upstream = typeof name === 'string' ? this.#byName.get(name) : undefined;
    if (upstream === undefined) {
      const known = [...this.#byName.keys()].map((known) => `"${known}"`).join(', ') || 'none';
      throw new MtlsConfigError(
        'ERR_MTLS_INVALID_ARGUMENT',
        `no upstream named ${describeValue(name)} in MtlsModule option "client.upstreams" (configured: ${known})` +
          (typeof name === 'string' && didYouMean(name, this.#byName.keys()) !== ''
            ? `;${didYouMean(name, this.#byName.keys())}`
            : ''),
      );
    }
    return upstream;
  }

  /**
   * The named upstream whose origin `origin` is, however it is spelt: `URL.origin` already folds the scheme's default
   * port, host case and IP notations; a trailing dot on the host (the same DNS name) is folded here.
   */
  upstreamAt(origin: string): NamedUpstream | undefined {
    return this.#byOrigin.get(originKey(origin));
  }

  /** The upstream's name when `origin` is a named upstream's, else the origin itself (for errors). */
  label(origin: string): string {
    return this.upstreamAt(origin)?.name ?? origin;
  }

  /**
   * What the server at `origin` must prove: the caller's `expectPeer`, else the named upstream's. An origin that is no
   * configured upstream has no default (falling back to the URL's host name would be a weaker check nobody asked for):
   * throws MtlsConfigError naming `call` and the ways to say whom it expects. Also throws MtlsConfigError for an
   * unknown named peer or a malformed SPIFFE ID or pattern.
   */
  expectation(expectPeer: ExpectedPeer | undefined, origin: string, call: string): UpstreamExpectation {
    if (expectPeer !== undefined) return this.compile(expectPeer);
    const upstream = this.upstreamAt(origin);
    if (upstream !== undefined) return upstream.expectation;
    throw this.#noExpectation(origin, call);
  }

  #noExpectation(origin: string, call: string): MtlsConfigError {
    const configured = [...this.#byName.values()].map((upstream) => `${upstream.name}: ${upstream.origin}`);
    // Bounded: a configuration with hundreds of upstreams must not make every such error a page long.
    const shown = configured.length > 8 ? [...configured.slice(0, 8), `${configured.length - 8} more`] : configured;
    return new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `${call}: ${origin} is not the origin of a configured upstream ` +
        `(${shown.length === 0 ? 'no upstreams configured' : `client.upstreams: ${shown.join(', ')}`}), so nothing says which server ` +
        'identity to demand; pass options.expectPeer (a named peer or a SPIFFE ID), or { hostname } to check a host name, ' +
        'or configure the upstream in "client.upstreams"; nothing was sent',
    );
  }

  /**
   * The compiled expectation of `expectPeer`, built on first use. Throws MtlsConfigError for an unknown named peer,
   * a malformed SPIFFE ID or pattern, or a host name that is neither a DNS name nor an IP address.
   */
  compile(expectPeer: ExpectedPeer): UpstreamExpectation {
    if (typeof expectPeer === 'string') {
      const cached = this.#configured.get(expectPeer) ?? this.#spiffe.get(expectPeer);
      if (cached !== undefined) return cached;
      const expectation = expectSpiffePeer(expectPeer, this.namedPeers);
      // Named peers and their IDs are bounded by configuration, and the commonest values: never evicted.
      if (this.#compilingConfiguration || this.namedPeers.has(expectPeer) || this.#configuredIds.has(expectPeer)) {
        this.#configured.set(expectPeer, expectation);
      } else {
        this.#spiffe.set(expectPeer, expectation);
      }
      return expectation;
    }
    const hostname = hostNameOf(expectPeer);
    const cached = this.#configuredHostNames.get(hostname) ?? this.#hostNames.get(hostname);
    if (cached !== undefined) return cached;
    const expectation = expectHostName(hostname);
    if (this.#compilingConfiguration) this.#configuredHostNames.set(hostname, expectation);
    else this.#hostNames.set(hostname, expectation);
    return expectation;
  }

  #resolve(name: string, options: UpstreamOptions): NamedUpstream {
    const option = `client.upstreams.${name}`;
    const { origin, basePath } = upstreamUrl(name, options.url);
    let expectation: UpstreamExpectation;
    try {
      expectation = this.compile(options.expectPeer);
    } catch (error) {
      if (!(error instanceof MtlsConfigError)) throw error;
      throw new MtlsConfigError(error.code, `MtlsModule option "${option}.expectPeer": ${error.message}`, { cause: error });
    }
    return { name, origin, basePath, expectation };
  }
}

/**
 * The origin and path prefix of upstream `name`'s `url`: an https:// URL without query, fragment or credentials.
 * Throws MtlsConfigError naming the option.
 */
export function upstreamUrl(name: string, text: unknown): { readonly origin: string; readonly basePath: string } {
  const option = `MtlsModule option "client.upstreams.${name}.url"`;
  let url: URL;
  try {
    url = new URL(typeof text === 'string' ? text : '');
  } catch (error) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `${option} is not a URL: ${JSON.stringify(text)}`, {
      cause: error,
    });
  }
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `${option} must be an https:// URL without query, fragment or credentials; got ${JSON.stringify(text)}`,
    );
  }
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') };
}

/** `origin` (as `URL.origin` writes it) with a trailing dot of its host removed: `https://inventory.:8443` is `https://inventory:8443`. */
function originKey(origin: string): string {
  const portStart = origin.lastIndexOf(':');
  // `https://[::1]:8443`: the last colon before the port follows `]`; without a port the host runs to the end.
  const hostEnd =
    portStart > 'https://'.length && !origin.endsWith(']') && /^:\d+$/.test(origin.slice(portStart)) ? portStart : origin.length;
  return origin[hostEnd - 1] === '.' ? origin.slice(0, hostEnd - 1) + origin.slice(hostEnd) : origin;
}

/** The host name of a `{ hostname }` expectation, lower case and without IPv6 brackets; throws MtlsConfigError. */
function hostNameOf(expectPeer: unknown): string {
  const isObject = typeof expectPeer === 'object' && expectPeer !== null;
  const hostname: unknown = isObject ? (expectPeer as { hostname?: unknown }).hostname : undefined;
  if (typeof hostname !== 'string') {
    const shown = isObject ? `{ hostname: ${describeValue(hostname)} }` : describeValue(expectPeer);
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got ${shown}`,
    );
  }
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIP(bare) === 0 && normalizeDnsName(bare.endsWith('.') ? bare.slice(0, -1) : bare) === undefined) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `expectPeer.hostname must be a DNS name or an IP address; got ${describeValue(hostname)}`,
    );
  }
  return bare.toLowerCase();
}
