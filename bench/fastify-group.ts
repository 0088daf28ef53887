// The Fastify and HTTP/2 group of `npm run bench`: Nest on Fastify with and without MtlsModule against raw node:https,
// HTTP/2 multiplexed against HTTP/1.1 keep-alive, and MtlsHttpClient over HTTP/2 against HTTP/1.1. Every case of a
// table runs in the same interleaved rounds, so its ratios are measured side by side.
import { LABELS, type CaseResult, type Cases } from './bench-results.js';
import type { ClientVariant, LoadResult, LoadWork, ServerVariant } from './protocol.js';
import type { RunningServer } from './servers.js';

/** What the group needs of run.ts: its runner of interleaved cases and its load runner. */
export interface FastifyGroupRunner {
  readonly concurrency: number;
  readonly handshakeConcurrency: number;
  server(variant: ServerVariant): Promise<RunningServer>;
  load(server: RunningServer, work: LoadWork, concurrency: number): Promise<LoadResult>;
  interleaved<K extends string>(
    group: string,
    cases: ReadonlyArray<{ key: K; label: string; run: () => Promise<LoadResult> }>,
  ): Promise<Cases<K>>;
}

/** The servers this group starts (run.ts stops them when it is done). */
export const FASTIFY_SERVERS = ['raw', 'fastify', 'fastify-mtls', 'fastify-mtls-h2'] as const satisfies readonly ServerVariant[];

/** Everything the group measured, and its ratios of medians. */
export interface FastifyGroupResult {
  /** HTTP/1.1 keep-alive, undici Pool: raw node:https, Nest + Fastify, Nest + Fastify + MtlsModule. */
  readonly keepAlive: Cases<'raw' | 'fastify' | 'fastify-mtls'>;
  /** Full TLS handshakes, one request each. */
  readonly handshake: Cases<'fastify' | 'fastify-mtls'>;
  /** The HTTP/2 server, same route: HTTP/1.1 keep-alive (undici Pool) vs one HTTP/2 connection (streams). */
  readonly protocol: Cases<'h1-keep-alive' | 'h2-multiplexed'>;
  /** MtlsHttpClient against the HTTP/2 server: HTTP/1.1 vs `client.http2`. */
  readonly client: Cases<'mtls-client' | 'mtls-client-h2'>;
  /** Named `<metric>:<case>/<reference>`; lower server CPU and higher req/s are better. */
  readonly ratios: Readonly<Record<string, number>>;
  /** The floors and goal, with the measured ratio. */
  readonly checks: readonly { readonly name: string; readonly ratio: number; readonly bound: string; readonly met: boolean }[];
}

const median = (result: CaseResult, metric: 'serverCpuUsPerRequest' | 'requestsPerSecond' | 'clientCpuUsPerRequest'): number =>
  result.summary[metric].median;

/** Runs the group. */
export async function fastifyGroup(runner: FastifyGroupRunner): Promise<FastifyGroupResult> {
  const { concurrency, handshakeConcurrency } = runner;
  const servers = Object.fromEntries(
    await Promise.all(FASTIFY_SERVERS.map(async (variant) => [variant, await runner.server(variant)] as const)),
  ) as Record<(typeof FASTIFY_SERVERS)[number], RunningServer>;
  const pool: LoadWork = { mode: 'keep-alive', client: 'undici-pool' };
  const clientWork = (client: ClientVariant): LoadWork => ({ mode: 'keep-alive', client });

  const keepAlive = await runner.interleaved(
    'fastify keep-alive',
    (['raw', 'fastify', 'fastify-mtls'] as const).map((variant) => ({
      key: variant,
      label: LABELS[variant],
      run: () => runner.load(servers[variant], pool, concurrency),
    })),
  );
  const handshake = await runner.interleaved(
    'fastify handshake',
    (['fastify', 'fastify-mtls'] as const).map((variant) => ({
      key: variant,
      label: `${LABELS[variant]}, full`,
      run: () => runner.load(servers[variant], { mode: 'handshake', resume: false }, handshakeConcurrency),
    })),
  );
  const h2 = servers['fastify-mtls-h2'];
  const protocol = await runner.interleaved('fastify protocol', [
    {
      key: 'h1-keep-alive' as const,
      label: `HTTP/1.1 keep-alive, ${concurrency} connections (undici Pool)`,
      run: () => runner.load(h2, pool, concurrency),
    },
    {
      key: 'h2-multiplexed' as const,
      label: `HTTP/2, one connection, ${concurrency} streams (undici Client, allowH2)`,
      run: () => runner.load(h2, clientWork('undici-h2'), concurrency),
    },
  ]);
  const client = await runner.interleaved(
    'fastify client',
    (['mtls-client', 'mtls-client-h2'] as const).map((variant) => ({
      key: variant,
      label: variant === 'mtls-client' ? `${LABELS[variant]}, HTTP/1.1` : LABELS[variant],
      run: () => runner.load(h2, clientWork(variant), concurrency),
    })),
  );

  const ratios: Record<string, number> = {
    'serverCpu:fastify-mtls/fastify':
      median(keepAlive['fastify-mtls'], 'serverCpuUsPerRequest') / median(keepAlive.fastify, 'serverCpuUsPerRequest'),
    'serverCpu:fastify-mtls/raw':
      median(keepAlive['fastify-mtls'], 'serverCpuUsPerRequest') / median(keepAlive.raw, 'serverCpuUsPerRequest'),
    'serverCpu:fastify/raw': median(keepAlive.fastify, 'serverCpuUsPerRequest') / median(keepAlive.raw, 'serverCpuUsPerRequest'),
    'handshakesPerSecond:fastify-mtls/fastify':
      median(handshake['fastify-mtls'], 'requestsPerSecond') / median(handshake.fastify, 'requestsPerSecond'),
    'serverCpu:h2-multiplexed/h1-keep-alive':
      median(protocol['h2-multiplexed'], 'serverCpuUsPerRequest') / median(protocol['h1-keep-alive'], 'serverCpuUsPerRequest'),
    'requestsPerSecond:h2-multiplexed/h1-keep-alive':
      median(protocol['h2-multiplexed'], 'requestsPerSecond') / median(protocol['h1-keep-alive'], 'requestsPerSecond'),
    'clientCpu:mtls-client-h2/mtls-client':
      median(client['mtls-client-h2'], 'clientCpuUsPerRequest') / median(client['mtls-client'], 'clientCpuUsPerRequest'),
    'requestsPerSecond:mtls-client-h2/mtls-client':
      median(client['mtls-client-h2'], 'requestsPerSecond') / median(client['mtls-client'], 'requestsPerSecond'),
  };
  const check = (name: string, key: string, bound: string, met: (ratio: number) => boolean) => ({
    name,
    ratio: ratios[key]!,
    bound,
    met: met(ratios[key]!),
  });
  const checks = [
    check(
      'guard on Fastify, server CPU per keep-alive request',
      'serverCpu:fastify-mtls/fastify',
      '≤ 1.05 (floor)',
      (r) => r <= 1.05,
    ),
    check(
      'guard on Fastify, full handshakes per second',
      'handshakesPerSecond:fastify-mtls/fastify',
      '≥ 0.95 (floor)',
      (r) => r >= 0.95,
    ),
    check(
      'Fastify + MtlsModule vs raw node:https, server CPU per request',
      'serverCpu:fastify-mtls/raw',
      '≤ 1.2 (goal)',
      (r) => r <= 1.2,
    ),
  ];
  return { keepAlive, handshake, protocol, client, ratios, checks };
}

