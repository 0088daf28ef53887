import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SecureContext } from 'node:tls';
import { secretFiles, writeKubernetesSecret, type TestPki } from '../lib/testing/index.js';
import { rotationResult, type RotationResult } from './bench-results.js';
import { nextMessage } from './child-process.js';
import { SERVER_SPIFFE_ID } from './fixtures.js';
import type { ReloadMemoryReport, ServerCommand, ServerReport } from './protocol.js';

const POLL_INTERVAL_MS = 10;
const TIMEOUT_MS = 10_000;
/** MtlsModule's default `reload.debounceMs`, which the rotation server runs with. */
const DEFAULT_DEBOUNCE_MS = 250;
/** Distinct certificates the reload loop cycles through: each reload installs a set other than the one served. */
const RELOAD_SETS = 8;

/** The leaf fingerprint a new (never resumed) TLS connection to the server sees. */
function servedFingerprint(port: number, secureContext: SecureContext): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext, rejectUnauthorized: true });
    socket.once('secureConnect', () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      socket.end();
      if (fingerprint === undefined) reject(new Error('the server presented no certificate'));
      else resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

async function mintServerPeers(pki: TestPki, count: number) {
  const peers = [];
  for (let i = 0; i < count; i++) {
    peers.push(await pki.peer({ spiffeId: SERVER_SPIFFE_ID, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] }));
  }
  return peers;
}

/**
 * Swaps the Secret `rotations` times with fresh certificates; for each, the time from the end of the writer's call to
 * the first new connection that is served the new leaf, probing every ~10 ms.
 */
export async function timeRotations(
  pki: TestPki,
  secretDir: string,
  port: number,
  callerContext: SecureContext,
  rotations: number,
  log: (line: string) => void,
): Promise<RotationResult> {
  const peers = await mintServerPeers(pki, rotations);
  const latencies: number[] = [];
  let timeouts = 0;
  for (const [index, peer] of peers.entries()) {
    await writeKubernetesSecret(secretDir, secretFiles(peer));
    const written = performance.now();
    let latency: number | undefined;
    while (latency === undefined && performance.now() - written < TIMEOUT_MS) {
      const fingerprint = await servedFingerprint(port, callerContext);
      if (fingerprint === peer.fingerprint256) latency = performance.now() - written;
      else await sleep(POLL_INTERVAL_MS);
    }
    if (latency === undefined) timeouts++;
    latencies.push(latency ?? TIMEOUT_MS);
    if ((index + 1) % 10 === 0 || index + 1 === peers.length) {
      log(`[rotation] ${index + 1}/${peers.length}: last ${latencies.at(-1)!.toFixed(0)} ms`);
    }
  }
  return rotationResult(latencies, {
    timeouts,
    timeoutMs: TIMEOUT_MS,
    pollIntervalMs: POLL_INTERVAL_MS,
    debounceMs: DEFAULT_DEBOUNCE_MS,
  });
}

/** Has the rotation server reload `reloads` times and report its memory before and after, after `global.gc()`. */
export async function measureReloadMemory(
  pki: TestPki,
  server: ChildProcess,
  reloads: number,
): Promise<ReloadMemoryReport & { rssGrowthBytes: number }> {
  const sets = (await mintServerPeers(pki, RELOAD_SETS)).map((peer) => secretFiles(peer));
  const command: ServerCommand = { type: 'reload', count: reloads, sets };
  const done = nextMessage<Extract<ServerReport, { type: 'reloaded' }>>(server, 'reloaded', 60_000 + reloads * 500);
  server.send(command);
  const { report } = await done;
  return { ...report, rssGrowthBytes: report.rssAfterBytes - report.rssBeforeBytes };
}
