import { parseArgs } from 'node:util';

/** The parts of the benchmark, run in this order. */
export const BENCH_GROUPS = [
  'server',
  'handshake',
  'client',
  'rotation',
  'admission',
  'token',
  'workload-api',
  'proxy',
  'fastify',
] as const;

/** One part of the benchmark. */
export type BenchGroup = (typeof BENCH_GROUPS)[number];

/** Settings of one run. */
export interface BenchOptions {
  /** Interleaved rounds: every case of a group runs once per round. */
  readonly rounds: number;
  /** Load before each measured window, discarded. */
  readonly warmupMs: number;
  /** Measured window of each case. */
  readonly durationMs: number;
  /** Requests in flight, keep-alive cases. */
  readonly concurrency: number;
  /** Connections being opened at once, handshake cases. */
  readonly handshakeConcurrency: number;
  /** Kubernetes-style swaps timed until the new certificate is served. */
  readonly rotations: number;
  /** Reloads between the two RSS readings. */
  readonly reloads: number;
  readonly groups: readonly BenchGroup[];
  /** Where the JSON and Markdown results go. */
  readonly outDir: string;
  /** Run the servers with `--cpu-prof` (profiles land next to the results). */
  readonly profile: boolean;
  /** Pin servers and load generators to separate CPUs with taskset. */
  readonly pin: boolean;
}

/** The full run: about five minutes on two cores. */
export const DEFAULT_BENCH_OPTIONS: BenchOptions = {
  rounds: 3,
  warmupMs: 1_000,
  durationMs: 3_000,
  concurrency: 16,
  handshakeConcurrency: 8,
  rotations: 50,
  reloads: 1_000,
  groups: BENCH_GROUPS,
  outDir: 'bench/results',
  profile: false,
  pin: true,
};

/** Usage text for `--help`. */
export const BENCH_USAGE = `Usage: npm run bench -- [options]
Each option can also be set as BENCH_<NAME> (BENCH_ROUNDS=5, BENCH_NO_PIN=1); a flag wins over the variable.
  --rounds <n>                 interleaved rounds (default ${DEFAULT_BENCH_OPTIONS.rounds}, at least 1)
  --warmup-ms <ms>             discarded load before each window (default ${DEFAULT_BENCH_OPTIONS.warmupMs})
  --duration-ms <ms>           measured window per case (default ${DEFAULT_BENCH_OPTIONS.durationMs})
  --concurrency <n>            keep-alive requests in flight (default ${DEFAULT_BENCH_OPTIONS.concurrency})
  --handshake-concurrency <n>  connections opened at once (default ${DEFAULT_BENCH_OPTIONS.handshakeConcurrency})
  --rotations <n>              timed certificate rotations (default ${DEFAULT_BENCH_OPTIONS.rotations})
  --reloads <n>                reloads between the RSS readings (default ${DEFAULT_BENCH_OPTIONS.reloads})
  --groups <list>              comma-separated subset of ${BENCH_GROUPS.join(',')}
  --out <dir>                  results directory (default ${DEFAULT_BENCH_OPTIONS.outDir})
  --profile                    run servers with --cpu-prof, profiles in <out>/profiles-<timestamp>/
  --no-pin                     do not pin processes to CPUs`;

const NUMERIC = {
  rounds: { flag: 'rounds', min: 1 },
  warmupMs: { flag: 'warmup-ms', min: 0 },
  durationMs: { flag: 'duration-ms', min: 50 },
  concurrency: { flag: 'concurrency', min: 1 },
  handshakeConcurrency: { flag: 'handshake-concurrency', min: 1 },
  rotations: { flag: 'rotations', min: 1 },
  reloads: { flag: 'reloads', min: 1 },
} as const;

function envName(flag: string): string {
  return `BENCH_${flag.toUpperCase().replaceAll('-', '_')}`;
}

/** Reads the options from command-line flags, then `BENCH_*` variables, then the defaults. Throws on a bad value. */
export function parseBenchOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): BenchOptions & { help: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...Object.fromEntries(Object.values(NUMERIC).map(({ flag }) => [flag, { type: 'string' as const }])),
      groups: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'boolean' },
      'no-pin': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  const raw = (flag: string): string | undefined => {
    const value = values[flag as keyof typeof values];
    return typeof value === 'string' ? value : env[envName(flag)];
  };
  const numbers = Object.fromEntries(
    Object.entries(NUMERIC).map(([key, { flag, min }]) => {
      const text = raw(flag);
      if (text === undefined) return [key, DEFAULT_BENCH_OPTIONS[key as keyof typeof NUMERIC]];
      const value = Number(text);
      if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
        throw new Error(`--${flag} (or ${envName(flag)}) must be a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
      }
      return [key, value];
    }),
  ) as Pick<BenchOptions, keyof typeof NUMERIC>;
  const groupsText = raw('groups');
  let groups: readonly BenchGroup[] = DEFAULT_BENCH_OPTIONS.groups;
  if (groupsText !== undefined) {
    const names = groupsText
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    const unknown = names.filter((name) => !(BENCH_GROUPS as readonly string[]).includes(name));
    if (names.length === 0 || unknown.length > 0) {
      throw new Error(
        `--groups (or BENCH_GROUPS) takes a comma-separated subset of ${BENCH_GROUPS.join(',')}, ` +
          `got ${JSON.stringify(groupsText)}`,
      );
    }
    // Always in the canonical order: the client group reuses server (a) from the server groups when they run.
    groups = BENCH_GROUPS.filter((group) => names.includes(group));
  }
  const flag = (name: 'profile' | 'no-pin'): boolean => values[name] === true || env[envName(name)] === '1';
  return {
    ...numbers,
    groups,
    outDir: raw('out') ?? DEFAULT_BENCH_OPTIONS.outDir,
    profile: flag('profile'),
    pin: !flag('no-pin'),
    help: values.help === true,
  };
}
