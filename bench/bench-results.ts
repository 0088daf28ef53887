import type { AdmissionResult } from './admission.js';
import type { FastifyGroupResult } from './fastify-group.js';
import type { BenchOptions } from './bench-options.js';
import type { Pinning } from './child-process.js';
import type { ProfileSummary } from './profile-summary.js';
import type { ClientVariant, LoadResult, ReloadMemoryReport, ServerVariant } from './protocol.js';
import { percentile, ratio, summarize, type Summary } from './statistics.js';

/** The servers of the keep-alive group, in run order. */
export const KEEP_ALIVE_SERVERS = ['raw', 'nest', 'mtls', 'naive', 'any-guard'] as const satisfies readonly ServerVariant[];
/** The servers of the handshake group, in run order. */
export const HANDSHAKE_SERVERS = ['raw', 'nest', 'mtls'] as const satisfies readonly ServerVariant[];
/** The clients of the client group, in run order; the two bare undici Pool APIs are the references. */
export const CLIENTS = [
  'undici-pool',
  'undici-dispatch',
  'mtls-client',
  'mtls-upstream',
  'https-agent',
  'mtls-https-agent',
  'undici-fetch',
  'mtls-fetch',
] as const satisfies readonly ClientVariant[];

/** Row labels, as the issue and DESIGN.md name the cases. */
export const LABELS: Readonly<Record<ServerVariant | ClientVariant, string>> = {
  'http-nest': 'Nest, plain HTTP, no guard',
  'http-xfcc': 'MtlsModule proxy mode (XFCC, loopback)',
  'http-pool': 'undici Pool, plain HTTP',
  raw: '(a) raw node:https',
  nest: '(b) Nest + Express, no guard',
  mtls: '(c) Nest + MtlsModule, @AllowPeers',
  naive: '(d) Nest + naive guard (getPeerCertificate + SAN split per request)',
  'any-guard': "(e) Nest + a guard that only returns true (Nest's cost of any guard)",
  rotation: 'Nest + MtlsModule, hot reload',
  'mtls-token': '(c) + @RequireToken (ES256 user token, cached JWKS file)',
  'undici-pool': 'undici Pool.request + body.json() (bare, prebuilt SecureContext)',
  'undici-dispatch': 'undici Pool.dispatch, minimal handler (bare, prebuilt SecureContext)',
  'mtls-client': 'MtlsHttpClient.get(url, { expectPeer })',
  'mtls-upstream': "MtlsHttpClient.upstream('inventory').get(path)",
  'https-agent': 'https.Agent (keepAlive, prebuilt SecureContext)',
  'mtls-https-agent': 'MtlsHttpClient.httpsAgent() with node:https',
  'undici-fetch': 'undici fetch + Agent dispatcher (prebuilt SecureContext)',
  'mtls-fetch': 'undici fetch + MtlsHttpClient.dispatcher()',
  fastify: 'Nest + Fastify, no guard',
  'fastify-mtls': 'Nest + Fastify + MtlsModule (mtlsFastifyAdapter), @AllowPeers',
  'fastify-mtls-h2': 'Nest + Fastify + MtlsModule, HTTP/2 + HTTP/1.1 on one port',
  'undici-h2': 'undici Client, HTTP/2: one connection, requests multiplexed as streams',
  'mtls-client-h2': 'MtlsHttpClient.get(url, { expectPeer }) with client.http2',
};

/** Every metric of a case over its rounds. */
export interface CaseSummary {
  readonly requestsPerSecond: Summary;
  readonly serverCpuUsPerRequest: Summary;
  readonly clientCpuUsPerRequest: Summary;
  readonly p50Ms: Summary;
  readonly p99Ms: Summary;
  /** Handshake cases only. */
  readonly resumedFraction: Summary | undefined;
  /** Failed requests over all rounds. */
  readonly errors: number;
  readonly firstError: string | undefined;
  /** Negotiated protocol and cipher (handshake cases). */
  readonly tls: string | undefined;
}

/** One case: its label, each round's raw result and the summary. */
export interface CaseResult {
  readonly label: string;
  readonly rounds: readonly LoadResult[];
  readonly summary: CaseSummary;
}

