/** The median and spread of one metric over the rounds of a case. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** One value per round, in round order. */
  readonly values: readonly number[];
}

/** Median and min–max of `values` (NaN for no values; NaN values are left out). */
export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((value) => !Number.isNaN(value));
  const sorted = [...finite].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? Number.NaN : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { median, min: sorted[0] ?? Number.NaN, max: sorted[n - 1] ?? Number.NaN, values: [...values] };
}

/** `a / b`, or NaN when either is missing or `b` is zero. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN;
}

/** Nearest-rank percentile of unsorted samples (NaN for none). */
export function percentile(samples: ArrayLike<number>, p: number): number {
  const n = samples.length;
  if (n === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sorted[rank - 1]!;
}

/** Collects latency samples without per-sample allocation. */
export class LatencyRecorder {
  #samples = new Float64Array(1 << 14);
  #length = 0;

  /** Records one sample (ms). */
  add(ms: number): void {
    if (this.#length === this.#samples.length) {
      const grown = new Float64Array(this.#samples.length * 2);
      grown.set(this.#samples);
      this.#samples = grown;
    }
    this.#samples[this.#length++] = ms;
  }

  /** Nearest-rank percentile of the samples so far. */
  percentile(p: number): number {
    return percentile(this.#samples.subarray(0, this.#length), p);
  }
}
