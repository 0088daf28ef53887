/**
 * Admits at most `limit` items per window and counts the rest, so that a flood of bad handshakes
 * or denied requests cannot fill the disk. Fixed window: cheap and predictable.
 */
export class LogRateLimiter {
  #windowStart = 0;
  #admitted = 0;
  #suppressed = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Returns `undefined` when the item must not be logged; otherwise the number of items suppressed
   * since the last admitted one (0 most of the time), to be mentioned in the line that is logged.
   */
  admit(): number | undefined {
    const now = this.now();
    if (now - this.#windowStart >= this.windowMs) {
      this.#windowStart = now;
      this.#admitted = 0;
    }
    if (this.#admitted >= this.limit) {
      this.#suppressed++;
      return undefined;
    }
    this.#admitted++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}

/**
 * A logger's warnings through a {@link LogRateLimiter}: lines over the limit are dropped and counted, and the next line
 * logged says how many were, as `(N similar lines suppressed)`.
 */
export class RateLimitedLogger {
  readonly #limiter: LogRateLimiter;

  constructor(
    private readonly logger: { warn(message: string): unknown },
    limitPerMinute: number,
    now: () => number = Date.now,
  ) {
    this.#limiter = new LogRateLimiter(limitPerMinute, 60_000, now);
  }

  /** Logs `line()` as a warning unless over the limit; `line` is not even built then (a flood costs no strings). */
  warn(line: () => string): void {
    this.admit()?.(line());
  }

  /**
   * Takes one line's place under the limit before its text is known (for a line whose inputs must be read early):
   * a function that logs it, or undefined when over the limit.
   */
  admit(): ((line: string) => void) | undefined {
    const suppressed = this.#limiter.admit();
    if (suppressed === undefined) return undefined;
    const more = suppressed > 0 ? ` (${suppressed} similar lines suppressed)` : '';
    return (line) => this.logger.warn(`${line}${more}`);
  }
}
