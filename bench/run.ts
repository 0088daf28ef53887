// `npm run bench`: the servers, the clients and the rotation of nestjs-mtls, measured side by side in one run.
// Prints the Markdown tables on stdout (progress goes to stderr) and writes bench-<timestamp>.json and .md.
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCredentials, resolveCredentialFiles } from '../lib/credentials/credentials-loader.js';
import { createSecureContext } from '../lib/credentials/secure-context.js';
import { measureAdmission } from './admission.js';
import { BENCH_USAGE, parseBenchOptions, type BenchOptions } from './bench-options.js';
import {
  caseResult,
  CLIENTS,
  computeRatios,
  evaluateFloors,
  HANDSHAKE_SERVERS,
  KEEP_ALIVE_SERVERS,
  LABELS,
  type BenchResults,
  type CaseResult,
  type Cases,
  type MachineInfo,
} from './bench-results.js';
import {
  clockTicksPerSecond,
  detectPinning,
  exited,
  nextMessage,
  siblingScript,
  startChild,
  type Pinning,
} from './child-process.js';
import { FASTIFY_SERVERS, fastifyGroup, renderFastifyGroup } from './fastify-group.js';
import { createFixtures, SERVER_SPIFFE_ID, type BenchFixtures } from './fixtures.js';
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './profile-summary.js';
import { BENCH_PATH, type LoadJob, type LoadReport, type LoadResult, type LoadWork } from './protocol.js';
import { renderMarkdown } from './report.js';
import { measureReloadMemory, timeRotations } from './rotation.js';
import { Servers, type RunningServer, type ServingWindow } from './servers.js';
import {
  renderTokenGroup,
  TOKEN_CASE_LABELS,
  TOKEN_CASE_SERVER,
  TOKEN_CASES,
  TOKEN_SERVERS,
  tokenGroupResult,
  type TokenCase,
  type TokenGroupResult,
} from './token-group.js';
import { timeWorkloadApiRotations } from './workload-api-rotation.js';
import { proxyHeaders, renderProxyMarkdown, PROXY_CASES, type ProxyGroup } from './proxy-group.js';

const runStart = performance.now();

