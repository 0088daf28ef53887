import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CredentialFilesOptions } from '../../lib/index.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import {
  serverFingerprint,
  sleep,
  startLifecycleApp,
  startLoad,
  waitFor,
  writeByRename,
  writeInPlace,
  type LifecycleApp,
} from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const ROTATIONS = 4;
// A quiet period shorter than the writers' gaps, so that the reloader does read the half-written states.
const DEBOUNCE_MS = 50;

/** How a writer publishes a new certificate and key over the previous ones. */
type Writer = (files: CredentialFilesOptions, next: TestPeer, rotation: number) => Promise<void>;

/** spiffe-helper (pkg/disk/x509.go): `os.WriteFile` in place, certificate, then key, then bundle; here 200 ms apart. */
const spiffeHelper: Writer = async (files, next) => {
  await writeInPlace(files.certFile, next.chainPem);
  await sleep(200);
  await writeInPlace(files.keyFile, next.keyPem);
  await sleep(50);
  // Same bundle, rewritten in place: for a moment the file is truncated.
  await writeInPlace(files.caFile, next.caPem);
};

/** Vault Agent (consul-template): each template renders to a temp file in the same directory, renamed over the target. */
const vaultAgent: Writer = async (files, next, rotation) => {
  // Template order decides which file lands first; try both.
  const [first, second] =
    rotation % 2 === 0
      ? [() => writeByRename(files.certFile, next.chainPem), () => writeByRename(files.keyFile, next.keyPem)]
      : [() => writeByRename(files.keyFile, next.keyPem), () => writeByRename(files.certFile, next.chainPem)];
  await first();
  await sleep(300);
  await second();
};

describe.each([
  [
    'spiffe-helper (in place, certificate then key 200 ms later, then bundle)',
    spiffeHelper,
    ['svid.pem', 'svid_key.pem', 'svid_bundle.pem'],
  ],
  ['Vault Agent (temp file + rename per file, 300 ms apart)', vaultAgent, ['tls.crt', 'tls.key', 'ca.crt']],
] as const)('server certificate rotation by %s', (_name, write, [certName, keyName, caName]) => {
  let pki: TestPki;
  let orders: TestPeer;
  let files: CredentialFilesOptions;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    orders = await pki.peer(ORDERS);
    const dir = await temporaryDir('nestjs-mtls-writer-');
    const initial = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    files = { certFile: join(dir, certName), keyFile: join(dir, keyName), caFile: join(dir, caName) };
    await writeFile(files.certFile, initial.chainPem);
    await writeFile(files.keyFile, initial.keyPem, { mode: 0o600 });
    await writeFile(files.caFile, initial.caPem);
    server = await startLifecycleApp({ credentials: files, reload: { debounceMs: DEBOUNCE_MS } });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('fails no request, never installs a mismatched pair and serves each new certificate once consistent', async () => {
    const keepAlive = await startLoad(server.port, orders, { keepAlive: true, pauseMs: 5 });
    const fresh = await startLoad(server.port, orders, { keepAlive: false });
    const installed: string[] = [];
    const unsubscribe = server.store.subscribe((current) => installed.push(current.leaf.fingerprint256));
    const probeFailures: string[] = [];
    try {
      for (let rotation = 0; rotation < ROTATIONS; rotation++) {
        const next = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
        const writing = write(files, next, rotation);
        // New connections keep succeeding while the files are inconsistent.
        while (!(await Promise.race([writing.then(() => true), sleep(25).then(() => false)]))) {
          await serverFingerprint(server.port, orders).catch((error: Error) => void probeFailures.push(error.message));
        }
        await waitFor(
          'the new certificate on a new connection',
          async () => ((await serverFingerprint(server.port, orders)) === next.fingerprint256 ? true : undefined),
          3_000,
          10,
        );
      }
    } finally {
      unsubscribe();
    }
    const [keepAliveStats, freshStats] = await Promise.all([keepAlive.stop(), fresh.stop()]);

    expect(keepAliveStats.failures).toEqual([]);
    expect(freshStats.failures).toEqual([]);
    expect(probeFailures).toEqual([]);
    expect(keepAliveStats.ok).toBeGreaterThan(0);
    expect(freshStats.ok).toBeGreaterThan(0);
    // Exactly one installation per rotation: no half-written state ever got in.
    expect(installed).toHaveLength(ROTATIONS);
    // What was refused along the way were the writers' transient states, each content reported once however often
    // it was retried: a key that does not match yet is seen at least once per rotation, and reported at most once.
    const refusals = server.events.flatMap((event) => (event.type === 'credentials.refused' ? [event.error] : []));
    for (const refusal of refusals) {
      expect(['ERR_MTLS_KEY_MISMATCH', 'ERR_MTLS_CREDENTIALS_NOT_PEM', 'ERR_MTLS_CREDENTIALS_UNREADABLE']).toContain(
        refusal.code,
      );
    }
    const mismatches = refusals.filter((refusal) => refusal.code === 'ERR_MTLS_KEY_MISMATCH');
    expect(mismatches.length).toBeGreaterThan(0);
    expect(mismatches.length).toBeLessThanOrEqual(ROTATIONS);
    expect(mismatches[0]).toMatchObject({ file: files.keyFile, field: 'key' });
    const refusalLogs = server.logs.filter(
      (line) => line.level === 'warn' && line.message.includes('credentials on disk refused'),
    );
    expect(refusalLogs).toHaveLength(refusals.length);
    expect(refusalLogs.map((line) => line.message).join('\n')).toContain(
      `${files.keyFile} (key): the private key does not belong`,
    );
  });
});
