/** Asymmetric JWS algorithms a token issuer may use; `HS*` and `none` are never accepted. */
export type TokenAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

/** A JWKS (or SPIFFE bundle) fetched over HTTPS. */
export interface JwksUrlOptions {
  /** `https://` URL of the JWKS or SPIFFE bundle document. */
  url: string;
  /**
   * A CA bundle (PEM file) to verify the server with, for a key server outside the mesh: the fetch then presents no
   * client certificate. Without it the JWKS is fetched through `MtlsHttpClient` (mutual TLS, server identity checked).
   */
  caFile?: string;
  /** With `MtlsHttpClient`: the identity the key server must present. @default the URL's host name */
  expectPeer?: string | { hostname: string };
  /** How long a fetched key set is used before it is fetched again, in ms. @default 300_000 */
  refreshMs?: number;
  /** Least time between two fetches triggered by an unknown `kid`, in ms. @default 30_000 */
  cooldownMs?: number;
  /** How long past `refreshMs` the last good key set keeps serving while fetches fail, in ms. @default 3_600_000 */
  staleIfErrorMs?: number;
  /** Deadline of one fetch, in ms. @default 5_000 */
  timeoutMs?: number;
}

/** A JWKS (or SPIFFE bundle) file, watched and hot-reloaded like the credentials. */
export interface JwksFileOptions {
  /** Path of the JWKS or SPIFFE bundle JSON file. */
  file: string;
}

/**
 * JWT-SVIDs checked with the JWT bundles of the SPIFFE Workload API (`FetchJWTBundles`), kept current as the agent
 * pushes changes. A token must name its key (`kid`), and its `sub` must be a SPIFFE ID of the bundle's trust domain.
 */
export interface JwksWorkloadApiOptions {
  workloadApi: {
    /**
     * Only this trust domain's JWT bundle is used, and `sub` must be in it (`shop.test` or `spiffe://shop.test`).
     * @default the trust domain of the token's `sub` (on a `'peer-id'` route: the peer's, since `sub` must be its ID)
     */
    trustDomain?: string;
    /** `unix:///path/to/agent.sock` or `tcp://<IP>:<port>`. @default the `SPIFFE_ENDPOINT_SOCKET` environment variable */
    socket?: string;
  };
}

/** One trusted token issuer. */
export interface TokenIssuerOptions {
  /** The exact `iss` tokens must carry. Required, except with `jwks: { workloadApi }`: then `iss` is checked only if given. */
  issuer?: string;
  /** The audience(s) this service accepts; a token's `aud` must name one of them. */
  audience: string | string[];
  /** Where the issuer's public keys are: a file path, an `https://` URL, or the object forms. */
  jwks: string | JwksFileOptions | JwksUrlOptions | JwksWorkloadApiOptions;
  /** Algorithms accepted, pinned. @default every asymmetric algorithm the issuer's keys allow */
  algorithms?: TokenAlgorithm[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds, 0 to 300. @default 30 */
  clockToleranceSec?: number;
  /** Refuse tokens whose `iat` is older than this many seconds (then `iat` is required). @default no limit */
  maxTokenAgeSec?: number;
  /** Required `typ` header, e.g. `'at+jwt'` (RFC 9068). @default not checked (`'peer-id'` routes: absent, JWT or JOSE) */
  typ?: string;
}

/** Module option `tokens`: the issuers routes may name in `@RequireToken('<name>')`. */
export interface MtlsTokensOptions {
  /** Issuers by name. */
  issuers: Record<string, TokenIssuerOptions>;
}

/**
 * How a token is tied to the connection it arrives on:
 * `'none'` — an end user's token relayed by an admitted peer;
 * `'certificate'` — RFC 8705: `cnf["x5t#S256"]` is the SHA-256 of this connection's client certificate;
 * `'peer-id'` — a JWT-SVID: `sub` is the peer's SPIFFE ID.
 */
export type TokenBinding = 'none' | 'certificate' | 'peer-id';

/** Options of `@RequireToken`. */
export interface RequireTokenOptions {
  /** @default 'none' */
  bind?: TokenBinding;
  /** Scopes the token must all carry (`scope` claim, space-separated, or `scp` array). */
  scopes?: string[];
}