/** The rotation latencies, from the end of the Secret writer's call to the first handshake that shows the new leaf. */
export interface RotationResult {
  readonly rotations: number;
  /** Rotations whose certificate was not served within the timeout (counted at the timeout). */
  readonly timeouts: number;
  readonly timeoutMs: number;
  readonly pollIntervalMs: number;
  /** The module's reload settings in force (its defaults). */
  readonly debounceMs: number;
  readonly latenciesMs: readonly number[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** A floor of the issue and where the run landed. */
export interface FloorResult {
  readonly id: string;
  readonly description: string;
  /** `≤ 1.05`, `≥ 0.90`, … */
  readonly required: string;
  readonly measured: number;
  readonly unit: string;
  /** Undefined when its group did not run. */
  readonly pass: boolean | undefined;
}

/** The machine the run happened on. */
export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly platform: string;
  readonly kernel: string;
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd: readonly number[];
  readonly pinning: Pinning;
}

/** The cases of one group, by name. */
export type Cases<K extends string> = Readonly<Record<K, CaseResult>>;

/** The handshake cases of one mode. */
export type HandshakeCases = Cases<(typeof HANDSHAKE_SERVERS)[number]>;

/** Everything one run wrote to its JSON file. */
export interface BenchResults {
  readonly schema: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationS: number;
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly server: { readonly keepAlive: Cases<(typeof KEEP_ALIVE_SERVERS)[number]> } | undefined;
  readonly handshake: { readonly full: HandshakeCases; readonly resumed: HandshakeCases } | undefined;
  readonly client: Cases<(typeof CLIENTS)[number]> | undefined;
  readonly rotation: RotationResult | undefined;
  /** Push of an X509-SVID by the Workload API → new certificate served (group `workload-api`). */
  readonly workloadApi?: RotationResult | undefined;
  readonly memory: (ReloadMemoryReport & { readonly rssGrowthBytes: number }) | undefined;
  /** Connection admission: peer certificate sources, re-checks of many connections, the expiry structure. */
  readonly admission?: AdmissionResult | undefined;
  /** Ratios of medians, named `<metric>:<case>/<reference>`. */
  readonly ratios: Readonly<Record<string, number>>;
  readonly floors: readonly FloorResult[];
  /** With `--profile`: where each server's CPU went while it served. */
  readonly profiles: readonly ProfileSummary[] | undefined;
  /** The Fastify and HTTP/2 group (bench/fastify-group.ts), when run. */
  readonly fastify?: FastifyGroupResult | undefined;
}

/** Summarises the rounds of one case. */
export function caseResult(label: string, rounds: readonly LoadResult[]): CaseResult {
  const metric = (pick: (round: LoadResult) => number): Summary => summarize(rounds.map(pick));
  const handshake = rounds.some((round) => round.resumedFraction !== undefined);
  return {
    label,
    rounds,
    summary: {
      requestsPerSecond: metric((round) => round.requestsPerSecond),
      serverCpuUsPerRequest: metric((round) => round.serverCpuUsPerRequest),
      clientCpuUsPerRequest: metric((round) => round.clientCpuUsPerRequest),
      p50Ms: metric((round) => round.p50Ms),
      p99Ms: metric((round) => round.p99Ms),
      resumedFraction: handshake ? metric((round) => round.resumedFraction ?? Number.NaN) : undefined,
      errors: rounds.reduce((sum, round) => sum + round.errors, 0),
      firstError: rounds.find((round) => round.firstError !== undefined)?.firstError,
      tls: rounds.find((round) => round.tls !== undefined)?.tls,
    },
  };
}

/** Summarises the rotation latencies. */
export function rotationResult(
  latenciesMs: readonly number[],
  settings: Pick<RotationResult, 'timeouts' | 'timeoutMs' | 'pollIntervalMs' | 'debounceMs'>,
): RotationResult {
  return {
    rotations: latenciesMs.length,
    ...settings,
    latenciesMs,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
    maxMs: latenciesMs.length === 0 ? Number.NaN : Math.max(...latenciesMs),
  };
}

type Groups = Pick<BenchResults, 'server' | 'handshake' | 'client' | 'rotation' | 'memory' | 'admission'>;

/** Ratios of medians between cases: what the tables and the floors quote. */
export function computeRatios({ server, handshake, client }: Groups): Record<string, number> {
  const ratios: Record<string, number> = {};
  if (server !== undefined) {
    const ka = server.keepAlive;
    for (const variant of KEEP_ALIVE_SERVERS) {
      ratios[`keepAlive.serverCpuUsPerRequest:${variant}/nest`] = ratio(
        ka[variant].summary.serverCpuUsPerRequest.median,
        ka.nest.summary.serverCpuUsPerRequest.median,
      );
      ratios[`keepAlive.requestsPerSecond:${variant}/nest`] = ratio(
        ka[variant].summary.requestsPerSecond.median,
        ka.nest.summary.requestsPerSecond.median,
      );
    }
  }
  if (handshake !== undefined) {
    for (const mode of ['full', 'resumed'] as const) {
      const cases = handshake[mode];
      for (const variant of HANDSHAKE_SERVERS) {
        ratios[`handshake.${mode}.requestsPerSecond:${variant}/nest`] = ratio(
          cases[variant].summary.requestsPerSecond.median,
          cases.nest.summary.requestsPerSecond.median,
        );
        ratios[`handshake.${mode}.serverCpuUsPerRequest:${variant}/nest`] = ratio(
          cases[variant].summary.serverCpuUsPerRequest.median,
          cases.nest.summary.serverCpuUsPerRequest.median,
        );
      }
    }
  }
  if (client !== undefined) {
    for (const variant of CLIENTS) {
      for (const reference of ['undici-pool', 'undici-dispatch'] as const) {
        ratios[`client.requestsPerSecond:${variant}/${reference}`] = ratio(
          client[variant].summary.requestsPerSecond.median,
          client[reference].summary.requestsPerSecond.median,
        );
        ratios[`client.clientCpuUsPerRequest:${variant}/${reference}`] = ratio(
          client[variant].summary.clientCpuUsPerRequest.median,
          client[reference].summary.clientCpuUsPerRequest.median,
        );
      }
    }
  }
  return ratios;
}

const MB = 1_000_000;

/** The floors of issue 5, each with its measured value; `pass` is undefined for a group that did not run. */
export function evaluateFloors(groups: Groups, ratios: Readonly<Record<string, number>>): FloorResult[] {
  const atMost = (value: number, limit: number): boolean => Number.isFinite(value) && value <= limit;
  const atLeast = (value: number, limit: number): boolean => Number.isFinite(value) && value >= limit;
  const floor = (
    id: string,
    description: string,
    required: string,
    measured: number | undefined,
    unit: string,
    check: (value: number) => boolean,
  ): FloorResult => ({
    id,
    description,
    required,
    measured: measured ?? Number.NaN,
    unit,
    pass: measured === undefined ? undefined : check(measured),
  });
  const { server, handshake, client, rotation, memory } = groups;
  return [
    floor(
      'guard-cpu-keep-alive',
      'Guard overhead, keep-alive: server CPU per request, (c) ÷ (b)',
      '≤ 1.05',
      server && ratios['keepAlive.serverCpuUsPerRequest:mtls/nest'],
      '×',
      (value) => atMost(value, 1.05),
    ),
    floor(
      'guard-handshake-full',
      'Guard overhead, new connection per request (full handshake): handshakes/s, (c) ÷ (b)',
      '≥ 0.95',
      handshake && ratios['handshake.full.requestsPerSecond:mtls/nest'],
      '×',
      (value) => atLeast(value, 0.95),
    ),
    floor(
      'guard-handshake-resumed',
      'Guard overhead, new connection per request (TLS 1.3 resumption): handshakes/s, (c) ÷ (b)',
      '≥ 0.95',
      handshake && ratios['handshake.resumed.requestsPerSecond:mtls/nest'],
      '×',
      (value) => atLeast(value, 0.95),
    ),
    // The reference is Pool.request, as in DESIGN.md ("undici's Pool.request is the fastest client (1.0)"); the
    // table also shows Pool.dispatch with a minimal handler, which skips what a client must do (deadline, parsing).
    floor(
      'client-throughput',
      'Client: MtlsHttpClient req/s ÷ bare undici Pool.request req/s',
      '≥ 0.90',
      client && ratios['client.requestsPerSecond:mtls-client/undici-pool'],
      '×',
      (value) => atLeast(value, 0.9),
    ),
    floor('rotation-p99', 'Rotation: `..data` swap → new certificate served, p99', '≤ 1000 ms', rotation?.p99Ms, 'ms', (value) =>
      atMost(value, 1000),
    ),
    floor(
      'reload-rss-growth',
      `RSS growth over ${memory?.reloads ?? 1000} reloads (after global.gc())`,
      '< 20 MB',
      memory === undefined ? undefined : memory.rssGrowthBytes / MB,
      'MB',
      (value) => Number.isFinite(value) && value < 20,
    ),
  ];
}
