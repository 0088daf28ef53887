import { watch, type FSWatcher } from 'chokidar';
import { open } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { SECRET_DATA_LINK } from '../credentials/secret-layout.js';
import { MtlsConfigError, MtlsError } from '../errors/mtls.errors.js';
import type { ReloadLogger } from '../credentials/credentials-reloader.js';
import { importKeySet, MAX_JWKS_BYTES, type JwksKeySet } from './jwks-key-set.js';
import type { KeySource } from './token-verifier.js';
import type { TokenAlgorithm } from './tokens.options.js';

/** Options of {@link JwksFileSource}. */
export interface JwksFileSourceOptions {
  /** The issuer's configured name, for logs. */
  readonly issuer: string;
  readonly file: string;
  readonly algorithms: readonly TokenAlgorithm[] | undefined;
  /** As the credentials' `reload` options. */
  readonly debounceMs: number;
  readonly pollIntervalMs: number;
  readonly maxRetryDelayMs: number;
  readonly logger: ReloadLogger;
  /** Told of every installed and every refused document. */
  readonly onChange?:
    ((change: { readonly result: 'rotated' | 'refused'; readonly error?: MtlsConfigError }) => void) | undefined;
}

/** Reads at most {@link MAX_JWKS_BYTES} + 1 bytes: a huge file is refused without being read whole. */
async function readBounded(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(MAX_JWKS_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/** Reads and imports the document at `file`; throws MtlsConfigError `ERR_MTLS_JWKS_INVALID` naming the file and the fix. */
export async function loadJwksFile(file: string, algorithms: readonly TokenAlgorithm[] | undefined): Promise<JwksKeySet> {
  let bytes: Buffer;
  try {
    bytes = await readBounded(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new MtlsConfigError(
      'ERR_MTLS_JWKS_INVALID',
      `${file}: cannot be read (${code}). Fix: write the issuer's JWKS there, readable by this process`,
    );
  }
  return importKeySet(bytes, file, algorithms);
}

/**
 * An issuer's keys from a JWKS or SPIFFE bundle file, kept current like the credentials: the file's directory is
 * watched (kubelet's `..data` swap, a rename over the file, an in-place write), a periodic re-read backs the watcher
 * up, and after a quiet period the file is read and imported. A document that fails is never installed: the keys in
 * use keep serving, the refusal is logged once per distinct content, and the read is retried with backoff.
 */
export class JwksFileSource implements KeySource {
  readonly #options: JwksFileSourceOptions;
  #current: JwksKeySet;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryDelayMs: number;
  #poll: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #refused: string | undefined;
  #stopped = false;

  constructor(initial: JwksKeySet, options: JwksFileSourceOptions) {
    this.#current = initial;
    this.#options = options;
    this.#retryDelayMs = this.#firstRetry();
  }

  /** Loads the file (startup: an invalid document stops the application) and returns the source. */
  static async open(options: JwksFileSourceOptions): Promise<JwksFileSource> {
    return new JwksFileSource(await loadJwksFile(options.file, options.algorithms), options);
  }

  /** The key set in use. */
  get current(): JwksKeySet {
    return this.#current;
  }

  keys(): Promise<JwksKeySet> {
    return Promise.resolve(this.#current);
  }

  /** A file changes when it is written: the watcher, not a token's `kid`, triggers reads. */
  refreshForUnknownKid(): Promise<JwksKeySet> {
    return Promise.resolve(this.#current);
  }

  /** Starts watching; resolves when the watcher is ready, so that any later write is seen. */
  async start(): Promise<void> {
    const dir = dirname(this.#options.file);
    const names = new Set([basename(this.#options.file), SECRET_DATA_LINK]);
    this.#watcher = watch(dir, {
      ignoreInitial: true,
      depth: 0,
      ignored: (path: string) => dirname(path) === dir && !names.has(basename(path)),
      persistent: false,
    });
    this.#watcher.on('raw', (_event, path) => {
      if (path === undefined || path === '' || names.has(basename(path))) this.#changed();
    });
    this.#watcher.on('error', (error: unknown) => {
      this.#options.logger.warn(
        `token issuer ${this.#options.issuer}: JWKS watcher error on ${dir} (${String(error)}); the periodic re-read still picks up changes`,
      );
    });
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
    if (this.#options.pollIntervalMs > 0)
      this.#poll = setInterval(() => void this.reloadNow(), this.#options.pollIntervalMs).unref();
    await this.reloadNow();
  }

  /** Reads the file now (after a read under way). Never rejects. */
  reloadNow(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#check();
      } while (this.#again && !this.#stopped);
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Stops watching and clears every timer. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#debounce);
    clearTimeout(this.#retry);
    clearInterval(this.#poll);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await Promise.all([watcher?.close(), this.#running]);
  }

  #changed(): void {
    if (this.#stopped) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.reloadNow(), this.#options.debounceMs).unref();
  }

  async #check(): Promise<void> {
    const { file, algorithms, issuer, logger } = this.#options;
    let next: JwksKeySet;
    try {
      next = await loadJwksFile(file, algorithms);
    } catch (error) {
      if (this.#stopped) return;
      const refusal =
        error instanceof MtlsConfigError
          ? error
          : new MtlsConfigError(
              'ERR_MTLS_JWKS_INVALID',
              `${file}: ${error instanceof MtlsError ? error.message : String(error)}`,
            );
      if (refusal.message !== this.#refused) {
        this.#refused = refusal.message;
        logger.warn(
          `token issuer ${issuer}: JWKS on disk refused, still serving keys ${describe(this.#current)}; retrying: ${refusal.message}`,
        );
        this.#options.onChange?.({ result: 'refused', error: refusal });
      }
      this.#scheduleRetry();
      return;
    }
    if (this.#stopped) return;
    this.#refused = undefined;
    this.#retryDelayMs = this.#firstRetry();
    clearTimeout(this.#retry);
    this.#retry = undefined;
    if (next.digest === this.#current.digest) return;
    const previous = this.#current;
    this.#current = next;
    logger.log(`token issuer ${issuer}: JWKS reloaded from ${file}: keys ${describe(previous)} → ${describe(next)}`);
    this.#options.onChange?.({ result: 'rotated' });
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retry !== undefined) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(delay * 2, this.#options.maxRetryDelayMs);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.reloadNow();
    }, delay).unref();
  }

  #firstRetry(): number {
    return Math.min(Math.max(this.#options.debounceMs, 100), this.#options.maxRetryDelayMs);
  }
}

function describe(keys: JwksKeySet): string {
  return keys.kids.length === 0 ? '(no kid)' : keys.kids.map((kid) => JSON.stringify(kid)).join(', ');
}
