// The connection-level costs of MtlsModule, measured in this process: how to read the peer certificate after a
// handshake, the re-check of 10,000 tracked connections after a trust change, and the expiry structure.
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { connect, createServer, createSecureContext, type TLSSocket } from 'node:tls';
import { parseCrlPem } from '../lib/x509/crl.js';
import { parseCertificatesPem } from '../lib/x509/certificate.js';
import { peerIdentityFromCertificate } from '../lib/identity/peer-identity.js';
import { PeerCertificates } from '../lib/server/connection-admission.js';
import { DeadlineSchedule } from '../lib/server/connection-expiry.js';
import { ConnectionTracker } from '../lib/server/connection-tracker.js';
import type { TrustGeneration } from '../lib/server/trust-generation.js';
import { CertificateAuthority } from '../lib/testing/index.js';

/** Median µs of one way of reading the peer certificate on a server socket, right after the handshake. */
export interface SourceTiming {
  readonly source: string;
  /** After a full handshake, or after a TLS 1.3 resumption (the session then carries the leaf alone). */
  readonly handshake: 'full' | 'resumed';
  readonly medianUs: number;
  readonly samples: number;
}

/** One re-check of many tracked connections. */
export interface RecheckTiming {
  readonly connections: number;
  readonly distinctPeers: number;
  readonly totalMs: number;
  readonly slices: number;
  /** Longest event-loop delay seen while it ran (monitorEventLoopDelay, 1 ms resolution). */
  readonly maxLoopDelayMs: number;
  readonly closed: number;
}

/** What the admission group measured. */
export interface AdmissionResult {
  readonly sources: readonly SourceTiming[];
  readonly recheck: readonly RecheckTiming[];
  /** µs per connection to schedule and unschedule its expiry: one timer per socket vs the shared schedule. */
  readonly expiry: { readonly connections: number; readonly timerPerSocketUs: number; readonly deadlineScheduleUs: number };
}

const SOURCES: ReadonlyArray<readonly [string, (socket: TLSSocket) => unknown]> = [
  ['getPeerCertificate(false).raw', (socket) => socket.getPeerCertificate(false).raw],
  ['getPeerX509Certificate()', (socket) => socket.getPeerX509Certificate()],
  ['getPeerX509Certificate().raw', (socket) => socket.getPeerX509Certificate()?.raw],
  ['getPeerCertificate(true)', (socket) => socket.getPeerCertificate(true)],
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? Number.NaN;
}

/**
 * Real ECDSA mTLS handshakes on 127.0.0.1 (TLS 1.3), full and resumed in turn (the client offers the last ticket it
 * got on every other connection), each socket read one way only, round-robin over the sources.
 */
