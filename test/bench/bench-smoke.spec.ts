import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults, CaseResult } from '../../bench/bench-results.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], cwd: string): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Compiles bench/ and what it imports into `dir`, without type checking (`npm test` type-checks the sources): the
 * benchmark forks compiled servers and load generators, so it cannot run from the TypeScript sources.
 */
async function buildBench(dir: string): Promise<string> {
  const out = join(dir, 'out');
  const tsconfig = join(dir, 'tsconfig.json');
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: join(root, 'tsconfig.build.json'),
      compilerOptions: {
        outDir: out,
        rootDir: root,
        noCheck: true,
        declaration: false,
        sourceMap: false,
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      include: [join(root, 'bench')],
    }),
  );
  const build = await run([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], root);
  if (build.code !== 0) throw new Error(`tsc failed:\n${build.stdout}${build.stderr}`);
  // ESM like the package, resolving the package's own dependencies.
  await writeFile(join(out, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
  return join(out, 'bench', 'run.js');
}

const SERVER_CASES = ['raw', 'nest', 'mtls', 'naive', 'any-guard'];
const HANDSHAKE_CASES = ['raw', 'nest', 'mtls'];
const CLIENT_CASES = [
  'undici-pool',
  'undici-dispatch',
  'mtls-client',
  'mtls-upstream',
  'https-agent',
  'mtls-https-agent',
  'undici-fetch',
  'mtls-fetch',
];
const FLOORS = [
  'guard-cpu-keep-alive',
  'guard-handshake-full',
  'guard-handshake-resumed',
  'client-throughput',
  'rotation-p99',
  'reload-rss-growth',
];
const SUMMARY_KEYS = ['requestsPerSecond', 'serverCpuUsPerRequest', 'clientCpuUsPerRequest', 'p50Ms', 'p99Ms'] as const;

function expectCases(cases: Readonly<Record<string, CaseResult>> | undefined, names: readonly string[]): void {
  expect(Object.keys(cases ?? {})).toEqual(names);
  for (const name of names) {
    const result = cases![name]!;
    expect(result.rounds, name).toHaveLength(1);
    // A window this short may complete no request on a busy machine; any failed request is a bug.
    const { errors, firstError } = result.summary;
    expect({ name, errors, firstError }).toEqual({ name, errors: 0, firstError: undefined });
    for (const key of SUMMARY_KEYS) {
      expect(Object.keys(result.summary[key]).sort(), `${name}.${key}`).toEqual(['max', 'median', 'min', 'values']);
      expect(result.summary[key].values, `${name}.${key}`).toHaveLength(1);
    }
  }
}

/** One tiny run of the bench: its exit, output and files. */
interface SmokeRun {
  readonly finished: Finished;
  readonly results: BenchResults;
  readonly markdown: string;
}

async function smokeRun(script: string, outDir: string, groups: string): Promise<SmokeRun> {
  const finished = await run(
    [
      script,
      `--groups=${groups}`,
      '--rounds=1',
      '--warmup-ms=0',
      '--duration-ms=100',
      '--concurrency=4',
      '--handshake-concurrency=2',
      '--rotations=2',
      '--reloads=5',
      '--no-pin',
      `--out=${outDir}`,
    ],
    root,
  );
  if (finished.code !== 0) throw new Error(`the bench (${groups}) exited with ${String(finished.code)}:\n${finished.stderr}`);
  const files = (await readdir(outDir)).sort();
  expect(files).toHaveLength(2);
  expect(files[0]).toMatch(/^bench-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
  expect(files[1]).toBe(files[0]!.replace(/\.json$/, '.md'));
  return {
    finished,
    results: JSON.parse(await readFile(join(outDir, files[0]!), 'utf8')) as BenchResults,
    markdown: await readFile(join(outDir, files[1]!), 'utf8'),
  };
}

describe('npm run bench, in a tiny configuration', () => {
  let work: string;
  // Two halves side by side: each run is mostly one process at a time, and this machine has two cores.
  let servers: SmokeRun;
  let clients: SmokeRun;
  let fastify: SmokeRun;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'nestjs-mtls-bench-smoke-'));
    const script = await buildBench(work);
    [servers, clients, fastify] = await Promise.all([
      smokeRun(script, join(work, 'servers'), 'server,handshake'),
      smokeRun(script, join(work, 'clients'), 'client,rotation'),
      smokeRun(script, join(work, 'fastify'), 'fastify'),
    ]);
    // Generous: three tiny runs on a shared 2-core machine.
  }, 240_000);

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('writes each group of the JSON with one round per case and no failed request', () => {
    for (const { results } of [servers, clients]) {
      expect(results.schema).toBe(1);
      expect(results.options).toMatchObject({ rounds: 1, durationMs: 100, pin: false });
      expect(results.machine).toMatchObject({
        node: process.version,
        pinning: { applied: false, reason: 'disabled with --no-pin' },
      });
      expect(results.machine.cpus).toBeGreaterThanOrEqual(1);
      expect(results.machine.cpuModel).not.toBe('');
    }
    expect(servers.results.options.groups).toEqual(['server', 'handshake']);
    expect(clients.results.options.groups).toEqual(['client', 'rotation']);
    expectCases(servers.results.server?.keepAlive, SERVER_CASES);
    expectCases(servers.results.handshake?.full, HANDSHAKE_CASES);
    expectCases(servers.results.handshake?.resumed, HANDSHAKE_CASES);
    expect(servers.results.handshake?.resumed.mtls.summary.resumedFraction).toBeDefined();
    expectCases(clients.results.client, CLIENT_CASES);
    expect(servers.results.client).toBeUndefined();
    expect(clients.results.server).toBeUndefined();
  });

  it('runs the Fastify and HTTP/2 group: every case served, its ratios and checks computed, its section printed', () => {
    const group = fastify.results.fastify;
    expect(fastify.results.options.groups).toEqual(['fastify']);
    expectCases(group?.keepAlive, ['raw', 'fastify', 'fastify-mtls']);
    expectCases(group?.handshake, ['fastify', 'fastify-mtls']);
    expectCases(group?.protocol, ['h1-keep-alive', 'h2-multiplexed']);
    expectCases(group?.client, ['mtls-client', 'mtls-client-h2']);
    expect(Object.keys(group?.ratios ?? {})).toEqual(
      expect.arrayContaining([
        'serverCpu:fastify-mtls/fastify',
        'handshakesPerSecond:fastify-mtls/fastify',
        'serverCpu:fastify-mtls/raw',
      ]),
    );
    expect(group?.checks.map((check) => check.bound)).toEqual(['≤ 1.05 (floor)', '≥ 0.95 (floor)', '≤ 1.2 (goal)']);
    expect(fastify.markdown).toContain('## Fastify and HTTP/2');
    expect(fastify.finished.stdout).toBe(`${fastify.markdown}\n`);
    expect(servers.results.fastify).toBeUndefined();
    expect(clients.results.fastify).toBeUndefined();
  });

  it('times the rotations and measures memory around the reloads', () => {
    const { rotation, memory } = clients.results;
    expect(rotation).toMatchObject({ rotations: 2, timeouts: 0, debounceMs: 250 });
    expect(rotation?.latenciesMs).toHaveLength(2);
    expect(rotation?.p99Ms).toBeGreaterThan(0);
    // Every reload installs a set other than the one served.
    expect(memory).toMatchObject({ reloads: 5, versionsAdvanced: 5, clientFailures: 0 });
    expect(memory?.rssBeforeBytes).toBeGreaterThan(0);
    expect(memory?.rssGrowthBytes).toBe(memory!.rssAfterBytes - memory!.rssBeforeBytes);
  });

  it('evaluates every floor of the issue, each in the run of its group', () => {
    const verdicts = (results: BenchResults): Record<string, string> =>
      Object.fromEntries(results.floors.map((floor) => [floor.id, floor.pass === undefined ? 'not run' : 'evaluated']));
    expect(servers.results.floors.map((floor) => floor.id)).toEqual(FLOORS);
    expect(verdicts(servers.results)).toEqual({
      'guard-cpu-keep-alive': 'evaluated',
      'guard-handshake-full': 'evaluated',
      'guard-handshake-resumed': 'evaluated',
      'client-throughput': 'not run',
      'rotation-p99': 'not run',
      'reload-rss-growth': 'not run',
    });
    expect(verdicts(clients.results)).toEqual({
      'guard-cpu-keep-alive': 'not run',
      'guard-handshake-full': 'not run',
      'guard-handshake-resumed': 'not run',
      'client-throughput': 'evaluated',
      'rotation-p99': 'evaluated',
      'reload-rss-growth': 'evaluated',
    });
    expect(Object.keys(servers.results.ratios)).toEqual(
      expect.arrayContaining([
        'keepAlive.serverCpuUsPerRequest:mtls/nest',
        'keepAlive.serverCpuUsPerRequest:naive/nest',
        'keepAlive.serverCpuUsPerRequest:any-guard/nest',
        'handshake.full.requestsPerSecond:mtls/nest',
        'handshake.resumed.requestsPerSecond:mtls/nest',
      ]),
    );
    expect(Object.keys(clients.results.ratios)).toEqual(
      expect.arrayContaining([
        'client.requestsPerSecond:mtls-client/undici-pool',
        'client.requestsPerSecond:mtls-client/undici-dispatch',
      ]),
    );
  });

  it('prints the Markdown tables it writes, with the floors and their verdicts', () => {
    for (const { finished, markdown } of [servers, clients]) {
      expect(finished.stdout).toBe(`${markdown}\n`);
      expect(markdown).toContain('### Floors (issue 5)');
      expect(markdown.split('\n').filter((line) => /\| \*\*(PASS|MISS)\*\* \|$/.test(line))).toHaveLength(3);
      expect(markdown.split('\n').filter((line) => line.endsWith('| not run |'))).toHaveLength(3);
      expect(finished.stderr).toMatch(/results: .+\.json, .+\.md/);
    }
    expect(servers.markdown).toContain('### Server, keep-alive');
    expect(servers.markdown).toContain('### Server, one new TLS connection per request');
    expect(servers.markdown).toContain('| Server | req/s | server CPU µs/req | CPU vs (b) | p50 ms | p99 ms |');
    expect(servers.markdown).toContain('| (c) Nest + MtlsModule, @AllowPeers |');
    expect(clients.markdown).toContain('### Client, keep-alive, against server (a)');
    expect(clients.markdown).toContain('| MtlsHttpClient.get(url, { expectPeer }) |');
    expect(clients.markdown).toContain('### Certificate rotation and reload memory');
  });
});
