import type { SecureContext, TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { buildConnector, Client, Pool } from 'undici';
import type { CredentialStore } from '../credentials/credential-store.js';
import { createSecureContext } from '../credentials/secure-context.js';
import { TrustAnchors } from '../identity/trust-anchors.js';
import { UpstreamError } from '../errors/mtls.errors.js';
import { DeadlineSchedule } from '../server/connection-expiry.js';
import type { TlsPolicyOptions } from '../mtls.options.js';
import type { UpstreamExpectation } from './upstream-identity.js';
import { connectionDeadline, expiredChain } from './upstream-expiry.js';

/** Pools a generation keeps open at most, unless configured otherwise: beyond it, the least recently used one drains. */
export const MAX_POOLS_PER_GENERATION = 256;

/** Streams one HTTP/2 connection carries at once: undici's default `maxConcurrentStreams`. */
const HTTP2_STREAMS_PER_CONNECTION = 100;

/** How pools are built and drained. */
export interface PoolSettings {
  /** Connections kept per (origin, expectation). */
  readonly connections: number;
  /** Bound of connecting, and of undici's own header and body timers (for `dispatcher()` users). */
  readonly timeoutMs: number;
  /** How long a retired pool's in-flight requests may run before its connections are destroyed. */
  readonly drainTimeoutMs: number;
  /** Most pools one generation keeps; opening one more drains the least recently used. */
  readonly maxPools: number;
  /** Offer HTTP/2 in ALPN (undici's `allowH2`); the server picks. @default false */
  readonly http2?: boolean;
}

/** The connections to one origin whose server proved one expectation, and what errors need to name them. */
export interface UpstreamPool {
  readonly pool: Pool;
  /** The upstream's name, or its origin. */
  readonly upstream: string;
  /** The expected identity, as written in errors. */
  readonly expected: string;
}

/** A pool and when it was last handed out, on the generation's clock. */
interface PoolEntry extends UpstreamPool {
  lastUsed: number;
}

const connectErrors = new WeakSet<Error>();

/** True when `error` ended a connection attempt (TCP connect or TLS handshake), before any request byte was written. */
export function isConnectError(error: unknown): boolean {
  return error instanceof Error && connectErrors.has(error);
}

/**
 * Everything outbound that depends on one credential version: its SecureContext (built once: a context per
 * connection costs ~1.1 ms) and the pools that use it. Pools are keyed by expectation then origin: a connection
 * verified for one expectation never carries a request expecting another, and since Node skips
 * `checkServerIdentity` on resumed sessions, each pool also has its own TLS session cache.
 * Origins and expectations come from callers, so the pools are bounded: opening one beyond `maxPools` drains the
 * least recently used (its queued and in-flight requests finish, then its connections close).
 */
export class ClientGeneration {
  readonly #pools = new Map<UpstreamExpectation, Map<string, PoolEntry>>();
  /**
   * Every open connection of the generation (its pools' and its https agents'), under one timer: each is destroyed at
   * its server chain's notAfter. The timer is unref'd and closed connections leave it, so it outlives close() freely.
   */
  readonly #expiry = new DeadlineSchedule<Socket>((due) => {
    // With an error: what is in flight fails with it, and undici's HTTP/2 client needs one to close cleanly.
    for (const socket of due)
      socket.destroy(expiredChain("the server's certificate chain expired while the connection was open"));
  });
  readonly #evicted = new Set<Promise<void>>();
  #size = 0;
  /** Counts hand-outs: a pool's `lastUsed` on it orders pools by recency without reordering any map per request. */
  #clock = 0;
  #closing: Promise<void> | undefined;

  constructor(
    /** The credential store's version this generation was built from. */
    readonly version: number,
    /** The one context every connection of this generation presents. */
    readonly secureContext: SecureContext,
    private readonly settings: PoolSettings,
    /** The trust domains each root of this generation's bundle vouches for (undefined: no binding to check). */
    readonly trustAnchors?: TrustAnchors,
  ) {}

  /** @internal Pools open, and the expectations they are filed under: what the bound limits. */
  get stats(): { readonly pools: number; readonly expectations: number } {
    return { pools: this.#size, expectations: this.#pools.size };
  }

  /**
   * The pool for `origin` under `expectation`, opened on first use. `origin` must be an https:// origin as
   * `URL.origin` writes it. Throws UpstreamError once the generation is closed.
   */
  pool(origin: string, expectation: UpstreamExpectation, upstream: string): UpstreamPool {
    let entry = this.#pools.get(expectation)?.get(origin);
    if (entry === undefined) {
      if (this.#closing !== undefined) {
        const message = `the mTLS client is closed; nothing was sent to ${upstream}`;
        throw new UpstreamError('ERR_MTLS_UPSTREAM_REQUEST', message, { upstream, expected: expectation.description });
      }
      if (this.#size >= this.settings.maxPools) this.#evictLeastRecentlyUsed();
      entry = this.#open(new URL(origin), expectation, upstream);
      let byOrigin = this.#pools.get(expectation);
      if (byOrigin === undefined) {
        byOrigin = new Map();
        this.#pools.set(expectation, byOrigin);
      }
      byOrigin.set(origin, entry);
      this.#size++;
    }
    entry.lastUsed = ++this.#clock;
    return entry;
  }

  /**
   * Stops the generation: queued and in-flight requests finish, idle connections close, and whatever still runs
   * after `drainTimeoutMs` is destroyed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      const pools = [...this.#pools.values()].flatMap((byOrigin) => [...byOrigin.values()]);
      const drains = pools.map(({ pool }) => drain(pool, this.settings.drainTimeoutMs));
      this.#closing = Promise.all([...drains, ...this.#evicted]).then(() => undefined);
    }
    return this.#closing;
  }

  /** @internal Destroys `socket` at `deadline` (epoch ms, its server chain's notAfter) unless it closes first. */
  expireAt(socket: Socket, deadline: number): void {
    this.#expiry.add(socket, deadline);
    socket.once('close', () => this.#expiry.delete(socket, deadline));
  }

  #evictLeastRecentlyUsed(): void {
    // A linear scan, only when a new pool is needed and the generation is full: the request path stays O(1).
    let oldest: PoolEntry | undefined;
    let oldestOrigin = '';
    let oldestExpectation: UpstreamExpectation | undefined;
    for (const [expectation, byOrigin] of this.#pools) {
      for (const [origin, entry] of byOrigin) {
        if (oldest === undefined || entry.lastUsed < oldest.lastUsed) {
          oldest = entry;
          oldestOrigin = origin;
          oldestExpectation = expectation;
        }
      }
    }
    if (oldest === undefined || oldestExpectation === undefined) return;
    const byOrigin = this.#pools.get(oldestExpectation)!;
    byOrigin.delete(oldestOrigin);
    if (byOrigin.size === 0) this.#pools.delete(oldestExpectation);
    this.#size--;
    const draining: Promise<void> = drain(oldest.pool, this.settings.drainTimeoutMs).finally(() =>
      this.#evicted.delete(draining),
    );
    this.#evicted.add(draining);
  }

  #open(origin: URL, expectation: UpstreamExpectation, upstream: string): PoolEntry {
    const options: buildConnector.BuildOptions = {
      secureContext: this.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: expectation.verifier(upstream, origin, this.trustAnchors),
      timeout: this.settings.timeoutMs,
      allowH2: this.settings.http2 === true,
    };
    const connect = expiringConnector(
      () => buildConnector(options),
      (socket, deadline) => this.expireAt(socket, deadline),
    );
    const servername = expectation.servername;
    const pool = new Pool(origin, {
      connections: this.settings.connections,
      headersTimeout: this.settings.timeoutMs,
      bodyTimeout: this.settings.timeoutMs,
      allowH2: this.settings.http2 === true,
      // undici caps every client at `pipelining` requests in flight (default 1), HTTP/2 included: a connection that
      // ALPN made HTTP/2 gets as many as its streams; one that stayed HTTP/1.1 keeps 1 (no HTTP/1.1 pipelining).
      ...(this.settings.http2 === true ? { factory: multiplexingClient } : {}),
      connect: (options, callback) => {
        // undici derives SNI from the request's Host; an expected host name must win over it.
        connect(servername === undefined ? options : { ...options, servername }, (error, socket) => {
          if (error === null) {
            callback(null, socket);
          } else {
            connectErrors.add(error);
            callback(error, null);
          }
        });
      },
    });
    return { pool, upstream, expected: expectation.description, lastUsed: 0 };
  }
}

