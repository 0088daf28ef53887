import { Logger } from '@nestjs/common';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { certificateLabel } from '../x509/certificate-checks.js';
import type { ChainFailureKind } from '../x509/chain-verifier.js';
import type { ReloadLogger } from '../credentials/credentials-reloader.js';
import type { CertificateInfo } from '../x509/certificate.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import type { MtlsEvent } from '../observability/mtls-events.js';
import { verifyPeerChain, type ChainVerdict, type PeerChain } from './connection-admission.js';
import { DeadlineSchedule } from './connection-expiry.js';
import type { TrustGeneration } from './trust-generation.js';

/** What the tracker needs of a socket (a TLSSocket; a stand-in in the benchmark). */
export interface TrackedSocket {
  readonly destroyed: boolean;
  readonly remoteAddress?: string | undefined;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/** An admitted connection: who the peer is, what it presented, and until when it may be served. */
export interface AdmittedConnection {
  readonly socket: TrackedSocket;
  readonly identity: PeerIdentity;
  readonly chain: PeerChain;
  /** Epoch ms after which the peer is no longer served (the earliest notAfter of its chain). */
  readonly deadline: number;
  /** The trust generation its chain was last verified under. */
  generation: number;
}

/** Options of {@link ConnectionTracker}. */
export interface ConnectionTrackerOptions {
  /** Where `connection.revoked` goes (usually `MtlsEvents`). */
  readonly events?: { emit(event: MtlsEvent): void } | undefined;
  /** Most log lines per minute about closed connections; the rest are counted and summarised. */
  readonly logRateLimitPerMinute: number;
  /** @default new Logger('MtlsServer') */
  readonly logger?: ReloadLogger | undefined;
  /** @default Date.now */
  readonly now?: () => number;
  /** Longest a re-check runs before yielding to the event loop, in ms. @default 10 */
  readonly sliceMs?: number;
}

/** What one re-check did. */
export interface RecheckResult {
  /** Connections looked at. */
  readonly checked: number;
  /** Connections closed because their peer is no longer trusted. */
  readonly closed: number;
  /** Slices the work was cut into (each a turn of the event loop). */
  readonly slices: number;
  /** False when a newer trust change arrived before it finished (that change's re-check covers everything). */
  readonly completed: boolean;
}

/** Why a connection was closed: the verifier's failure kind (stable, fit for a metrics label). */
export type RevocationReason = ChainFailureKind;

type Failure = Extract<ChainVerdict, { ok: false }>;

/**
 * Keeps the server's admitted connections and cuts off those whose peer the trust no longer accepts: on every trust
 * change each open connection's recorded chain (what the peer sent at admission) is verified against the new
 * generation, in slices that yield to the event loop; and each connection is closed when its certificate expires, by
 * one timer over all deadlines. Connections and their in-flight requests that still verify are untouched. When a CRL of
 * the trust in force lapses (its nextUpdate passes and no newer one has come), the open connections are verified again
 * as on a trust change: a handshake is refused then (OpenSSL's CRL_HAS_EXPIRED), and so is a connection that was
 * admitted before it.
 */
export class ConnectionTracker {
  readonly #connections = new Set<AdmittedConnection>();
  readonly #options: ConnectionTrackerOptions;
  readonly #logger: ReloadLogger;
  readonly #closures: RateLimitedLogger;
  readonly #now: () => number;
  readonly #expiries: DeadlineSchedule<AdmittedConnection>;
  /** The generation in force, due when its earliest CRL nextUpdate passes; at most one is scheduled. */
  readonly #lapses: DeadlineSchedule<TrustGeneration>;
  #watched: { readonly generation: TrustGeneration; readonly lapsesAt: number } | undefined;
  /** The generation the running (or last) re-check verifies against. */
  #generation: TrustGeneration | undefined;

