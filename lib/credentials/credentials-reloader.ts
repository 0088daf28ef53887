import { Logger, type LoggerService } from '@nestjs/common';
import { watch, type FSWatcher } from 'chokidar';
import { basename, dirname, isAbsolute, relative, sep } from 'node:path';
import type { CredentialsError } from '../errors/mtls.errors.js';
import type { TlsPolicyOptions } from '../mtls.options.js';
import type { CredentialStore } from './credential-store.js';
import {
  asCredentialsError,
  CrlRollbackGuard,
  installCredentials,
  type CredentialsReloadEvent,
} from './credentials-installer.js';
import { readCredentials } from './credentials-loader.js';
import { SECRET_DATA_LINK } from './secret-layout.js';
import type { CredentialFiles, CredentialSetName, CredentialUsage, RawCredentials } from './credentials.interfaces.js';

export type { CredentialsReloadEvent } from './credentials-installer.js';

/** What the reloader logs through: Nest's `Logger` by default. */
export type ReloadLogger = Pick<LoggerService, 'log' | 'warn' | 'error'>;

/** Options of {@link CredentialsReloader}. */
export interface CredentialsReloaderOptions {
  /** Which set this is, for logs and events. */
  readonly set: CredentialSetName;
  readonly files: CredentialFiles;
  /** The store to keep current; it already holds the set validated at startup. */
  readonly store: CredentialStore;
  /** The usages the set was validated for at startup: a reloaded set must pass the same checks. */
  readonly usages: readonly CredentialUsage[];
  /** As at startup. @default a third of the certificate's lifetime */
  readonly expiryWarningMs?: number | undefined;
  /** The TLS policy consumers build contexts with: a candidate set must be accepted by OpenSSL under it. */
  readonly tls?: TlsPolicyOptions | undefined;
  /** Quiet period after the last file event before the set is read. */
  readonly debounceMs: number;
  /** Interval of the re-read that backs up the watcher; `0` disables it. */
  readonly pollIntervalMs: number;
  /** Longest wait between retries while the files on disk stay invalid. */
  readonly maxRetryDelayMs: number;
  /** Where `credentials.rotated` and `credentials.refused` go (usually `MtlsEvents`). */
  readonly events?: { emit(event: CredentialsReloadEvent): void } | undefined;
  /** @default new Logger('MtlsCredentials') */
  readonly logger?: ReloadLogger | undefined;
}

/** What one read of the files led to. */
export type ReloadResult = 'rotated' | 'unchanged' | 'refused' | 'stopped';

// Retries start here (or at debounceMs when longer) and double up to maxRetryDelayMs.
const FIRST_RETRY_MS = 100;
// Events that keep coming (a writer that never settles, a noisy directory) delay a read by at most this many quiet periods.
const MAX_DEBOUNCE_PERIODS = 4;

/**
 * Keeps one credential set current while the service runs. Watches the *directories* holding the files (kubelet's
 * `..data` swap never names `tls.crt`; Vault Agent renames a temp file over it; spiffe-helper rewrites in place), treats
 * any event there as "maybe changed", and after a quiet period reads one consistent set, skips it when its content
 * hash is the one being served, validates it exactly as at startup and installs it with `store.replace`. A set that
 * fails is never installed: the current one keeps serving, the refusal is logged once per distinct content, and the
 * read is retried with exponential backoff (in-place writers usually heal within milliseconds). A periodic re-read backs
 * up the watcher, whose events can be lost. Plain class; `MtlsModule` runs one per set.
 */
export class CredentialsReloader {
  readonly #options: CredentialsReloaderOptions;
  readonly #logger: ReloadLogger;
  /** Watched directory → names inside it that belong to the set. */
  readonly #targets: ReadonlyMap<string, ReadonlySet<string>>;
  #watchers: FSWatcher[] = [];
  #started = false;
  #stopped = false;

  #debounceTimer: NodeJS.Timeout | undefined;
  #firstEventAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelayMs: number;
  #pollTimer: NodeJS.Timeout | undefined;

  #running: Promise<ReloadResult> | undefined;
  #queued: Promise<ReloadResult> | undefined;

