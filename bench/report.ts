import {
  CLIENTS,
  HANDSHAKE_SERVERS,
  KEEP_ALIVE_SERVERS,
  LABELS,
  type BenchResults,
  type CaseResult,
  type FloorResult,
} from './bench-results.js';
import { PROFILE_AREAS } from './profile-summary.js';
import { ratio, type Summary } from './statistics.js';
import { workloadApiSection } from './workload-api-report.js';

const MB = 1_000_000;

function number(value: number, digits: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** `median (min–max)`; the spread is left out for a single round. */
function cell(summary: Summary, digits: number): string {
  const median = number(summary.median, digits);
  if (summary.values.length < 2) return median;
  return `${median} (${number(summary.min, digits)}–${number(summary.max, digits)})`;
}

function times(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? 'n/a' : `${number(value, 2)}×`;
}

function percent(share: number): string {
  return Number.isFinite(share) ? `${number(share * 100, 1)} %` : 'n/a';
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function label(variant: string): string {
  return LABELS[variant as keyof typeof LABELS] ?? variant;
}

/** Round-by-round ratios of two cases (rounds run side by side, so each pair saw the same machine). */
function pairedRatios(numerator: Summary, denominator: Summary): string {
  const ratios = numerator.values.map((value, round) => times(ratio(value, denominator.values[round] ?? Number.NaN)));
  return ratios.join(', ');
}

function errorNotes(cases: readonly CaseResult[]): string[] {
  return cases
    .filter((c) => c.summary.errors > 0 || c.summary.firstError !== undefined)
    .map(
      (c) =>
        `> ⚠ ${c.label}: ${c.summary.errors} failed request(s) in the measured windows; ` +
        `first error: ${c.summary.firstError ?? 'n/a'}`,
    );
}

function machineLine({ machine }: BenchResults): string {
  const { pinning } = machine;
  const placement = pinning.applied
    ? `servers pinned to CPU ${pinning.serverCpus ?? '?'}, load generators to CPU ${pinning.loadCpus ?? '?'} (taskset)`
    : `no CPU pinning (${pinning.reason ?? 'unknown reason'})`;
  const load = (values: readonly number[]): string => values.map((value) => number(value, 2)).join(' / ');
  return (
    `**Machine:** ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, ` +
    `${machine.platform} ${machine.kernel}; ${placement}; load average (1/5/15 min) ` +
    `${load(machine.loadAverageStart)} at start, ${load(machine.loadAverageEnd)} at end.`
  );
}

function methodLine({ options }: BenchResults): string {
  return (
    `**Method:** ${options.rounds} round(s), cases interleaved within each round (A B C … A B C …); every case ` +
    `runs in a fresh load-generator process: ${number(options.warmupMs / 1000, 1)} s warm-up (discarded), then ` +
    `${number(options.durationMs / 1000, 1)} s measured. Cells show the median over rounds and (min–max); ratios are ` +
    'ratios of medians. Server CPU is utime + stime of the server process from `/proc/<pid>/stat` over the measured ' +
    'window, ' +
    "divided by the requests completed in it; client CPU is the load generator's own. ECDSA P-256 certificates, " +
    'TLS 1.2–1.3, the same TLS option set and JSON body on every server.'
  );
}

function keepAliveSection(results: BenchResults): string[] {
  if (results.server === undefined) return [];
  const cases = results.server.keepAlive;
  const rows = KEEP_ALIVE_SERVERS.map((variant) => {
    const { summary } = cases[variant];
    return [
      cases[variant].label,
      cell(summary.requestsPerSecond, 0),
      cell(summary.serverCpuUsPerRequest, 1),
      times(results.ratios[`keepAlive.serverCpuUsPerRequest:${variant}/nest`]),
      cell(summary.p50Ms, 2),
      cell(summary.p99Ms, 2),
    ];
  });
  const cpu = (variant: (typeof KEEP_ALIVE_SERVERS)[number]): Summary => cases[variant].summary.serverCpuUsPerRequest;
  const { concurrency } = results.options;
  return [
    `### Server, keep-alive (${concurrency} requests in flight over ${concurrency} connections, undici Pool)`,
    '',
    table(['Server', 'req/s', 'server CPU µs/req', 'CPU vs (b)', 'p50 ms', 'p99 ms'], rows),
    '',
    `Server CPU per request round by round: (c) ÷ (b) ${pairedRatios(cpu('mtls'), cpu('nest'))}; ` +
      `(d) ÷ (b) ${pairedRatios(cpu('naive'), cpu('nest'))}; (e) ÷ (b) ${pairedRatios(cpu('any-guard'), cpu('nest'))}.`,
    ...errorNotes(KEEP_ALIVE_SERVERS.map((variant) => cases[variant])),
    '',
  ];
}

function handshakeSection(results: BenchResults): string[] {
  if (results.handshake === undefined) return [];
  const { handshake } = results;
  const modes = ['full', 'resumed'] as const;
  const rows = modes.flatMap((mode) =>
    HANDSHAKE_SERVERS.map((variant) => {
      const { summary } = handshake[mode][variant];
      const resumed = summary.resumedFraction;
      return [
        label(variant),
        mode === 'full' ? 'full' : 'TLS 1.3 resumption',
        cell(summary.requestsPerSecond, 0),
        times(results.ratios[`handshake.${mode}.requestsPerSecond:${variant}/nest`]),
        cell(summary.serverCpuUsPerRequest, 0),
        times(results.ratios[`handshake.${mode}.serverCpuUsPerRequest:${variant}/nest`]),
        cell(summary.p50Ms, 2),
        cell(summary.p99Ms, 2),
        resumed === undefined ? 'n/a' : `${number(resumed.median * 100, 0)} %`,
      ];
    }),
  );
  const negotiated = new Set(HANDSHAKE_SERVERS.map((variant) => handshake.full[variant].summary.tls ?? 'n/a'));
  const rate = (mode: (typeof modes)[number], variant: (typeof HANDSHAKE_SERVERS)[number]): Summary =>
    handshake[mode][variant].summary.requestsPerSecond;
  return [
    `### Server, one new TLS connection per request (${results.options.handshakeConcurrency} connections opened at ` +
      'once, `Connection: close`)',
    '',
    table(
      ['Server', 'Handshake', 'connections/s', 'vs (b)', 'server CPU µs/conn', 'CPU vs (b)', 'p50 ms', 'p99 ms', 'resumed'],
      rows,
    ),
    '',
    `Negotiated: ${[...negotiated].join('; ')}. Connections per second round by round, (c) ÷ (b): full ` +
      `${pairedRatios(rate('full', 'mtls'), rate('full', 'nest'))}; resumed ` +
      `${pairedRatios(rate('resumed', 'mtls'), rate('resumed', 'nest'))}.`,
    ...errorNotes(modes.flatMap((mode) => HANDSHAKE_SERVERS.map((variant) => handshake[mode][variant]))),
    '',
  ];
}

function clientSection(results: BenchResults): string[] {
  if (results.client === undefined) return [];
  const cases = results.client;
  const rows = CLIENTS.map((variant) => {
    const { summary } = cases[variant];
    return [
      cases[variant].label,
      cell(summary.requestsPerSecond, 0),
      times(results.ratios[`client.requestsPerSecond:${variant}/undici-pool`]),
      times(results.ratios[`client.requestsPerSecond:${variant}/undici-dispatch`]),
      cell(summary.clientCpuUsPerRequest, 1),
      times(results.ratios[`client.clientCpuUsPerRequest:${variant}/undici-pool`]),
      cell(summary.p50Ms, 2),
      cell(summary.p99Ms, 2),
    ];
  });
  const { concurrency } = results.options;
  return [
    `### Client, keep-alive, against server (a) (${concurrency} requests in flight, ${concurrency} connections)`,
    '',
    table(
      ['Client', 'req/s', 'vs Pool.request', 'vs Pool.dispatch', 'client CPU µs/req', 'CPU vs Pool.request', 'p50 ms', 'p99 ms'],
      rows,
    ),
    ...errorNotes(CLIENTS.map((variant) => cases[variant])),
    '',
  ];
}

function rotationSection({ rotation, memory }: BenchResults): string[] {
  if (rotation === undefined && memory === undefined) return [];
  const rows: string[][] = [];
  const notes: string[] = [];
  if (rotation !== undefined) {
    const timeout = number(rotation.timeoutMs / 1000, 0);
    rows.push(
      ['Rotations timed', `${rotation.rotations} (${rotation.timeouts} not served within ${timeout} s)`],
      ['Swap → new certificate served, p50', `${number(rotation.p50Ms, 0)} ms`],
      ['Swap → new certificate served, p99', `${number(rotation.p99Ms, 0)} ms`],
      ['Swap → new certificate served, max', `${number(rotation.maxMs, 0)} ms`],
    );
    notes.push(
      "Each rotation writes a fresh certificate with `writeKubernetesSecret` (kubelet's `..data` swap) into the " +
        'Secret directory of a Nest app with `MtlsModule` at its default reload settings ' +
        `(debounce ${rotation.debounceMs} ms); ` +
        "the time runs from the end of the writer's call to the first new TLS connection (one every " +
        `~${rotation.pollIntervalMs} ms) that is served the new leaf.`,
    );
  }
  if (memory !== undefined) {
    const reloads = memory.reloads.toLocaleString('en-US');
    const mb = (bytes: number): string => number(bytes / MB, 1);
    rows.push(
      [`RSS before ${reloads} reloads`, `${mb(memory.rssBeforeBytes)} MB`],
      [`RSS after ${reloads} reloads`, `${mb(memory.rssAfterBytes)} MB`],
      ['RSS growth', `${mb(memory.rssGrowthBytes)} MB`],
      ['V8 heap used before → after', `${mb(memory.heapUsedBeforeBytes)} → ${mb(memory.heapUsedAfterBytes)} MB`],
      ['External memory before → after', `${mb(memory.externalBeforeBytes)} → ${mb(memory.externalAfterBytes)} MB`],
      [
        'Reloads',
        `${memory.versionsAdvanced.toLocaleString('en-US')} rotations installed in ` +
          `${number(memory.elapsedMs / 1000, 1)} s; ` +
          `${memory.clientFailures} failed MtlsHttpClient call(s) during the loop`,
      ],
    );
    notes.push(
      "The reloads swap the Secret and call the reloader at once (the watcher's own reads run too), in the server " +
        'process, which also calls itself through `MtlsHttpClient` every 50 reloads; RSS is read after `global.gc()`.',
    );
  }
  return ['### Certificate rotation and reload memory', '', table(['Metric', 'Value'], rows), '', notes.join(' '), ''];
}

function profileSection(results: BenchResults): string[] {
  const { profiles } = results;
  if (profiles === undefined || profiles.length === 0) return [];
  // Shares become µs per request only when the profiles hold nothing but the keep-alive load.
  const onlyKeepAlive = results.handshake === undefined && results.client === undefined;
  const keepAlive = onlyKeepAlive ? results.server?.keepAlive : undefined;
  const rows = profiles.map((profile) => [
    label(profile.variant),
    number(profile.busyMs / 1000, 1),
    ...PROFILE_AREAS.map((area) => percent(profile.areas[area])),
  ]);
  const details = profiles.map((profile) => {
    const cpu = keepAlive?.[profile.variant as keyof typeof keepAlive]?.summary.serverCpuUsPerRequest.median;
    const frames = profile.frames
      .filter((frame) => frame.share >= 0.001)
      .slice(0, 10)
      .map((frame) => {
        const perRequest = cpu === undefined ? '' : ` ≈ ${number(frame.share * cpu, 1)} µs/req`;
        return `${frame.name} ${percent(frame.share)}${perRequest}`;
      });
    const text = frames.length === 0 ? 'no nestjs-mtls or guard frame above 0.1 %' : frames.join('; ');
    return `- ${label(profile.variant)}: ${text}`;
  });
  return [
    "### Where the servers' CPU went (`--profile`: sampled every 250 µs from each server's readiness to its stop)",
    '',
    table(['Server', 'busy s', ...PROFILE_AREAS], rows),
    '',
    'Self time by the area of the innermost frame, as a share of busy (non-idle) time. Inclusive share of the guard ' +
      'phase and of each nestjs-mtls function:',
    '',
    ...details,
    '',
  ];
}

function floorRows(floors: readonly FloorResult[]): string[][] {
  return floors.map((floor) => {
    let measured = 'n/a';
    if (Number.isFinite(floor.measured)) {
      const digits = floor.unit === 'MB' ? 1 : 0;
      measured = floor.unit === '×' ? times(floor.measured) : `${number(floor.measured, digits)} ${floor.unit}`;
    }
    const verdict = floor.pass === undefined ? 'not run' : floor.pass ? '**PASS**' : '**MISS**';
    return [floor.description, floor.required, measured, verdict];
  });
}

function admissionSection({ admission }: BenchResults): string[] {
  if (admission === undefined) return [];
  const sources = table(
    ['Peer certificate read right after the handshake', 'handshake', 'median µs'],
    admission.sources.map((s) => [`\`socket.${s.source}\``, s.handshake, number(s.medianUs, 1)]),
  );
  const rechecks = table(
    ['Re-check after a trust change', 'total ms', 'slices', 'max event-loop delay ms', 'closed'],
    admission.recheck.map((r) => [
      `${r.connections.toLocaleString('en-US')} connections of ${r.distinctPeers.toLocaleString('en-US')} peers`,
      number(r.totalMs, 0),
      String(r.slices),
      number(r.maxLoopDelayMs, 1),
      String(r.closed),
    ]),
  );
  const { expiry } = admission;
  return [
    '### Connection admission',
    '',
    sources,
    '',
    rechecks,
    '',
    `Expiry bookkeeping per connection (${expiry.connections.toLocaleString('en-US')} connections): a timer per socket ` +
      `${number(expiry.timerPerSocketUs, 2)} µs, the shared deadline schedule ${number(expiry.deadlineScheduleUs, 2)} µs.`,
    '',
  ];
}

/** The run as Markdown: machine, method, one table per group, the profiles when taken, then the floors. */
export function renderMarkdown(results: BenchResults): string {
  const naive = results.ratios['keepAlive.serverCpuUsPerRequest:naive/nest'];
  const anyGuard = results.ratios['keepAlive.serverCpuUsPerRequest:any-guard/nest'];
  const scale =
    naive === undefined
      ? []
      : [
          `For scale: the naive guard (d) costs ${times(naive)} (b)'s CPU per request here (DESIGN.md: 1.36×); ` +
            `a guard that only returns true (e) costs ${times(anyGuard)}.`,
          '',
        ];
  return [
    `## nestjs-mtls benchmark, ${results.startedAt}`,
    '',
    machineLine(results),
    '',
    methodLine(results),
    '',
    ...keepAliveSection(results),
    ...handshakeSection(results),
    ...clientSection(results),
    ...rotationSection(results),
    ...admissionSection(results),
    ...workloadApiSection(results.workloadApi, results.rotation, number, table),
    ...profileSection(results),
    '### Floors (issue 5)',
    '',
    table(['Floor', 'Required', 'Measured', 'Result'], floorRows(results.floors)),
    '',
    ...scale,
    `Total run time: ${number(results.durationS, 0)} s.`,
    '',
  ].join('\n');
}
