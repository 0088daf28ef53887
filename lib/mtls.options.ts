import type { Authorizer } from './authorization/authorizer.js';
import type { CredentialsSourceOptions } from './credentials/credentials.interfaces.js';
import type { WorkloadApiCredentialsOptions } from './workload-api/workload-api.options.js';
import type { MtlsTokensOptions } from './tokens/tokens.options.js';
import type { MtlsProxyOptions } from './proxy/proxy.options.js';

/** TLS protocol policy applied to the server and the client, on every context rebuild. */
export interface TlsPolicyOptions {
  /** Lowest protocol accepted. @default 'TLSv1.2' */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Highest protocol offered. @default 'TLSv1.3' */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are fixed by Node's defaults). @default Node's default list */
  ciphers?: string;
  /** Key-exchange groups, e.g. `'X25519:P-256'`. @default Node's default */
  ecdhCurve?: string;
}

/** A named upstream the client may call by name (`http.get('inventory', '/stock/1')`). */
export interface UpstreamOptions {
  /** Origin, e.g. `https://inventory.shop.svc:8443`. */
  url: string;
  /** The identity the server must present: a named peer, a SPIFFE ID, or `{ hostname }` for legacy servers. */
  expectPeer: string | { hostname: string };
  /** A bearer token (or a function returning one, called per request) sent on every call through this upstream. */
  token?: string | (() => string | Promise<string>);
}

/** The outbound client's settings. */
export interface MtlsClientOptions {
  /** A separate credential set for outbound calls (files, or `{ workloadApi }`). @default the module's `credentials` */
  credentials?: CredentialsSourceOptions | WorkloadApiCredentialsOptions;
  /** Named upstreams. */
  upstreams?: Record<string, UpstreamOptions>;
  /** Connections kept per origin. @default 16 */
  connectionsPerOrigin?: number;
  /** Default per-request timeout in ms (headers and body). @default 10_000 */
  timeoutMs?: number;
  /**
   * Largest response body a call accepts, in bytes: a longer one fails with `ERR_MTLS_UPSTREAM_REQUEST` and its
   * connection is closed. A call may set its own `maxResponseBytes`. @default 10_485_760 (10 MiB)
   */
  maxResponseBytes?: number;
  /**
   * Offer HTTP/2 as well as HTTP/1.1 (ALPN; the server chooses): one connection per origin then carries many
   * concurrent requests (a burst before the first connection is up may still open up to `connectionsPerOrigin`).
   * The server's identity is checked in the handshake either way, before any request byte. @default false
   */
  http2?: boolean;
}

/** Hot reload of the credential files. */
export interface MtlsReloadOptions {
  /** Watch the files and reload on change. @default true */
  enabled?: boolean;
  /** Quiet period after the last file event before reading the set. @default 250 */
  debounceMs?: number;
  /** Periodic re-read that backs up the watcher (lost events, unwatchable file systems). `0` disables. @default 60_000 */
  pollIntervalMs?: number;
  /** Longest wait between retries while a changed set stays invalid. @default 5_000 */
  maxRetryDelayMs?: number;
}

/** Options of {@link MtlsModule.forRoot}. */
export interface MtlsModuleOptions {
  /**
   * Where the service's certificate, key, CA bundle and optional CRLs are: files, or `{ workloadApi: { socket?, svid? } }`
   * to stream X509-SVIDs and bundles from the SPIFFE Workload API (a SPIRE agent).
   */
  credentials: CredentialsSourceOptions | WorkloadApiCredentialsOptions;
  /**
   * Named peers usable in `@AllowPeers('orders')`: name → SPIFFE ID.
   * @example { orders: 'spiffe://shop.test/ns/shop/sa/orders' }
   */
  peers?: Record<string, string>;
  /**
   * Policy for routes that carry no `@Allow…` decorator.
   * `'deny'` refuses every peer; `'any-peer'` admits any peer whose certificate chains to the bundle.
   * @default 'deny'
   */
  defaultPolicy?: 'deny' | 'any-peer';
  /**
   * `'strict'`: peers without a certificate valid for the bundle fail the TLS handshake.
   * `'permissive'` (migration only): such handshakes complete and the guard answers 401.
   * @default 'strict'
   */
  mode?: 'strict' | 'permissive';
  /** TLS protocol policy. */
  tls?: TlsPolicyOptions;
  /**
   * Who may connect at all, checked on every connection right after its TLS handshake (go-spiffe's handshake
   * authorizer): a peer it refuses is disconnected before any byte of HTTP reaches a listener — controllers, `app.use`,
   * the adapter's own routes, static files, `upgrade`, `connect`. Route rules still apply on top of it.
   * @example authorizeMemberOf('shop.test')
   * @default none: every peer with a valid certificate may connect
   */
  connectionAuthorizer?: Authorizer;
  /**
   * What the global guard does with handlers that are not reached over the mTLS server (microservice and
   * websocket handlers in a hybrid app): `'deny'` fails them closed; `'allow'` lets them through unchecked, for
   * transports that authenticate by their own means. GraphQL over the HTTPS server is always guarded.
   * @default 'deny'
   */
  nonHttpContexts?: 'deny' | 'allow';
  /** Warn (log, health, events) when less than this remains before the certificate's NotAfter. @default a third of its lifetime */
  expiryWarningMs?: number;
  /** Most log lines per minute for rejected handshakes and for denied peers, each; the rest are counted and summarised. @default 60 */
  logRateLimitPerMinute?: number;
  /** Outbound client settings. */
  client?: MtlsClientOptions;
  /** Hot reload settings. */
  reload?: MtlsReloadOptions;
  /**
   * Bearer token issuers that routes may require with `@RequireToken('<name>')`, on top of the peer rule.
   * @example { issuers: { shop: { issuer: 'https://issuer.shop.test', audience: 'orders', jwks: '/etc/jwks/jwks.json' } } }
   */
  tokens?: MtlsTokensOptions;
  /**
   * Behind a sidecar or front proxy that terminates mTLS: read the caller's identity from its header (XFCC or RFC 9440),
   * accepted only from the trusted proxy. Unset: identities come from the TLS connection.
   */
  proxy?: MtlsProxyOptions;
}
