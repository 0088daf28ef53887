const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

const UNITS: ReadonlyArray<readonly [suffix: string, ms: number]> = [
  ['d', DAY_MS],
  ['h', HOUR_MS],
  ['m', MINUTE_MS],
  ['s', SECOND_MS],
];

// Units in decreasing order, each at most once: `90m` and `1h30m` are fine, `30m1h` and `1.5h` are not.
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Parses a duration such as `24h`, `90m`, `7d` or `1h30m` into milliseconds. Returns `undefined` for anything else,
 * including a bare number (seconds or hours? the reader cannot tell) and zero.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (match === null || text === '') {
    return undefined;
  }
  let total = 0;
  for (const [index, [, unitMs]] of UNITS.entries()) {
    const amount = match[index + 1];
    if (amount !== undefined) {
      total += Number(amount) * unitMs;
    }
  }
  return Number.isSafeInteger(total) && total > 0 ? total : undefined;
}

/**
 * Formats a length of time with its two largest units, e.g. `23h59m`, `2d4h`, `4m10s`, rounded to the second; a
 * negative length keeps its sign (`-5m0s`: an expired certificate's time left).
 */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(Math.round(ms / SECOND_MS));
  const days = Math.floor(rest / (DAY_MS / SECOND_MS));
  rest -= days * (DAY_MS / SECOND_MS);
  const hours = Math.floor(rest / (HOUR_MS / SECOND_MS));
  rest -= hours * (HOUR_MS / SECOND_MS);
  const minutes = Math.floor(rest / (MINUTE_MS / SECOND_MS));
  const seconds = rest - minutes * (MINUTE_MS / SECOND_MS);
  if (days > 0) return `${sign}${days}d${hours}h`;
  if (hours > 0) return `${sign}${hours}h${minutes}m`;
  return `${sign}${minutes}m${seconds}s`;
}