  constructor(options: ConnectionTrackerOptions) {
    this.#options = options;
    this.#logger = options.logger ?? new Logger('MtlsServer');
    this.#closures = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
    this.#now = options.now ?? Date.now;
    this.#expiries = new DeadlineSchedule((due) => {
      for (const connection of due) this.expire(connection);
    }, this.#now);
    this.#lapses = new DeadlineSchedule((due) => {
      for (const generation of due) {
        this.recheck(generation, { again: true }).catch((error: unknown) => {
          this.#logger.error(`re-checking open connections after a CRL lapsed failed: ${String(error)}`);
        });
      }
    }, this.#now);
  }

  /**
   * Watches the trust in force for its CRLs lapsing: once the earliest nextUpdate among them has passed, every open
   * connection is verified again under it (and those whose chain that CRL covers are closed). A newer generation
   * replaces the watch, so a CRL refreshed in time closes nothing.
   */
  watchLapse(generation: TrustGeneration): void {
    if (this.#watched?.generation === generation) return;
    if (this.#watched !== undefined) this.#lapses.delete(this.#watched.generation, this.#watched.lapsesAt);
    this.#watched = undefined;
    let lapsesAt = Infinity;
    for (const crl of generation.crls) {
      if (crl.nextUpdate !== undefined) lapsesAt = Math.min(lapsesAt, crl.nextUpdate.getTime());
    }
    if (lapsesAt === Infinity) return;
    this.#watched = { generation, lapsesAt };
    this.#lapses.add(generation, lapsesAt);
  }

  /** Open admitted connections. */
  get size(): number {
    return this.#connections.size;
  }

  /** Tracks an admitted connection until it closes. */
  track(connection: AdmittedConnection): void {
    if (connection.socket.destroyed) return;
    this.#connections.add(connection);
    this.#expiries.add(connection, connection.deadline);
    connection.socket.on('close', () => this.#forget(connection));
  }

  /** Closes a connection whose peer certificate has expired (its deadline passed). */
  expire(connection: AdmittedConnection): void {
    if (!this.#connections.has(connection)) return;
    const leaf = connection.chain.leaf;
    this.#close(
      connection,
      {
        ok: false,
        kind: 'expired',
        reason: `${certificateLabel(leaf)} expired at ${new Date(connection.deadline).toISOString()}`,
      },
      'at its notAfter',
    );
  }

  /** Stops the expiry and CRL timers (module shutdown). Tracked connections stay tracked until they close. */
  stop(): void {
    this.#expiries.stop();
    this.#lapses.stop();
  }

  /**
   * Re-verifies every open connection against `generation` and closes those that fail, in slices of at most
   * `sliceMs` of work. A re-check started for an older generation stops at its next slice: this one covers everything.
   * `again`: connections already verified under `generation` too (its CRLs have lapsed since).
   */
  async recheck(generation: TrustGeneration, { again = false }: { again?: boolean } = {}): Promise<RecheckResult> {
    this.#generation = generation;
    const sliceMs = this.#options.sliceMs ?? 10;
    const pending = [...this.#connections];
    // Peers usually hold several connections with one chain: one verdict per chain and pass.
    const verdicts = new Map<PeerChain, ChainVerdict>();
    let checked = 0;
    let closed = 0;
    let slices = 1;
    let sliceStart = performance.now();
    for (const connection of pending) {
      if (performance.now() - sliceStart > sliceMs) {
        await nextTurn();
        if (this.#generation !== generation) return { checked, closed, slices, completed: false };
        slices++;
        sliceStart = performance.now();
      }
      // Closed meanwhile, or admitted (and verified) under this generation already (under a newer one, when again).
      if (!this.#connections.has(connection)) continue;
      if (again ? connection.generation > generation.id : connection.generation >= generation.id) continue;
      checked++;
      let verdict = verdicts.get(connection.chain);
      if (verdict === undefined) {
        verdict = verifyPeerChain(connection.chain, generation, new Date(this.#now()));
        verdicts.set(connection.chain, verdict);
      }
      if (verdict.ok) {
        connection.generation = generation.id;
      } else {
        closed++;
        this.#close(connection, verdict, again ? 'once a CRL of the trust in force lapsed' : 'after a trust change');
      }
    }
    return { checked, closed, slices, completed: true };
  }

  /**
   * Verifies one connection against `generation` now, closing it when it fails: a request that arrives on a connection
   * the running re-check has not reached yet is not served under the old trust. True when it may be served.
   */
  verify(connection: AdmittedConnection, generation: TrustGeneration): boolean {
    if (!this.#connections.has(connection)) return false;
    if (connection.generation >= generation.id) return true;
    const verdict = verifyPeerChain(connection.chain, generation, new Date(this.#now()));
    if (verdict.ok) {
      connection.generation = generation.id;
      return true;
    }
    this.#close(connection, verdict, 'after a trust change');
    return false;
  }

  #forget(connection: AdmittedConnection): void {
    if (!this.#connections.delete(connection)) return;
    this.#expiries.delete(connection, connection.deadline);
  }

  #close(connection: AdmittedConnection, verdict: Failure, when: string): void {
    const { socket } = connection;
    // Read before destroy(): a destroyed socket no longer knows its peer's address.
    const remoteAddress = socket.remoteAddress;
    this.#forget(connection);
    socket.destroy();
    const peer = peerName(connection.chain.leaf);
    this.#options.events?.emit({ type: 'connection.revoked', reason: verdict.kind, peer });
    this.#closures.warn(
      () => `closed the connection of ${peer} from ${remoteAddress ?? 'unknown address'} ${when}: ${verdict.reason}`,
    );
  }
}

/** For events and logs: the SPIFFE ID when there is one, else the subject (or first SAN). */
function peerName(leaf: CertificateInfo): string {
  return leaf.uris.find((uri) => uri.startsWith('spiffe://')) ?? certificateLabel(leaf);
}
