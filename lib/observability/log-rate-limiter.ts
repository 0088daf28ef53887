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
