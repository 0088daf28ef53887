import { Backoff, type BackoffOptions } from './workload-api.backoff.js';
import { GrpcStatus, type CallEnd, type StreamCall, type WorkloadApiTransport } from './workload-api.transport.js';

/** What a watcher reports about its stream, for health and logs. */
export interface StreamWatchState {
  /** True while a call is open and has delivered at least one message. */
  readonly connected: boolean;
  /** The last way the stream ended abnormally, until the next message. */
  readonly lastError: CallEnd | undefined;
  /** Set once the watcher gave up for good (`InvalidArgument`). */
  readonly failed: CallEnd | undefined;
  /** Messages received since start. */
  readonly messages: number;
}

/** Options of {@link StreamWatcher}. */
export interface StreamWatcherOptions {
  readonly transport: WorkloadApiTransport;
  readonly method: string;
  readonly request: Buffer;
  /** A message arrived (the full state). Throwing here does not end the stream. */
  readonly onMessage: (message: Buffer) => void;
  /** The stream ended and will be retried after `retryInMs`. */
  readonly onRetry?: (end: CallEnd, retryInMs: number) => void;
  /** The stream ended for good: the server said the request is invalid. */
  readonly onFatal?: (end: CallEnd) => void;
  readonly backoff?: BackoffOptions;
}

/**
 * Keeps one server-streaming Workload API call open: reconnects when it ends or fails, with exponential backoff and
 * jitter reset by every message. `InvalidArgument` means the request itself is wrong (e.g. the metadata header is
 * missing): retrying cannot help, so the watcher stops and reports it. `PermissionDenied` is retried: the workload may
 * not be registered *yet* (SPIRE entries propagate to the agent after the pod starts).
 */
export class StreamWatcher {
  readonly #options: StreamWatcherOptions;
  readonly #backoff: Backoff;
  #call: StreamCall | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #connected = false;
  #lastError: CallEnd | undefined;
  #failed: CallEnd | undefined;
  #messages = 0;

  constructor(options: StreamWatcherOptions) {
    this.#options = options;
    this.#backoff = new Backoff(options.backoff);
  }

  /** The stream's state now. */
  get state(): StreamWatchState {
    return { connected: this.#connected, lastError: this.#lastError, failed: this.#failed, messages: this.#messages };
  }

  /** Opens the stream. */
  start(): void {
    if (this.#stopped || this.#call !== undefined || this.#failed !== undefined) return;
    const call = this.#options.transport.stream(this.#options.method, this.#options.request, {
      onMessage: (message) => {
        if (this.#stopped || this.#call !== call) return;
        this.#connected = true;
        this.#lastError = undefined;
        this.#messages++;
        this.#backoff.reset();
        this.#options.onMessage(message);
      },
      onEnd: (end) => this.#onEnd(call, end),
    });
    this.#call = call;
  }

  /** Cancels the stream and any pending retry. Idempotent. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const call = this.#call;
    this.#call = undefined;
    this.#connected = false;
    call?.cancel();
  }

  #onEnd(call: StreamCall, end: CallEnd): void {
    if (this.#call !== call) return;
    this.#call = undefined;
    this.#connected = false;
    if (this.#stopped) return;
    // A clean end is not an error, but the state is no longer streaming: reconnect all the same.
    this.#lastError = end;
    if (end.code === GrpcStatus.INVALID_ARGUMENT) {
      this.#failed = end;
      this.#options.onFatal?.(end);
      return;
    }
    const delay = this.#backoff.next();
    this.#options.onRetry?.(end, delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.start();
    }, delay).unref();
  }
}