function table(cases: Readonly<Record<string, CaseResult>>): string {
  const rows = Object.values(cases).map((result) => {
    const s = result.summary;
    const cell = (summary: { median: number; min: number; max: number }, digits: number) =>
      `${summary.median.toFixed(digits)} (${summary.min.toFixed(digits)}–${summary.max.toFixed(digits)})`;
    const errors = s.errors > 0 ? ` ⚠ ${s.errors} errors: ${s.firstError ?? ''}` : '';
    return `| ${result.label}${errors} | ${cell(s.requestsPerSecond, 0)} | ${cell(s.serverCpuUsPerRequest, 1)} | ${cell(s.clientCpuUsPerRequest, 1)} | ${s.p50Ms.median.toFixed(2)} | ${s.p99Ms.median.toFixed(2)} |`;
  });
  return [
    '| case | req/s (min–max) | server CPU µs/req (min–max) | client CPU µs/req (min–max) | p50 ms | p99 ms |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** The group's Markdown section. */
export function renderFastifyGroup(result: FastifyGroupResult): string {
  const ratio = (key: string) => result.ratios[key]!.toFixed(3);
  return [
    '## Fastify and HTTP/2',
    '',
    '### HTTP/1.1 keep-alive, same JSON route',
    '',
    table(result.keepAlive),
    '',
    '### Full TLS handshakes, one request each',
    '',
    table(result.handshake),
    '',
    '### HTTP/2 multiplexed vs HTTP/1.1 keep-alive (Nest + Fastify + MtlsModule, HTTP/2 server)',
    '',
    table(result.protocol),
    '',
    '### MtlsHttpClient over HTTP/2 vs HTTP/1.1 (same server)',
    '',
    table(result.client),
    '',
    '### Ratios of medians',
    '',
    '| check | ratio | bound | |',
    '|---|---|---|---|',
    ...result.checks.map((c) => `| ${c.name} | ${c.ratio.toFixed(3)} | ${c.bound} | ${c.met ? 'met' : 'NOT MET'} |`),
    `| Nest + Fastify (no guard) vs raw node:https, server CPU | ${ratio('serverCpu:fastify/raw')} | | |`,
    `| HTTP/2 multiplexed ÷ HTTP/1.1 keep-alive, server CPU per request | ${ratio('serverCpu:h2-multiplexed/h1-keep-alive')} | | |`,
    `| HTTP/2 multiplexed ÷ HTTP/1.1 keep-alive, req/s | ${ratio('requestsPerSecond:h2-multiplexed/h1-keep-alive')} | | |`,
    `| MtlsHttpClient HTTP/2 ÷ HTTP/1.1, client CPU per request | ${ratio('clientCpu:mtls-client-h2/mtls-client')} | | |`,
    `| MtlsHttpClient HTTP/2 ÷ HTTP/1.1, req/s | ${ratio('requestsPerSecond:mtls-client-h2/mtls-client')} | | |`,
    '',
  ].join('\n');
}
