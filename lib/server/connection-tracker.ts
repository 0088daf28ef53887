import { Logger } from '@nestjs/common';
import { createHash, type X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certificateLabel } from '../x509/certificate-checks.js';
import { verifyChain, type ChainFailureKind } from '../x509/chain-verifier.js';
import type { ReloadLogger } from '../credentials/credentials-reloader.js';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import type { RevocationList } from '../x509/crl.js';
import { revocationListsOf } from '../credentials/revocation-lists.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import type { MtlsEvent } from '../observability/mtls-events.js';

/** Options of {@link ConnectionTracker}. */
export interface ConnectionTrackerOptions {
  /** Where `connection.revoked` goes (usually `MtlsEvents`). */
  readonly events?: { emit(event: MtlsEvent): void } | undefined;
  /** Most log lines per minute about closed connections; the rest are counted and summarised. */
  readonly logRateLimitPerMinute: number;
  /** @default new Logger('MtlsServer') */
  readonly logger?: ReloadLogger | undefined;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/** Why {@link ConnectionTracker.recheck} ran. */
export type RecheckReason = 'trust-changed' | 'periodic';

/** What one re-check did. */
export interface RecheckResult {
  /** Authenticated connections looked at. */
  readonly checked: number;
  /** Connections closed because their peer is no longer trusted. */
  readonly closed: number;
}

/** Why a connection was closed: the verifier's failure kind (stable, fit for a metrics label). */
export type RevocationReason = ChainFailureKind;

interface PeerChain {
  readonly leaf: CertificateInfo;
  /** What the peer presented after its leaf (empty on a resumed TLS 1.3 session). */
  readonly presented: readonly CertificateInfo[];
}

type Verdict = { readonly ok: true } | { readonly ok: false; readonly kind: RevocationReason; readonly reason: string };


/**
 * Keeps the server's open, authenticated TLS connections and cuts off those whose peer the current trust no longer
 * accepts. OpenSSL verifies a peer once, at the handshake: after a CRL update or a CA removal a revoked peer would
 * otherwise stay connected on its keep-alive socket. When the CA bundle or the CRLs change, every open connection's
 * peer chain is re-verified against the new trust and the failing sockets are destroyed; the others, and their
 * in-flight requests, are untouched. A periodic re-check closes connections whose peer certificate has expired.
 * Connecting costs one Set insertion: chains are read and parsed only when a re-check runs.
 */
export class ConnectionTracker {
  readonly #sockets = new Set<TLSSocket>();
  /** Each connection's peer chain, read at its first re-check: it cannot change (renegotiation is disabled). */
  readonly #chains = new WeakMap<TLSSocket, PeerChain | null>();
  readonly #options: ConnectionTrackerOptions;
  readonly #logger: ReloadLogger;
  readonly #closures: RateLimitedLogger;
  #trustKey: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** Bound once: the same function is every socket's `close` listener. */
  readonly #forget: (this: TLSSocket) => void;
  /** Bound once: pass to `server.on('secureConnection', …)`. */
  readonly track: (socket: TLSSocket) => void;

  constructor(options: ConnectionTrackerOptions) {
    this.#options = options;
    this.#logger = options.logger ?? new Logger('MtlsServer');
    this.#closures = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
    const sockets = this.#sockets;
    this.#forget = function (this: TLSSocket) {
      sockets.delete(this);
    };
    this.track = (socket) => {
      // Connections that were never authenticated (permissive mode) are the guard's business, not ours.
      if (socket.authorized !== true || socket.destroyed) return;
      sockets.add(socket);
      // `on`, not `once`: 'close' fires once, and `once` would allocate a wrapper per connection.
      socket.on('close', this.#forget);
    };
  }

  /** Open authenticated connections. */
  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Follows the server's credentials: when the CA bundle or the CRLs differ from those last seen, re-verifies every
   * open connection against them. The first call only records the trust in force.
   */
  update(credentials: Credentials): RecheckResult | undefined {
    const key = trustKey(credentials);
    const previous = this.#trustKey;
    this.#trustKey = key;
    if (previous === undefined || previous === key) return undefined;
    return this.recheck(credentials, 'trust-changed');
  }

  /** Re-checks every `intervalMs` (with the credentials `current()` returns) so that expired peers lose their connections. */
  startPeriodicRecheck(intervalMs: number, current: () => Credentials): void {
    this.stopPeriodicRecheck();
    if (intervalMs <= 0) return;
    this.#timer = setInterval(() => this.recheck(current(), 'periodic'), intervalMs).unref();
  }