  /** The content (or unreadable state) whose refusal was last reported, so that retries stay quiet. */
  #refusedKey: string | undefined;
  /** Why the files on disk are refused, while they are. */
  #pendingError: CredentialsError | undefined;
  /** The newest CRL seen per issuer since startup: no rotation may install an older one. */
  readonly #crls: CrlRollbackGuard;

  constructor(options: CredentialsReloaderOptions) {
    this.#options = options;
    this.#logger = options.logger ?? new Logger('MtlsCredentials');
    this.#targets = watchTargets(options.files);
    this.#retryDelayMs = this.#firstRetryDelay();
    this.#crls = new CrlRollbackGuard(options.store.current);
  }

  /** The directories watched, each with the entry names that belong to the set. */
  get watchTargets(): ReadonlyMap<string, ReadonlySet<string>> {
    return this.#targets;
  }

  /** Why the files on disk are refused, while they are; undefined once a valid set is installed or the files revert. */
  get pendingError(): CredentialsError | undefined {
    return this.#pendingError;
  }

  /**
   * Starts watching and polling, then reads the files once (they may have changed since startup). Resolves when the
   * watcher is ready, so that any write after it is seen. Call once.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('CredentialsReloader.start() was already called');
    this.#started = true;
    this.#watchers = [...this.#targets.keys()].map((dir) => this.#watch(dir));
    await Promise.all(this.#watchers.map((watcher) => new Promise<void>((resolve) => watcher.once('ready', () => resolve()))));
    if (this.#stopped) return;
    if (this.#options.pollIntervalMs > 0) {
      this.#pollTimer = setInterval(() => void this.reloadNow(), this.#options.pollIntervalMs).unref();
    }
    await this.reloadNow();
  }

  /** Reads the files now (a rotation already under way finishes first). Never rejects. */
  reloadNow(): Promise<ReloadResult> {
    if (this.#stopped) return Promise.resolve('stopped');
    if (this.#running === undefined) return this.#run();
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.#run();
    });
    return this.#queued;
  }