/** undici's connector, reduced to what the pools call. */
type Connector = (options: buildConnector.Options, callback: buildConnector.Callback) => void;

/** One connector and the TLS sessions it caches, valid until the earliest server chain notAfter it has seen. */
interface SessionScope {
  readonly connect: buildConnector.connector;
  /** Epoch ms: the earliest deadline of the connections it opened, so of every session it may resume. */
  deadline: number;
}

/**
 * A pool's connector whose connections end at their server chain's notAfter (`expireAt` destroys them then), and whose
 * TLS sessions are never resumed past it: Node skips the certificate check on a resumed session. undici keeps the
 * sessions inside its connector, so once the earliest deadline among them has passed, the next connection gets a new
 * connector (an empty session cache) and a full handshake, in which OpenSSL checks the certificate again. A resumed
 * connection ends no later than that earliest deadline, however little of its chain the session kept.
 */
function expiringConnector(
  build: () => buildConnector.connector,
  expireAt: (socket: Socket, deadline: number) => void,
): Connector {
  let scope: SessionScope = { connect: build(), deadline: Infinity };
  return (options, callback) => {
    if (Date.now() > scope.deadline) scope = { connect: build(), deadline: Infinity };
    const opening = scope;
    opening.connect(options, (error, socket) => {
      if (error !== null) {
        callback(error, null);
        return;
      }
      const tls = socket as TLSSocket;
      // Called before undici writes a byte on it. A resumed session came from this scope: its deadline bounds it.
      const deadline = connectionDeadline(tls, opening.deadline);
      if (deadline instanceof Error) {
        tls.destroy();
        callback(deadline, null);
        return;
      }
      opening.deadline = Math.min(opening.deadline, deadline);
      expireAt(tls, deadline);
      callback(null, socket);
    });
  };
}

