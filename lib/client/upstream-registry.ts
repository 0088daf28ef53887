import { MtlsConfigError } from '../errors/mtls.errors.js';
import type { UpstreamOptions } from '../mtls.options.js';
import type { ExpectedPeer } from './client.interfaces.js';
import { expectHostName, expectSpiffePeer, URL_HOST_NAME, type UpstreamExpectation } from './upstream-identity.js';

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
 * The client's view of `client.upstreams` and `peers`: named upstreams by name and by origin, and every expectation
 * compiled once (an expectation object is also the key of its connection pools, so equal inputs must share one).
 */
export class UpstreamRegistry {
  readonly #byName = new Map<string, NamedUpstream>();
  readonly #byOrigin = new Map<string, NamedUpstream>();
  readonly #spiffe = new Map<string, UpstreamExpectation>();
  readonly #hostNames = new Map<string, UpstreamExpectation>();

  constructor(
    upstreams: ReadonlyMap<string, UpstreamOptions>,
    private readonly namedPeers: ReadonlyMap<string, string>,
  ) {
    for (const [name, options] of upstreams) {
      const upstream = this.#resolve(name, options);
      this.#byName.set(name, upstream);
      const sameOrigin = this.#byOrigin.get(upstream.origin);
      if (sameOrigin === undefined) {
        this.#byOrigin.set(upstream.origin, upstream);
      } else if (sameOrigin.expectation !== upstream.expectation) {
        // One TLS server per origin: a URL call to it could not know which of the two identities to demand.
        throw new MtlsConfigError(
          'ERR_MTLS_CONFIG_INVALID',
          `MtlsModule options "client.upstreams.${sameOrigin.name}" and "client.upstreams.${name}" share the origin ` +
            `${upstream.origin} but expect different peers; give them the same "expectPeer"`,
        );
      }
    }
  }

  /** The named upstream. Throws MtlsConfigError naming the configured ones. */
  upstream(name: string): NamedUpstream {
    const upstream = this.#byName.get(name);
    if (upstream === undefined) {
      const known = [...this.#byName.keys()].map((known) => `"${known}"`).join(', ') || 'none';
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `no upstream named "${name}" in MtlsModule option "client.upstreams" (configured: ${known})`,
      );
    }
    return upstream;
  }

  /** The upstream's name when `origin` is a named upstream's, else the origin itself (for errors). */
  label(origin: string): string {
    return this.#byOrigin.get(origin)?.name ?? origin;
  }

  /**
   * What the server at `origin` must prove: the caller's `expectPeer`, else the named upstream's, else the URL's
   * host name. Throws MtlsConfigError for an unknown named peer or a malformed SPIFFE ID or pattern.
   */
  expectation(expectPeer: ExpectedPeer | undefined, origin: string): UpstreamExpectation {
    if (expectPeer === undefined) return this.#byOrigin.get(origin)?.expectation ?? URL_HOST_NAME;
    return this.compile(expectPeer);
  }

  /** The compiled expectation of `expectPeer`, built on first use. */
  compile(expectPeer: ExpectedPeer): UpstreamExpectation {
    if (typeof expectPeer === 'string') {
      let expectation = this.#spiffe.get(expectPeer);
      if (expectation === undefined) {
        expectation = expectSpiffePeer(expectPeer, this.namedPeers);
        this.#spiffe.set(expectPeer, expectation);
      }
      return expectation;
    }
    const hostname = expectPeer?.hostname;
    if (typeof hostname !== 'string' || hostname.length === 0) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got ${JSON.stringify(expectPeer)}`,
      );
    }
    let expectation = this.#hostNames.get(hostname);
    if (expectation === undefined) {
      expectation = expectHostName(hostname);
      this.#hostNames.set(hostname, expectation);
    }
    return expectation;
  }

  #resolve(name: string, options: UpstreamOptions): NamedUpstream {
    const option = `client.upstreams.${name}`;
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (error) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "${option}.url" is not a URL: ${JSON.stringify(options.url)}`,
        { cause: error },
      );
    }
    if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "${option}.url" must be an https:// URL without query, fragment or credentials; ` +
          `got ${JSON.stringify(options.url)}`,
      );
    }
    let expectation: UpstreamExpectation;
    try {
      expectation = this.compile(options.expectPeer);
    } catch (error) {
      if (!(error instanceof MtlsConfigError)) throw error;
      throw new MtlsConfigError(error.code, `MtlsModule option "${option}.expectPeer": ${error.message}`, { cause: error });
    }
    return { name, origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), expectation };
  }
}