async function measureSources(handshakes: number): Promise<SourceTiming[]> {
  const ca = await CertificateAuthority.create({ commonName: 'bench root', trustDomain: 'bench.test' });
  const server = await ca.issue({ spiffeId: 'spiffe://bench.test/server', ipAddresses: ['127.0.0.1'] });
  const client = await ca.issue({ spiffeId: 'spiffe://bench.test/client' });
  const modes = ['full', 'resumed'] as const;
  const timings = new Map(modes.map((mode) => [mode, SOURCES.map(() => [] as number[])]));
  const turns = new Map(modes.map((mode) => [mode, 0]));
  const tls = createServer({
    key: server.keyPem,
    cert: server.chainPem,
    ca: ca.rootPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  tls.on('secureConnection', (socket: TLSSocket) => {
    const mode = socket.isSessionReused() ? 'resumed' : 'full';
    const turn = turns.get(mode)!;
    turns.set(mode, turn + 1);
    const index = turn % SOURCES.length;
    const started = performance.now();
    SOURCES[index]![1](socket);
    timings.get(mode)![index]!.push((performance.now() - started) * 1000);
    // A byte of data: OpenSSL sends the TLS 1.3 session tickets with the first write, and an empty end() sends none.
    socket.end('.');
  });
  tls.listen(0, '127.0.0.1');
  await once(tls, 'listening');
  const port = (tls.address() as AddressInfo).port;
  const context = createSecureContext({ ca: ca.rootPem, cert: client.chainPem, key: client.keyPem });
  let ticket: Buffer | undefined;
  for (let i = 0; i < 2 * handshakes; i++) {
    const session = i % 2 === 1 ? ticket : undefined;
    const socket = connect({
      host: '127.0.0.1',
      port,
      secureContext: context,
      checkServerIdentity: () => undefined,
      ...(session === undefined ? {} : { session }),
    });
    socket.on('session', (received: Buffer) => (ticket = received));
    socket.on('error', () => undefined);
    socket.resume();
    await once(socket, 'close');
  }
  tls.close();
  // The first rounds warm the JIT up: drop them.
  return modes.flatMap((handshake) =>
    SOURCES.map(([source], i) => {
      const samples = timings.get(handshake)![i]!.slice(5);
      return { source, handshake, medianUs: median(samples), samples: samples.length };
    }),
  );
}

class StandInSocket extends EventEmitter {
  destroyed = false;
  readonly remoteAddress = '127.0.0.1';
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

/** Tracks `connections` admitted connections of `peers` distinct peers (intermediate-issued) and re-checks them. */
async function measureRecheck(connections: number, peers: number, revoke: boolean): Promise<RecheckTiming> {
  const root = await CertificateAuthority.create({ commonName: 'bench root', trustDomain: 'bench.test' });
  const intermediate = await root.createIntermediate({ commonName: 'bench intermediate' });
  const certificates = new PeerCertificates();
  const issued = await Promise.all(
    Array.from({ length: peers }, (_, i) => intermediate.issue({ spiffeId: `spiffe://bench.test/w/${i}` })),
  );
  const chains = issued.map((peer) => {
    const [leaf, ...presented] = parseCertificatesPem(peer.chainPem).map((c) => certificates.parse(c.der));
    return certificates.chain(leaf!, presented);
  });
  const rootInfo = parseCertificatesPem(root.rootPem)[0]!;
  const crls = async (revoked: string[]) =>
    [await root.createCrl([]), await intermediate.createCrl(revoked)].map((pem) => {
      const parsed = parseCrlPem(pem);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.crl;
    });
  const silent = { log: () => undefined, warn: () => undefined, error: () => undefined };
  const tracker = new ConnectionTracker({ logRateLimitPerMinute: 1, logger: silent });
  for (let i = 0; i < connections; i++) {
    const chain = chains[i % peers]!;
    tracker.track({
      socket: new StandInSocket(),
      identity: peerIdentityFromCertificate(chain.leaf),
      chain,
      deadline: chain.leaf.notAfter.getTime(),
      generation: 1,
    });
  }
  const generation: TrustGeneration = {
    id: 2,
    roots: [rootInfo],
    crls: await crls(revoke ? [issued[0]!.serialNumber] : []),
    key: 'bench',
  };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = performance.now();
  const result = await tracker.recheck(generation);
  const totalMs = performance.now() - started;
  delay.disable();
  tracker.stop();
  return {
    connections,
    distinctPeers: peers,
    totalMs,
    slices: result.slices,
    maxLoopDelayMs: delay.max / 1e6,
    closed: result.closed,
  };
}

function measureExpiry(connections: number): AdmissionResult['expiry'] {
  const items = Array.from({ length: connections }, (_, i) => ({ i }));
  const deadline = Date.now() + 3_600_000;
  let started = performance.now();
  const timers = items.map(() => setTimeout(() => undefined, 3_600_000));
  for (const timer of timers) clearTimeout(timer);
  const timerPerSocketUs = ((performance.now() - started) * 1000) / connections;
  const schedule = new DeadlineSchedule<object>(() => undefined);
  started = performance.now();
  // Peers share certificates: 100 distinct deadlines.
  for (const item of items) schedule.add(item, deadline + (item.i % 100) * 1000);
  for (const item of items) schedule.delete(item, deadline + (item.i % 100) * 1000);
  const deadlineScheduleUs = ((performance.now() - started) * 1000) / connections;
  schedule.stop();
  return { connections, timerPerSocketUs, deadlineScheduleUs };
}

/** Runs the admission group. */
export async function measureAdmission(log: (line: string) => void): Promise<AdmissionResult> {
  const sources = await measureSources(300);
  for (const s of sources) log(`[admission] ${s.source}: median ${s.medianUs.toFixed(1)} µs over ${s.samples} handshakes`);
  const recheck = [
    await measureRecheck(10_000, 100, false),
    await measureRecheck(10_000, 100, true),
    await measureRecheck(10_000, 10_000, false),
  ];
  for (const r of recheck) {
    log(
      `[admission] re-check of ${r.connections} connections (${r.distinctPeers} peers): ${r.totalMs.toFixed(0)} ms in ${r.slices} slices, ` +
        `max loop delay ${r.maxLoopDelayMs.toFixed(1)} ms, ${r.closed} closed`,
    );
  }
  const expiry = measureExpiry(10_000);
  log(
    `[admission] expiry: timer per socket ${expiry.timerPerSocketUs.toFixed(2)} µs, deadline schedule ${expiry.deadlineScheduleUs.toFixed(2)} µs per connection`,
  );
  return { sources, recheck, expiry };
}
