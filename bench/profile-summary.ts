// With --profile, the servers run under --cpu-prof; this turns each profile into "where the CPU went while serving":
// the share of busy time by code area, and the inclusive share of the guard and of every nestjs-mtls function.

/** The parts of a `.cpuprofile` this reads (Chrome DevTools Protocol `Profiler.Profile`). */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }>;
  /** µs, on the clock of `process.hrtime()`. */
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a sample's own (self) time is spent. */
export const PROFILE_AREAS = [
  'nestjs-mtls',
  'Nest',
  'Express & middleware',
  'other packages',
  'Node.js',
  'native & GC',
  'bench',
] as const;

/** One code area. */
export type ProfileArea = (typeof PROFILE_AREAS)[number];

/** One server's profile, from its readiness to the stop request. */
export interface ProfileSummary {
  readonly variant: string;
  /** Sampled time that was not idle. */
  readonly busyMs: number;
  /** Share of busy time by the area of the innermost frame (self time). */
  readonly areas: Readonly<Record<ProfileArea, number>>;
  /** Inclusive share of busy time of the guard frames and of each nestjs-mtls function, largest first. */
  readonly frames: ReadonlyArray<{ readonly name: string; readonly share: number }>;
}

const EXPRESS_PACKAGES = new Set(
  (
    'express router body-parser finalhandler send serve-static on-finished mime-types mime-db etag fresh qs ' +
    'type-is content-type raw-body iconv-lite path-to-regexp parseurl accepts negotiator vary cookie depd debug ' +
    'http-errors statuses encodeurl escape-html merge-descriptors safe-buffer setprototypeof ee-first forwarded ' +
    'proxy-addr range-parser'
  ).split(' '),
);

/** The package a URL under node_modules belongs to (`@scope/name` or `name`). */
function packageOf(url: string): string | undefined {
  return /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
}

function area(url: string, functionName: string): ProfileArea {
  if (url === '') return 'native & GC';
  if (url.startsWith('node:')) return 'Node.js';
  const pkg = packageOf(url);
  if (pkg !== undefined) {
    if (/^(@nestjs\/|rxjs$|tslib$|reflect-metadata$|iterare$)/.test(pkg)) return 'Nest';
    return EXPRESS_PACKAGES.has(pkg) ? 'Express & middleware' : 'other packages';
  }
  if (/\/lib\/[^/]/.test(url) && !url.includes('/node_modules/')) return 'nestjs-mtls';
  if (url.includes('/bench/')) return 'bench';
  return functionName.startsWith('(') ? 'native & GC' : 'Node.js';
}

/** The frames whose inclusive time is reported: Nest's guard phase and every function of nestjs-mtls and the bench. */
function reportedFrame(url: string, functionName: string, lineNumber: number): string | undefined {
  if (functionName === 'tryActivate' && url.includes('@nestjs/core/guards/')) {
    return "Nest's guard phase (GuardsConsumer.tryActivate, incl. the guard)";
  }
  if (url.includes('/node_modules/')) return undefined;
  const file = /\/((?:lib|bench)\/.+)$/.exec(url)?.[1];
  if (file === undefined) return undefined;
  return `${functionName === '' ? '(anonymous)' : functionName} (${file}:${lineNumber + 1})`;
}

/** Summarises the samples taken between `fromUs` and `toUs` (`process.hrtime()` in µs: readiness and stop). */
export function summarizeProfile(variant: string, profile: CpuProfile, fromUs: number, toUs: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  let time = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    // A sample's delta is the time since the previous one: attribute it to this sample.
    if (time < fromUs || time > toUs) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const areas = Object.fromEntries(PROFILE_AREAS.map((name) => [name, 0])) as Record<ProfileArea, number>;
  const inclusive = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') continue;
    busy += us;
    areas[area(node.callFrame.url, node.callFrame.functionName)] += us;
    // Recursion must not count a sample twice for one frame.
    const counted = new Set<string>();
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const { url, functionName, lineNumber } = byId.get(current)!.callFrame;
      const name = reportedFrame(url, functionName, lineNumber);
      if (name === undefined || counted.has(name)) continue;
      counted.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  const share = (us: number): number => (busy === 0 ? Number.NaN : us / busy);
  return {
    variant,
    busyMs: busy / 1000,
    areas: Object.fromEntries(PROFILE_AREAS.map((name) => [name, share(areas[name])])) as Record<ProfileArea, number>,
    frames: [...inclusive].map(([name, us]) => ({ name, share: share(us) })).sort((a, b) => b.share - a.share),
  };
}
