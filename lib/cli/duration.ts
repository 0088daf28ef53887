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

/** Formats a length of time with its two largest units, e.g. `23h 59m`, `2d 4h`, `45s`; the sign is dropped. */
export function formatDuration(ms: number): string {
  let rest = Math.floor(Math.abs(ms) / SECOND_MS) * SECOND_MS;
  const parts: string[] = [];
  for (const [suffix, unitMs] of UNITS) {
    const amount = Math.floor(rest / unitMs);
    rest -= amount * unitMs;
    if (amount > 0 || parts.length > 0) {
      parts.push(`${amount}${suffix}`);
    }
    if (parts.length === 2) {
      break;
    }
  }
  // `1h 0m` reads worse than `1h`.
  const shown = parts.length === 2 && parts[1]!.startsWith('0') ? parts.slice(0, 1) : parts;
  return shown.length === 0 ? '0s' : shown.join(' ');
}