  /** Closes the watchers, clears every timer and waits for a read under way. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#debounceTimer);
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pollTimer);
    this.#debounceTimer = this.#retryTimer = this.#pollTimer = undefined;
    const watchers = this.#watchers;
    this.#watchers = [];
    await Promise.all([...watchers.map((watcher) => watcher.close()), this.#queued ?? this.#running]);
  }

  #watch(dir: string): FSWatcher {
    const watcher = watch(dir, {
      ignoreInitial: true,
      // The directory's entries only: kubelet's timestamped folders are read through `..data`, never watched.
      depth: 0,
      ignored: (path: string) => this.#isForeign(path),
      // In a Secret directory the `..data` rename is the one event that matters; following the visible links would
      // add a watch on each old file that fires again when kubelet deletes it. A separate file may be a link to
      // anywhere (a Secret mount, a shared volume): following it watches what it points to.
      followSymlinks: dir !== this.#options.files.secretDir,
      // A library's watcher must not keep the process alive; the server does that.
      persistent: false,
    });
    // Raw events only: every change chokidar reports derives from one, later (after its own stat calls), and raw
    // events also carry what its bookkeeping hides: the rename of `..data`, a temp file renamed over a watched name.
    watcher.on('raw', (_event, path, details) => {
      const watchedPath = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (this.#isRelevant(path, typeof watchedPath === 'string' ? watchedPath : undefined)) this.#onFileEvent();
    });
    watcher.on('error', (error: unknown) => {
      this.#logger.warn(
        `${this.#options.set} credentials: file watcher error on ${dir} (${errorText(error)}); the periodic re-read still picks up changes`,
      );
    });
    return watcher;
  }

  #isForeign(path: string): boolean {
    const names = this.#targets.get(dirname(path));
    // Not inside a watched directory: a watched directory itself (or its parent while chokidar waits for it to appear).
    if (names === undefined) return false;
    return !names.has(basename(path)) && !this.#targets.has(path);
  }

  #isRelevant(path: string | undefined, watchedPath: string | undefined): boolean {
    const names = watchedPath === undefined ? undefined : this.#targets.get(watchedPath);
    // A file's own watcher, or an event without a name (some platforms): assume it matters.
    if (names === undefined || path === undefined || path === '') return true;
    return names.has(basename(path));
  }

  #onFileEvent(): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (this.#debounceTimer === undefined) {
      this.#firstEventAt = now;
    } else {
      clearTimeout(this.#debounceTimer);
    }
    const { debounceMs } = this.#options;
    const latest = this.#firstEventAt + debounceMs * MAX_DEBOUNCE_PERIODS;
    const delay = Math.max(0, Math.min(debounceMs, latest - now));
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      void this.reloadNow();
    }, delay).unref();
  }

  #run(): Promise<ReloadResult> {
    const running = this.#check().finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  async #check(): Promise<ReloadResult> {
    let raw: RawCredentials;
    try {
      raw = await readCredentials(this.#options.files);
    } catch (error) {
      const refusal = asCredentialsError(error, this.#options);
      return this.#refuse(refusal, `unreadable\0${refusal.code}\0${refusal.file}\0${refusal.reason}`);
    }
    const result = this.#apply(raw);
    // A set read but not installed (unchanged, refused, stopped) is dropped here: its key bytes go with it.
    if (result !== 'rotated') raw.key.dispose();
    return result;
  }

  #apply(raw: RawCredentials): ReloadResult {
    const { set, store, usages, expiryWarningMs, tls } = this.#options;
    if (this.#stopped) return 'stopped';
    const outcome = installCredentials(
      raw,
      { set, store, usages, expiryWarningMs, tls, events: this.#options.events, logger: this.#logger },
      (candidate) => this.#crls.check(candidate, raw.crlFiles),
    );
    if (outcome.result === 'refused') return this.#refuse(outcome.error, `content\0${raw.contentHash}`);
    if (outcome.result === 'unchanged' && this.#pendingError !== undefined) {
      this.#logger.log(`${set} credentials: the files are back to the set being served; nothing to reload`);
    }
    if (outcome.result === 'rotated') this.#crls.installed(store.current, raw.crlFiles);
    this.#settle();
    return outcome.result;
  }

  #refuse(error: CredentialsError, key: string): ReloadResult {
    const { set, store } = this.#options;
    if (this.#stopped) return 'stopped';
    if (key !== this.#refusedKey) {
      this.#refusedKey = key;
      const current = store.current.leaf;
      this.#logger.warn(
        `${set} credentials on disk refused, still serving sha256 ${current.fingerprint256} (valid until ${current.notAfter.toISOString()}); ` +
          `retrying: ${error.message}`,
      );
      this.#options.events?.emit({ type: 'credentials.refused', set, error });
    }
    this.#pendingError = error;
    this.#scheduleRetry();
    return 'refused';
  }

  #settle(): void {
    this.#pendingError = undefined;
    this.#refusedKey = undefined;
    this.#retryDelayMs = this.#firstRetryDelay();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retryTimer !== undefined) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(delay * 2, this.#options.maxRetryDelayMs);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.reloadNow();
    }, delay).unref();
  }

  #firstRetryDelay(): number {
    return Math.min(Math.max(this.#options.debounceMs, FIRST_RETRY_MS), this.#options.maxRetryDelayMs);
  }
}

/**
 * The directories to watch and, in each, the entries that belong to the set. A Secret directory is watched for its
 * `..data` link and the visible names; a separate file for its own name in its parent (renames land there).
 */
export function watchTargets(files: CredentialFiles): ReadonlyMap<string, ReadonlySet<string>> {
  const targets = new Map<string, Set<string>>();
  const add = (dir: string, name: string): void => {
    let names = targets.get(dir);
    if (names === undefined) {
      names = new Set();
      targets.set(dir, names);
    }
    names.add(name);
  };
  for (const file of [files.cert, files.key, files.ca, ...files.crl]) {
    const rel = files.secretDir === undefined ? undefined : relative(files.secretDir, file);
    if (files.secretDir !== undefined && rel !== undefined && rel !== '' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)) {
      add(files.secretDir, SECRET_DATA_LINK);
      add(files.secretDir, rel.split(sep)[0]!);
    } else {
      add(dirname(file), basename(file));
      // The path may go through a Secret volume's visible link (`certFile: /secrets/tls.crt`): its update is a `..data` rename.
      add(dirname(file), SECRET_DATA_LINK);
    }
  }
  return targets;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
