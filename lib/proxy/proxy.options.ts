/**
 * Module option `proxy`: identities come from a trusted proxy's header instead of the TLS connection, for services
 * behind a sidecar (Istio, Consul, Envoy) or a front proxy that terminates the callers' mTLS.
 * @example
 * ```ts
 * MtlsModule.forRoot({ credentials: { dir }, proxy: { header: 'xfcc', trust: 'loopback' } })
 * ```
 */
export interface MtlsProxyOptions {
  /**
   * The header the proxy writes: `'xfcc'` (Envoy's `x-forwarded-client-cert`) or `'rfc9440'` (`Client-Cert` and
   * `Client-Cert-Chain`).
   */
  header: 'xfcc' | 'rfc9440';
  /**
   * Who may send it. `'loopback'`: peers on 127.0.0.0/8 or ::1 only (a sidecar in the same pod); the application then
   * listens on plain HTTP, on a loopback address only. `{ spiffeIds }`: the proxy connects over this package's mTLS
   * with one of these SPIFFE IDs. A header from anyone else is ignored: the request has no identity.
   */
  trust: 'loopback' | { spiffeIds: string[] };
  /**
   * Which XFCC element names the caller: `'last'`, the one the nearest proxy appended (Istio's and Envoy's
   * `APPEND_FORWARD`); `'first'` only behind an edge proxy that uses `SANITIZE_SET` and proxies that append after it.
   * @default 'last'
   */
  element?: 'last' | 'first';
  /**
   * Verify a forwarded certificate's chain against the module's CA bundle (and CRLs), as a TLS handshake would;
   * `false` takes the proxy's word for it.
   * @default true
   */
  verifyChain?: boolean;
  /** Refuse XFCC elements that carry no `Cert` (text fields only) instead of taking the proxy's text. @default false */
  requireCertificate?: boolean;
  /** Most bytes of the header (each of the RFC 9440 fields); Node's own limit is 16 KiB unless raised. @default 65536 */
  maxHeaderBytes?: number;
}

/** {@link MtlsProxyOptions} checked, with defaults applied. */
export interface ResolvedProxyOptions {
  readonly header: 'xfcc' | 'rfc9440';
  readonly trust: { readonly kind: 'loopback' } | { readonly kind: 'spiffe-ids'; readonly spiffeIds: ReadonlySet<string> };
  readonly element: 'last' | 'first';
  readonly verifyChain: boolean;
  readonly requireCertificate: boolean;
  readonly maxHeaderBytes: number;
}