/** A pool's client that lifts its in-flight limit once its connection turns out to be HTTP/2. */
function multiplexingClient(origin: URL | string, options: Pool.Options): Client {
  const connect = options.connect as buildConnector.connector;
  const client: Client = new Client(origin, {
    ...options,
    connect: (connectOptions, callback) =>
      connect(connectOptions, (error, socket) => {
        callback(error as Error, socket as never);
        if (error === null && (socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
          client.pipelining = HTTP2_STREAMS_PER_CONNECTION;
        }
      }),
  });
  return client;
}

async function drain(pool: Pool, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  try {
    // close() only fails on a pool already destroyed, which is the end state anyway.
    await Promise.race([pool.close().catch(() => undefined), deadline]);
  } finally {
    clearTimeout(timer);
  }
  if (!pool.destroyed) await pool.destroy().catch(() => undefined);
}

/** Called after a rotation made `next` current; `previous` is draining. */
export type GenerationListener = (next: ClientGeneration, previous: ClientGeneration) => void;

/**
 * Holds the current {@link ClientGeneration} and follows the credential store: on every swap it builds the next
 * generation, routes new requests to it, and drains the previous one. New pools mean new TLS session caches, so no
 * connection of the new generation resumes a session established with the old certificate.
 */
export class ClientGenerations {
  #current: ClientGeneration | undefined;
  readonly #draining = new Set<Promise<void>>();
  readonly #listeners = new Set<GenerationListener>();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly store: CredentialStore,
    private readonly tls: TlsPolicyOptions,
    private readonly settings: PoolSettings,
  ) {
    this.#current = generationOf(store, tls, settings);
    this.#unsubscribe = store.subscribe(() => this.#rotate());
  }

  /** The generation new requests use, or undefined once closed. */
  get current(): ClientGeneration | undefined {
    return this.#current;
  }

  /** Registers a rotation listener; returns the function that removes it. */
  onRotate(listener: GenerationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops following the store and drains every generation. */
  async close(): Promise<void> {
    this.#unsubscribe();
    const last = this.#current;
    this.#current = undefined;
    this.#listeners.clear();
    await Promise.all([last?.close(), ...this.#draining]);
  }

  #rotate(): void {
    const previous = this.#current;
    if (previous === undefined) return;
    // Built before the swap: if OpenSSL refuses the new set, the store reports it and the old generation keeps serving.
    const next = generationOf(this.store, this.tls, this.settings);
    this.#current = next;
    const draining = previous.close().finally(() => this.#draining.delete(draining));
    this.#draining.add(draining);
    for (const listener of this.#listeners) listener(next, previous);
  }
}

function generationOf(store: CredentialStore, tls: TlsPolicyOptions, settings: PoolSettings): ClientGeneration {
  const credentials = store.current;
  return new ClientGeneration(
    store.version,
    createSecureContext(credentials, tls),
    settings,
    TrustAnchors.of(credentials.caCertificates),
  );
}