function log(line: string): void {
  const seconds = ((performance.now() - runStart) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`${seconds} s  ${line}\n`);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Context {
  readonly options: BenchOptions;
  readonly fixtures: BenchFixtures;
  readonly pinning: Pinning;
  readonly servers: Servers;
  readonly clockTicksPerSecond: number;
}

type Groups = Pick<
  BenchResults,
  'server' | 'handshake' | 'client' | 'rotation' | 'memory' | 'admission' | 'workloadApi' | 'fastify'
> & {
  token?: TokenGroupResult | undefined;
};

/** IPC carries JSON, which turns NaN (a window without a request) into null: turn it back. */
function revive(result: LoadResult): LoadResult {
  const revived: Record<string, unknown> = { ...result };
  for (const [key, value] of Object.entries(result)) {
    if (value === null) revived[key] = key === 'firstError' || key === 'tls' ? undefined : Number.NaN;
  }
  return revived as unknown as LoadResult;
}

/** Runs one case in a fresh load-generator process (on the load CPU) and returns its window. */
async function runLoad(
  context: Context,
  server: RunningServer,
  work: LoadWork,
  concurrency: number,
  authorizations?: LoadJob['authorizations'],
  headers?: Readonly<Record<string, string>>,
): Promise<LoadResult> {
  const { options } = context;
  const job: LoadJob = {
    ...work,
    ...(authorizations === undefined ? {} : { authorizations }),
    ...(headers === undefined ? {} : { headers }),
    port: server.port,
    path: BENCH_PATH,
    serverPid: server.pid,
    clockTicksPerSecond: context.clockTicksPerSecond,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    concurrency,
    credentialsDir: context.fixtures.callerDir,
    serverSpiffeId: SERVER_SPIFFE_ID,
  };
  const child = startChild(siblingScript('load-generator'), job, { cpus: context.pinning.loadCpus });
  try {
    const timeoutMs = options.warmupMs + options.durationMs + 60_000;
    const { result } = await nextMessage<Extract<LoadReport, { type: 'result' }>>(child, 'result', timeoutMs);
    return revive(result);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited(child);
  }
}

function describeResult(result: LoadResult): string {
  const failed = result.errors > 0 || result.firstError !== undefined;
  const errors = failed ? `, ${result.errors} errors (${result.firstError})` : '';
  return (
    `${result.requestsPerSecond.toFixed(0)}/s, server ${result.serverCpuUsPerRequest.toFixed(1)} µs, ` +
    `client ${result.clientCpuUsPerRequest.toFixed(1)} µs, p50 ${result.p50Ms.toFixed(2)} ms, ` +
    `p99 ${result.p99Ms.toFixed(2)} ms${errors}`
  );
}

interface Case<K extends string> {
  readonly key: K;
  readonly label: string;
  readonly run: () => Promise<LoadResult>;
}

/** Runs every case once per round, in the same order each round (A B C A B C …); summarises each over the rounds. */
async function interleaved<K extends string>(context: Context, group: string, cases: ReadonlyArray<Case<K>>): Promise<Cases<K>> {
  const { rounds } = context.options;
  const results = new Map<K, LoadResult[]>(cases.map((c) => [c.key, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const c of cases) {
      const result = await c.run();
      results.get(c.key)!.push(result);
      log(`[${group} ${round}/${rounds}] ${c.label}: ${describeResult(result)}`);
    }
  }
  return Object.fromEntries(cases.map((c) => [c.key, caseResult(c.label, results.get(c.key)!)])) as Cases<K>;
}

async function keepAliveGroup(context: Context): Promise<NonNullable<Groups['server']>> {
  const { concurrency } = context.options;
  const servers = await Promise.all(KEEP_ALIVE_SERVERS.map((variant) => context.servers.get(variant)));
  const keepAlive = await interleaved(
    context,
    'server',
    KEEP_ALIVE_SERVERS.map((variant, index) => ({
      key: variant,
      label: LABELS[variant],
      run: () => runLoad(context, servers[index]!, { mode: 'keep-alive', client: 'undici-pool' }, concurrency),
    })),
  );
  return { keepAlive };
}

/** The token group: (c) against (c) + `@RequireToken`, interleaved in the same run. */
async function tokenGroup(context: Context): Promise<TokenGroupResult> {
  const { concurrency } = context.options;
  const servers = new Map(
    await Promise.all(TOKEN_SERVERS.map(async (variant) => [variant, await context.servers.get(variant)] as const)),
  );
  const authorizations: Readonly<Record<TokenCase, LoadJob['authorizations']>> = {
    mtls: undefined,
    'mtls-token': [`Bearer ${context.fixtures.token}`],
    'mtls-token-distinct': { file: context.fixtures.distinctAuthorizationsFile },
  };
  const cases = await interleaved(
    context,
    'token',
    TOKEN_CASES.map((name) => ({
      key: name,
      label: TOKEN_CASE_LABELS[name],
      run: () =>
        runLoad(
          context,
          servers.get(TOKEN_CASE_SERVER[name])!,
          { mode: 'keep-alive', client: 'undici-pool' },
          concurrency,
          authorizations[name],
        ),
    })),
  );
  await context.servers.stop('mtls-token');
  return tokenGroupResult({
    mtls: cases.mtls.rounds,
    'mtls-token': cases['mtls-token'].rounds,
    'mtls-token-distinct': cases['mtls-token-distinct'].rounds,
  });
}

/** Proxy mode: server CPU per keep-alive request, plain HTTP behind a loopback sidecar, against Nest without a guard. */
async function proxyGroup(context: Context): Promise<ProxyGroup> {
  const { concurrency } = context.options;
  const headers = await proxyHeaders(context.fixtures.callerDir);
  const plain = await context.servers.get('http-nest');
  const proxied = await context.servers.get('http-xfcc');
  const keepAlive = await interleaved(
    context,
    'proxy',
    PROXY_CASES.map((c) => ({
      key: c.key,
      label: c.label,
      run: () =>
        runLoad(
          context,
          c.server === 'http-nest' ? plain : proxied,
          { mode: 'keep-alive', client: 'http-pool' },
          concurrency,
          undefined,
          headers[c.header],
        ),
    })),
  );
  await Promise.all([context.servers.stop('http-nest'), context.servers.stop('http-xfcc')]);
  return { keepAlive };
}

async function handshakeGroup(context: Context): Promise<NonNullable<Groups['handshake']>> {
  const { handshakeConcurrency } = context.options;
  const servers = await Promise.all(HANDSHAKE_SERVERS.map((variant) => context.servers.get(variant)));
  const modes = ['full', 'resumed'] as const;
  const results = await interleaved(
    context,
    'handshake',
    modes.flatMap((mode) =>
      HANDSHAKE_SERVERS.map((variant, index) => ({
        key: `${mode}:${variant}` as const,
        label: `${LABELS[variant]}, ${mode}`,
        run: () => runLoad(context, servers[index]!, { mode: 'handshake', resume: mode === 'resumed' }, handshakeConcurrency),
      })),
    ),
  );
  // One table per mode, each row labelled by its server alone.
  const byServer = (mode: (typeof modes)[number]): Cases<(typeof HANDSHAKE_SERVERS)[number]> =>
    Object.fromEntries(
      HANDSHAKE_SERVERS.map((variant): [string, CaseResult] => {
        const { rounds } = results[`${mode}:${variant}`];
        return [variant, caseResult(LABELS[variant], rounds)];
      }),
    ) as Cases<(typeof HANDSHAKE_SERVERS)[number]>;
  return { full: byServer('full'), resumed: byServer('resumed') };
}

async function clientGroup(context: Context): Promise<NonNullable<Groups['client']>> {
  const { concurrency } = context.options;
  const server = await context.servers.get('raw');
  return interleaved(
    context,
    'client',
    CLIENTS.map((variant) => ({
      key: variant,
      label: LABELS[variant],
      run: () => runLoad(context, server, { mode: 'keep-alive', client: variant }, concurrency),
    })),
  );
}

async function rotationGroup(context: Context): Promise<Pick<Groups, 'rotation' | 'memory'>> {
  const { fixtures, options } = context;
  const server = await context.servers.get('rotation');
  const caller = createSecureContext(await loadCredentials(resolveCredentialFiles({ dir: fixtures.callerDir })));
  const rotation = await timeRotations(fixtures.pki, fixtures.rotationDir, server.port, caller, options.rotations, log);
  log(`[rotation] p50 ${rotation.p50Ms.toFixed(0)} ms, p99 ${rotation.p99Ms.toFixed(0)} ms; ${options.reloads} reloads`);
  const memory = await measureReloadMemory(fixtures.pki, server.child, options.reloads);
  log(`[memory] RSS ${(memory.rssBeforeBytes / 1e6).toFixed(1)} → ${(memory.rssAfterBytes / 1e6).toFixed(1)} MB`);
  await context.servers.stop('rotation');
  return { rotation, memory };
}

/** Reads the profiles the servers wrote when they exited, keeping the samples of their serving windows. */
async function profileSummaries(
  profileDir: string,
  served: ReadonlyMap<string, Readonly<ServingWindow>>,
): Promise<ProfileSummary[]> {
  const summaries: ProfileSummary[] = [];
  for (const [variant, { fromUs, toUs }] of served) {
    const file = join(profileDir, `server-${variant}.cpuprofile`);
    try {
      const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
      summaries.push(summarizeProfile(variant, profile, fromUs, toUs));
    } catch (error) {
      log(`no profile for server ${variant} (${file}): ${message(error)}`);
    }
  }
  return summaries;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((text) => text.startsWith('model name'));
    if (line !== undefined) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: what libuv reports will do.
  }
  return cpus()[0]?.model ?? 'unknown CPU';
}

async function runGroups(context: Context): Promise<Groups> {
  const { groups: selected } = context.options;
  const groups: Groups = {
    server: selected.includes('server') ? await keepAliveGroup(context) : undefined,
    handshake: selected.includes('handshake') ? await handshakeGroup(context) : undefined,
    client: selected.includes('client') ? await clientGroup(context) : undefined,
    rotation: undefined,
    memory: undefined,
    admission: undefined,
    token: selected.includes('token') ? await tokenGroup(context) : undefined,
    fastify: selected.includes('fastify')
      ? await fastifyGroup({
          concurrency: context.options.concurrency,
          handshakeConcurrency: context.options.handshakeConcurrency,
          server: (variant) => context.servers.get(variant),
          load: (server, work, concurrency) => runLoad(context, server, work, concurrency),
          interleaved: (group, cases) => interleaved(context, group, cases),
        })
      : undefined,
  };
  // The throughput servers are done: the rotation server runs alone.
  await Promise.all([...KEEP_ALIVE_SERVERS, ...FASTIFY_SERVERS].map((variant) => context.servers.stop(variant)));
  const withRotation = selected.includes('rotation') ? { ...groups, ...(await rotationGroup(context)) } : groups;
  // In this process, once the servers are gone: nothing else competes for the CPU.
  const withAdmission = selected.includes('admission')
    ? { ...withRotation, admission: await measureAdmission(log) }
    : withRotation;
  if (!selected.includes('workload-api')) return withAdmission;
  const workloadApi = await timeWorkloadApiRotations(context.fixtures.pki, context.options.rotations, log);
  log(`[workload-api] p50 ${workloadApi.p50Ms.toFixed(1)} ms, p99 ${workloadApi.p99Ms.toFixed(1)} ms`);
  return { ...withAdmission, workloadApi };
}

async function main(): Promise<void> {
  const { help, ...options } = parseBenchOptions(process.argv.slice(2), process.env);
  if (help) {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return;
  }
  const startedAt = new Date();
  const loadAverageStart = loadavg();
  const stamp = startedAt
    .toISOString()
    .replaceAll(':', '-')
    .replace(/\.\d+Z$/, 'Z');
  const outDir = resolve(options.outDir);
  const profileDir = options.profile ? join(outDir, `profiles-${stamp}`) : undefined;
  const pinning = detectPinning(!options.pin);
  const placement = pinning.applied
    ? `servers on CPU ${pinning.serverCpus}, load generators on CPU ${pinning.loadCpus}`
    : `not pinned: ${pinning.reason}`;
  log(
    `nestjs-mtls bench: ${options.groups.join(', ')}; ${options.rounds} round(s) of ` +
      `${options.warmupMs} + ${options.durationMs} ms per case; ${placement}`,
  );

  const fixtures = await createFixtures();
  const servers = new Servers(fixtures, pinning, profileDir);
  let groups: Groups;
  let proxy: ProxyGroup | undefined;
  try {
    const context = { options, fixtures, pinning, servers, clockTicksPerSecond: clockTicksPerSecond() };
    groups = await runGroups(context);
    proxy = options.groups.includes('proxy') ? await proxyGroup(context) : undefined;
  } finally {
    await servers.stopAll();
    await fixtures.remove();
  }
  const profiles = profileDir === undefined ? undefined : await profileSummaries(profileDir, servers.served);

  const finishedAt = new Date();
  const machine: MachineInfo = {
    cpus: availableParallelism(),
    cpuModel: cpuModel(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    kernel: release(),
    loadAverageStart,
    loadAverageEnd: loadavg(),
    pinning,
  };
  const ratios = computeRatios(groups);
  if (groups.token !== undefined) {
    ratios['token.keepAlive.serverCpuUsPerRequest:mtls-token/mtls'] = groups.token.serverCpuRatio;
    ratios['token.keepAlive.serverCpuUsPerRequest:mtls-token-distinct/mtls'] = groups.token.distinctServerCpuRatio;
  }
  const results: BenchResults = {
    schema: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationS: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    machine,
    options,
    ...groups,
    ratios,
    floors: evaluateFloors(groups, ratios),
    profiles,
  };
  const markdown =
    renderMarkdown(results) +
    (groups.token === undefined ? '' : `\n${renderTokenGroup(groups.token)}`) +
    (groups.fastify === undefined ? '' : `\n${renderFastifyGroup(groups.fastify)}`) +
    (proxy === undefined ? '' : renderProxyMarkdown(proxy));
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, `bench-${stamp}`);
  await writeFile(`${base}.json`, `${JSON.stringify(proxy === undefined ? results : { ...results, proxy }, null, 2)}\n`);
  await writeFile(`${base}.md`, markdown);
  process.stdout.write(`${markdown}\n`);
  log(`results: ${base}.json, ${base}.md${profileDir === undefined ? '' : `; server profiles: ${profileDir}`}`);
}

main().catch((error: unknown) => {
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
