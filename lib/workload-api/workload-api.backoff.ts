/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** First delay. @default 1_000 */
  readonly initialMs?: number;
  /** Longest delay. @default 30_000 */
  readonly maxMs?: number;
  /** Source of randomness in [0, 1), for tests. @default Math.random */
  readonly random?: () => number;
}

/**
 * Exponential backoff with full jitter (each delay uniform in [base/2, base], base doubling up to `maxMs`): after an
 * agent restart, every workload on the node reconnects at once, and jitter spreads them out. `reset()` when a message
 * arrives: a stream that worked is not a failing one.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #baseMs: number;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 1_000;
    this.#maxMs = Math.max(options.maxMs ?? 30_000, this.#initialMs);
    this.#random = options.random ?? Math.random;
    this.#baseMs = this.#initialMs;
  }

  /** The next delay, in ms. */
  next(): number {
    const base = this.#baseMs;
    this.#baseMs = Math.min(base * 2, this.#maxMs);
    return Math.round(base / 2 + (base / 2) * this.#random());
  }

  /** Back to the first delay. */
  reset(): void {
    this.#baseMs = this.#initialMs;
  }
}
