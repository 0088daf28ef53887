import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { connect, createSecureContext, type SecureContext } from 'node:tls';
import { MtlsModule, mtlsHttpsOptions } from '../lib/index.js';
import { WorkloadApiTestServer, type TestPki } from '../lib/testing/index.js';
import { rotationResult, type RotationResult } from './bench-results.js';
import { CALLER_SPIFFE_ID, SERVER_SPIFFE_ID } from './fixtures.js';

const TIMEOUT_MS = 10_000;

/** The leaf fingerprint a new (never resumed) TLS connection to the server sees. */
function servedFingerprint(port: number, secureContext: SecureContext): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext, rejectUnauthorized: true, servername: 'localhost' });
    socket.once('secureConnect', () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      socket.end();
      if (fingerprint === undefined) reject(new Error('the server presented no certificate'));
      else resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/**
 * Workload API rotation: a Nest app with `credentials: { workloadApi }` fed by the testing kit's Workload API server
 * (real gRPC on a Unix socket); each rotation pushes a fresh X509-SVID and times until the first new TLS connection is
 * served it, probing with back-to-back handshakes. Runs in the bench process (a latency, not a throughput).
 */
export async function timeWorkloadApiRotations(
  pki: TestPki,
  rotations: number,
  log: (line: string) => void,
): Promise<RotationResult> {
  const mint = () => pki.peer({ spiffeId: SERVER_SPIFFE_ID, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] });
  const agent = await WorkloadApiTestServer.start();
  agent.setSvids([{ peer: await mint() }]);
  @Module({
    imports: [MtlsModule.forRoot({ credentials: { workloadApi: { socket: agent.address } }, defaultPolicy: 'any-peer' })],
  })
  class WorkloadApiBenchModule {}
  const app = await NestFactory.create(WorkloadApiBenchModule, { httpsOptions: mtlsHttpsOptions(), logger: false });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const caller = await pki.peer(CALLER_SPIFFE_ID);
  const context = createSecureContext({ cert: caller.chainPem, key: caller.keyPem, ca: caller.caPem });
  const latencies: number[] = [];
  let timeouts = 0;
  try {
    for (let index = 0; index < rotations; index++) {
      const peer = await mint();
      agent.setSvids([{ peer }]);
      const pushed = performance.now();
      let latency: number | undefined;
      while (latency === undefined && performance.now() - pushed < TIMEOUT_MS) {
        if ((await servedFingerprint(port, context)) === peer.fingerprint256) latency = performance.now() - pushed;
      }
      if (latency === undefined) timeouts++;
      latencies.push(latency ?? TIMEOUT_MS);
      if ((index + 1) % 10 === 0 || index + 1 === rotations) {
        log(`[workload-api] ${index + 1}/${rotations}: last ${latencies.at(-1)!.toFixed(1)} ms`);
      }
    }
  } finally {
    await app.close();
    await agent.close();
  }
  return rotationResult(latencies, { timeouts, timeoutMs: TIMEOUT_MS, pollIntervalMs: 0, debounceMs: 0 });
}
