/**
 * Deadlines of many items under one timer: items are grouped by deadline (peers' connections share their
 * certificate's notAfter), the distinct deadlines sit in a min-heap, and a single timer waits for the earliest.
 * Adding and removing an item is a Map and Set operation; a timer per connection would cost a timer allocation and
 * a list insertion in libuv for every connection instead (measured in bench/recheck.ts).
 */
export class DeadlineSchedule<T> {
  readonly #buckets = new Map<number, Set<T>>();
  /** Distinct deadlines, min-heap; an emptied bucket's deadline stays until it is reached. */
  readonly #heap: number[] = [];
  readonly #onDue: (items: readonly T[]) => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;

  /** `onDue` receives the items whose deadline has passed, once each. */
  constructor(onDue: (items: readonly T[]) => void, now: () => number = Date.now) {
    this.#onDue = onDue;
    this.#now = now;
  }

  /** Items scheduled. */
  get size(): number {
    let size = 0;
    for (const bucket of this.#buckets.values()) size += bucket.size;
    return size;
  }

  /** Schedules `item` for `deadline` (epoch ms). */
  add(item: T, deadline: number): void {
    let bucket = this.#buckets.get(deadline);
    if (bucket === undefined) {
      bucket = new Set();
      this.#buckets.set(deadline, bucket);
      push(this.#heap, deadline);
    }
    bucket.add(item);
    if (deadline < this.#armedFor) this.#arm();
  }

  /** Unschedules `item` (scheduled for `deadline`); the timer stops once nothing is scheduled. */
  delete(item: T, deadline: number): void {
    const bucket = this.#buckets.get(deadline);
    if (bucket === undefined) return;
    bucket.delete(item);
    if (bucket.size === 0) this.#buckets.delete(deadline);
    // Nothing left to report: no timer waits (one would outlive every item, until its deadline, months away).
    if (this.#buckets.size === 0) {
      this.#heap.length = 0;
      this.stop();
    }
  }

  /** Stops the timer; scheduled items stay and are not reported. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    // Deadlines of buckets emptied since they were scheduled are skipped here.
    while (this.#heap.length > 0 && !this.#buckets.has(this.#heap[0]!)) pop(this.#heap);
    const next = this.#heap[0];
    if (next === undefined) {
      this.#timer = undefined;
      this.#armedFor = Infinity;
      return;
    }
    this.#armedFor = next;
    // setTimeout holds at most 2^31−1 ms; a later deadline re-arms when that fires. +1: fire once it has passed.
    const delay = Math.min(Math.max(next - this.#now() + 1, 0), 0x7fffffff);
    this.#timer = setTimeout(() => this.#fire(), delay).unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#now();
    const due: T[] = [];
    while (this.#heap.length > 0 && this.#heap[0]! < now) {
      const deadline = pop(this.#heap);
      const bucket = this.#buckets.get(deadline);
      if (bucket === undefined) continue;
      this.#buckets.delete(deadline);
      for (const item of bucket) due.push(item);
    }
    this.#arm();
    if (due.length > 0) this.#onDue(due);
  }
}

function push(heap: number[], value: number): void {
  heap.push(value);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function pop(heap: number[]): number {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]! < heap[left]! ? right : left;
      if (heap[child]! >= last) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
  return top;
}
