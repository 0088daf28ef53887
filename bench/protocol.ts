// Messages and job descriptions shared by the orchestrator (run.ts) and its child processes. Children receive their
// configuration as one JSON argument and answer over the IPC channel.

/**
 * The servers under test: (a) `raw` node:https, (b) `nest` without the module, (c) `mtls` with `MtlsModule` and
 * `@AllowPeers`, (d) `naive`, a per-request `getPeerCertificate()` guard for scale, (e) `any-guard`, a guard that only
 * returns true (what Nest charges for any guard); `rotation` serves the reload tests.
 */
export type ServerVariant =
  'raw' | 'nest' | 'mtls' | 'naive' | 'any-guard' | 'rotation' | 'mtls-token' | FastifyServerVariant | ProxyServerVariant;

/**
 * Nest on Fastify: `fastify` without a guard (TLS options in the adapter), `fastify-mtls` with `MtlsModule` through
 * `mtlsFastifyAdapter()`, `fastify-mtls-h2` the same serving HTTP/2 and HTTP/1.1 on one port.
 */
export type FastifyServerVariant = 'fastify' | 'fastify-mtls' | 'fastify-mtls-h2';

/**
 * The proxy group's servers, plain HTTP on 127.0.0.1 as behind a loopback sidecar: `http-nest` without the module,
 * `http-xfcc` with `MtlsModule` in proxy mode (`proxy: { header: 'xfcc', trust: 'loopback' }`) and `@AllowPeers`.
 */
export type ProxyServerVariant = 'http-nest' | 'http-xfcc';

/** The outbound clients compared against server (a). */
export type ClientVariant =
  | 'undici-pool'
  | 'undici-dispatch'
  | 'mtls-client'
  | 'mtls-upstream'
  | 'https-agent'
  | 'mtls-https-agent'
  | 'undici-fetch'
  | 'mtls-fetch'
  /** One HTTP/2 connection, every request a stream on it (undici Client, `allowH2`). */
  | 'undici-h2'
  /** `MtlsHttpClient` with `client.http2`. */
  | 'mtls-client-h2'
  /** A plain-HTTP undici Pool sending `LoadTarget.headers`: the sidecar's side of the proxy group. */
  | 'http-pool';

/** What a server child is told to be. */
export interface ServerConfig {
  readonly variant: ServerVariant;
  /** Kubernetes Secret layout: `tls.crt`, `tls.key`, `ca.crt`. */
  readonly credentialsDir: string;
  /** The one caller the guarded routes admit (the load generator's identity). */
  readonly callerSpiffeId: string;
  /** The server's own identity: the rotation server also calls itself through `MtlsHttpClient`. */
  readonly serverSpiffeId: string;
  /** `mtls-token`: the JWKS file of the token issuer its route requires. */
  readonly jwksFile?: string;
}

/** What a load generator does: requests over keep-alive connections, or one new TLS connection per request. */
export type LoadWork =
  | { readonly mode: 'keep-alive'; readonly client: ClientVariant }
  | {
      readonly mode: 'handshake';
      /** Offer each connection's TLS 1.3 session ticket to the next one. */
      readonly resume: boolean;
    };

/** One load-generation run: warm-up, then a measured window. */
export type LoadJob = LoadWork & LoadTarget;

/** Where a load generator sends its load and how long. */
export interface LoadTarget {
  readonly port: number;
  readonly path: string;
  /** Whose `/proc/<pid>/stat` gives the server CPU time of the window. */
  readonly serverPid: number;
  /** `getconf CLK_TCK`: the unit of utime and stime. */
  readonly clockTicksPerSecond: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Requests (or connections, in handshake mode) in flight. */
  readonly concurrency: number;
  /** The caller's credentials, Kubernetes Secret layout. */
  readonly credentialsDir: string;
  /** The identity the server must present, for the clients that check it. */
  readonly serverSpiffeId: string;
  /**
   * `Authorization` header values (the token group), if any: one per request, in turn. Inline, or in a file of one
   * value per line (thousands of tokens do not fit a child process's arguments).
   */
  readonly authorizations?: readonly string[] | { readonly file: string };
  /** Headers sent with every request (the proxy group's XFCC). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** What one window measured. */
export interface LoadResult {
  /** Responses with status 200 completed inside the window. */
  readonly requests: number;
  readonly errors: number;
  /** The first failure's message, to make a broken case visible. */
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  readonly requestsPerSecond: number;
  /** Server process utime + stime over the window, per request. */
  readonly serverCpuUsPerRequest: number;
  /** Load generator process CPU time over the window, per request. */
  readonly clientCpuUsPerRequest: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Handshake mode: fraction of connections whose session was resumed. */
  readonly resumedFraction: number | undefined;
  /** Handshake mode: negotiated protocol and cipher, to show that every server negotiated the same. */
  readonly tls: string | undefined;
}

/** Memory before and after a series of reloads, measured after `global.gc()` in the server process. */
export interface ReloadMemoryReport {
  readonly reloads: number;
  /** How many `reloadNow()` calls returned `rotated`; the rest were already picked up by the file watcher. */
  readonly rotatedByCall: number;
  /** The credential store's version went up by this much. */
  readonly versionsAdvanced: number;
  readonly elapsedMs: number;
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  readonly heapUsedBeforeBytes: number;
  readonly heapUsedAfterBytes: number;
  readonly externalBeforeBytes: number;
  readonly externalAfterBytes: number;
  /** Failed `MtlsHttpClient` calls during the loop (made so that retired client generations have pools to drain). */
  readonly clientFailures: number;
}

/** Orchestrator → server child. */
export type ServerCommand =
  | { readonly type: 'stop' }
  | { readonly type: 'reload'; readonly count: number; readonly sets: ReadonlyArray<Readonly<Record<string, string>>> };

/** Server child → orchestrator. */
export type ServerReport =
  | {
      readonly type: 'ready';
      readonly port: number;
      readonly pid: number;
      /** `process.hrtime()` in µs when ready: a `--cpu-prof` profile's samples before it are startup. */
      readonly readyAtUs: number;
    }
  | { readonly type: 'reloaded'; readonly report: ReloadMemoryReport }
  | { readonly type: 'failed'; readonly message: string };

/** Load generator child → orchestrator. */
export type LoadReport =
  { readonly type: 'result'; readonly result: LoadResult } | { readonly type: 'failed'; readonly message: string };

/** The route every server answers, with the same JSON body. */
export const BENCH_PATH = '/stock';

/** The body every server sends (Nest serialises it per request; so does the raw server). */
export const BENCH_BODY = Object.freeze({ sku: '42', available: 7 });
