/**
 * A map that keeps its `capacity` most recently used entries: caches keyed by caller input (expected peers, origins)
 * must not grow with every distinct value a caller sends. Relies on Map iterating in insertion order.
 */
export class LruMap<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(
    /** Most entries kept; a `set` beyond it drops the least recently used one. */
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`LruMap capacity must be a whole number ≥ 1, got ${capacity}`);
    }
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key`, which becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  /** Stores `value` as the most recently used; returns the entry dropped to make room, if any. */
  set(key: K, value: V): [K, V] | undefined {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size <= this.capacity) return undefined;
    const oldest = this.#entries.entries().next().value as [K, V];
    this.#entries.delete(oldest[0]);
    return oldest;
  }
}