  /** Stops the periodic re-check. Tracked sockets stay tracked until they close. */
  stopPeriodicRecheck(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Re-verifies the open connections and destroys those that fail. After a trust change the full chain is verified
   * against the new bundle and CRLs; a periodic check only looks at the validity of what the peer presented (the
   * trust has not changed, and a resumed session does not expose the peer's intermediates).
   */
  recheck(credentials: Credentials, reason: RecheckReason): RecheckResult {
    if (this.#sockets.size === 0) return { checked: 0, closed: 0 };
    const now = this.#options.now?.() ?? new Date();
    const sockets = [...this.#sockets].filter((socket) => !socket.destroyed);
    const chains = new Map<TLSSocket, PeerChain | null>();
    // Intermediates from every connection: a resumed session's chain is completed from its siblings' and our own.
    const knownIntermediates = new Map<string, CertificateInfo>();
    const parsed = new Map<string, CertificateInfo>();
    for (const certificate of credentials.chain.slice(1)) knownIntermediates.set(certificate.fingerprint256, certificate);
    for (const socket of sockets) {
      let chain = this.#chains.get(socket);
      if (chain === undefined) {
        chain = peerChain(socket, parsed) ?? null;
        this.#chains.set(socket, chain);
      }
      chains.set(socket, chain);
      for (const certificate of chain?.presented ?? []) knownIntermediates.set(certificate.fingerprint256, certificate);
    }
    const crls = reason === 'trust-changed' ? revocationListsOf(credentials) : [];
    const intermediates = [...knownIntermediates.values()];
    // Peers usually hold several connections with one certificate: one verdict per certificate.
    const verdicts = new Map<CertificateInfo, Verdict>();
    let closed = 0;
    for (const socket of sockets) {
      const chain = chains.get(socket);
      // No readable certificate (a TLS 1.3 resumption without one, node#35317): the guard refuses such a peer anyway.
      if (chain === undefined || chain === null) continue;
      const verdict =
        verdicts.get(chain.leaf) ??
        (reason === 'trust-changed'
          ? verifyAgainst(chain, intermediates, credentials.caCertificates, crls, now)
          : checkValidity(chain, now));
      verdicts.set(chain.leaf, verdict);
      if (verdict.ok) continue;
      closed++;
      this.#close(socket, chain.leaf, verdict, reason);
    }
    return { checked: sockets.length, closed };
  }

  #close(socket: TLSSocket, leaf: CertificateInfo, verdict: Exclude<Verdict, { ok: true }>, reason: RecheckReason): void {
    // Read before destroy(): a destroyed socket no longer knows its peer's address.
    const remoteAddress = socket.remoteAddress;
    this.#sockets.delete(socket);
    socket.destroy();
    const peer = peerName(leaf);
    this.#options.events?.emit({ type: 'connection.revoked', reason: verdict.kind, peer });
    const why = reason === 'trust-changed' ? 'after a trust change' : 'on the periodic re-check';
    this.#closures.warn(
      () => `closed the connection of ${peer} from ${remoteAddress ?? 'unknown address'} ${why}: ${verdict.reason}`,
    );
  }
}

/** The peer's leaf and presented intermediates, read from the socket now (never at connect time). */
function peerChain(socket: TLSSocket, parsed: Map<string, CertificateInfo>): PeerChain | undefined {
  let certificate: X509Certificate | undefined;
  try {
    certificate = socket.getPeerX509Certificate();
  } catch {
    return undefined;
  }
  if (certificate === undefined) return undefined;
  const certificates: CertificateInfo[] = [];
  const seen = new Set<string>();
  // Node links each certificate to the next one the peer sent; a self-signed one links to itself.
  for (let current: X509Certificate | undefined = certificate; current !== undefined; current = current.issuerCertificate) {
    if (seen.has(current.fingerprint256)) break;
    seen.add(current.fingerprint256);
    let info = parsed.get(current.fingerprint256);
    if (info === undefined) {
      try {
        info = parseCertificateDer(current.raw);
      } catch {
        if (certificates.length === 0) return undefined;
        break;
      }
      parsed.set(current.fingerprint256, info);
    }
    certificates.push(info);
  }
  return { leaf: certificates[0]!, presented: certificates.slice(1) };
}

function verifyAgainst(
  chain: PeerChain,
  intermediates: readonly CertificateInfo[],
  roots: readonly CertificateInfo[],
  crls: readonly RevocationList[],
  now: Date,
): Verdict {
  const result = verifyChain(chain.leaf, intermediates, roots, { now, crls, usages: ['clientAuth'] });
  return result.ok ? { ok: true } : { ok: false, kind: result.kind, reason: result.reason };
}

function checkValidity(chain: PeerChain, now: Date): Verdict {
  for (const certificate of [chain.leaf, ...chain.presented]) {
    if (now.getTime() > certificate.notAfter.getTime()) {
      return { ok: false, kind: 'expired', reason: `${certificateLabel(certificate)} expired at ${certificate.notAfter.toISOString()}` };
    }
  }
  return { ok: true };
}

/** Identifies what a TLS server trusts: the CA bundle and the CRLs, by content. */
function trustKey(credentials: Credentials): string {
  const hash = createHash('sha256');
  for (const ca of credentials.caCertificates) hash.update(`ca\0${ca.fingerprint256}\0`);
  for (const crl of credentials.crlPems) hash.update(`crl\0${crl.length}\0`).update(crl);
  return hash.digest('hex');
}

/** For events and logs: the SPIFFE ID when there is one, else the subject (or first SAN). */
function peerName(leaf: CertificateInfo): string {
  return leaf.uris.find((uri) => uri.startsWith('spiffe://')) ?? certificateLabel(leaf);
}
