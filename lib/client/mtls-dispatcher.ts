import { Dispatcher } from 'undici';
import { MtlsError, UpstreamError } from '../errors/mtls.errors.js';
import type { UpstreamExpectation } from './upstream-identity.js';
import type { UpstreamRegistry } from './upstream-registry.js';
import type { ClientGenerations } from './client-generation.js';

/**
 * An undici Dispatcher for `fetch(url, { dispatcher })` and undici's own API, backed by the client's pools: every
 * dispatch goes to the current credential generation, so it follows rotation. It owns no connection; `close()` and
 * `destroy()` only stop this dispatcher, the connections close with the client.
 */
export class MtlsDispatcher extends Dispatcher {
  #closed = false;

  /** @internal Built by `MtlsHttpClient.dispatcher()`. */
  constructor(
    private readonly generations: ClientGenerations,
    private readonly registry: UpstreamRegistry,
    /** Fixed expectation, or undefined to derive it from each request's origin. */
    private readonly expectation: UpstreamExpectation | undefined,
  ) {
    super();
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const given = options?.origin;
    let origin: string | undefined;
    try {
      // Canonical (`https://host:port` as URL.origin writes it), so that it finds its named upstream and its pool.
      origin = given === undefined ? undefined : new URL(given).origin;
    } catch {
      origin = undefined;
    }
    const generation = this.#closed ? undefined : this.generations.current;
    if (generation === undefined) {
      return refuse(handler, `the mTLS client is closed; nothing was sent to ${origin ?? 'the upstream'}`, origin);
    }
    if (origin === undefined || !origin.startsWith('https://')) {
      const shown = typeof given === 'string' ? JSON.stringify(given) : String(given);
      return refuse(handler, `the mTLS dispatcher only reaches https:// origins, got ${shown}; nothing was sent`, origin);
    }
    try {
      const expectation =
        this.expectation ?? this.registry.expectation(undefined, origin, 'MtlsHttpClient.dispatcher() without expectPeer');
      return generation.pool(origin, expectation, this.registry.label(origin)).pool.dispatch(options, handler);
    } catch (error) {
      // undici's contract: a dispatcher reports failures through the handler, it does not throw.
      const reason = error instanceof Error ? error.message : String(error);
      return refuse(handler, `cannot dispatch to ${origin}: ${reason}`, origin, error);
    }
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    if (callback === undefined) return Promise.resolve();
    queueMicrotask(callback);
  }

  override destroy(): Promise<void>;
  override destroy(error: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const done = typeof errorOrCallback === 'function' ? errorOrCallback : callback;
    if (done === undefined) return Promise.resolve();
    queueMicrotask(done);
  }
}

/** Fails a dispatch the way undici does: through the handler, whichever of its two APIs it implements. */
function refuse(handler: Dispatcher.DispatchHandler, message: string, origin: string | undefined, cause?: unknown): false {
  const error =
    cause instanceof MtlsError
      ? cause
      : new UpstreamError(
          'ERR_MTLS_UPSTREAM_REQUEST',
          message,
          { upstream: origin ?? 'unknown' },
          cause === undefined ? undefined : { cause },
        );
  if (handler.onResponseError !== undefined) handler.onResponseError(undefined as never, error);
  else if (handler.onError !== undefined) handler.onError(error);
  else throw error;
  return false;
}
