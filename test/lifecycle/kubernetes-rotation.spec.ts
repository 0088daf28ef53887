import 'reflect-metadata';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import type { Credentials } from 'nestjs-mtls/credentials';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { EXPRESS_H1, SERVER_CELLS } from '../support/cells.js';
import {
  exposeGc,
  get,
  keepAliveAgent,
  percentile,
  serverFingerprint,
  sleep,
  startLifecycleApp,
  startLoad,
  trackResources,
  waitFor,
  type LifecycleApp,
} from './lifecycle-support.js';

// The two heaviest floors share this file: Vitest runs a file's tests one after the other, so they never compete for
// the CPU (the latency floor would then measure the machine, not the reloader).

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const FULL_ROTATIONS = 50;
/**
 * Rotations on the other cells: the reloader and its latency do not depend on the adapter (50 on Express measure
 * them); what each cell adds is the install into its server under its protocol's load, which 10 rotations show.
 */
const CELL_ROTATIONS = 10;
const RELOADS = 1_000;
const WARM_UP = 200;

describe.each(SERVER_CELLS)('server certificate rotation in the Kubernetes Secret layout ($name)', (cell) => {
  const ROTATIONS = cell === EXPRESS_H1 ? FULL_ROTATIONS : CELL_ROTATIONS;
  let pki: TestPki;
  let dir: string;
  let orders: TestPeer;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const initial = await pki.credentials(SERVER);
    dir = initial.dir;
    orders = await pki.peer(ORDERS);
    // A shorter quiet period than the default 250 ms leaves the floor's margin to a loaded CI machine.
    server = await startLifecycleApp({ credentials: initial.credentials, reload: { debounceMs: 100 } }, undefined, { cell });
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`serves each of ${ROTATIONS} rotations to new connections within 1 s of the ..data swap, with no failed request`, async () => {
    const next: TestPeer[] = [];
    for (let i = 0; i < ROTATIONS; i++) next.push(await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] }));
    // When kubelet's rename publishes the new payload, as an inotify watcher on the directory sees it.
    let swappedAt = 0;
    const swaps: FSWatcher = watch(dir, (_event, name) => {
      if (name === '..data') swappedAt = performance.now();
    });
    // Steady traffic rather than a saturating flood: on 2 cores, a flood measures the CPU, not the reloader.
    const keepAlive = await startLoad(server.port, orders, { keepAlive: true, concurrency: 2, pauseMs: 10, http2: cell.http2 });
    const fresh = await startLoad(server.port, orders, { keepAlive: false, pauseMs: 10, http2: cell.http2 });
    // From the swap as seen, and from the start of the write (an upper bound that includes noticing the swap).
    const latencies: number[] = [];
    const fromWrite: number[] = [];
    const probeFailures: string[] = [];
    try {
      for (const peer of next) {
        swappedAt = 0;
        const writeStartedAt = performance.now();
        await writeKubernetesSecret(dir, secretFiles(peer));
        await waitFor(
          'the new certificate on a new connection',
          async () => {
            try {
              return (await serverFingerprint(server.port, orders)) === peer.fingerprint256 && swappedAt > 0 ? true : undefined;
            } catch (error) {
              probeFailures.push((error as Error).message);
              return undefined;
            }
          },
          3_000,
          10,
        );
        latencies.push(performance.now() - swappedAt);
        fromWrite.push(performance.now() - writeStartedAt);
        // Let both loads run on the new certificate for a moment.
        await sleep(20);
      }
    } finally {
      swaps.close();
    }
    const [keepAliveStats, freshStats] = await Promise.all([keepAlive.stop(), fresh.stop()]);

    const summary = (values: number[]) =>
      `p50 ${percentile(values, 50).toFixed(0)} ms, p99 ${percentile(values, 99).toFixed(0)} ms, max ${Math.max(...values).toFixed(0)} ms`;
    console.info(
      `${ROTATIONS} Kubernetes Secret rotations, new certificate on a new connection after the ..data swap: ${summary(latencies)}; ` +
        `after the start of the write: ${summary(fromWrite)}; requests: ${keepAliveStats.ok} keep-alive, ${freshStats.ok} on new connections`,
    );
    expect(keepAliveStats.failures).toEqual([]);
    expect(freshStats.failures).toEqual([]);
    expect(probeFailures).toEqual([]);
    expect(keepAliveStats.ok).toBeGreaterThan(ROTATIONS);
    expect(freshStats.ok).toBeGreaterThan(ROTATIONS);
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    expect(server.store.version).toBe(ROTATIONS + 1);
    expect(server.events.filter((event) => event.type === 'credentials.rotated')).toHaveLength(ROTATIONS);
    expect(server.events.filter((event) => event.type === 'credentials.refused')).toEqual([]);
  }, 90_000);

  it('logs each rotation with the old and new fingerprints and validity, and never a key', () => {
    const rotations = server.logs.filter((line) => line.message.startsWith('identity credentials rotated'));
    expect(rotations).toHaveLength(ROTATIONS);
    const last = rotations[rotations.length - 1]!.message;
    expect(last).toMatch(
      /certificate sha256 [0-9A-F:]{95} \(valid \S+ to \S+\) → sha256 [0-9A-F:]{95} \(valid \S+ to \S+, \S+ left\)/,
    );
    expect(last).toContain(server.store.current.leaf.fingerprint256);
    expect(server.logs.map((line) => line.message).join('\n')).not.toMatch(/PRIVATE KEY/);
  });
});

// fs.watch handles, stat pollers, timers, sockets and servers: what a reloader, the server or the client could leak.
const LEAKABLE = ['FSEVENTWRAP', 'STATWATCHER', 'Timeout', 'TCPWRAP', 'TLSWRAP', 'TCPSERVERWRAP'];

describe('1,000 reloads', () => {
  it('leave no growing memory and no leaked watchers, agents, sockets or timers', async () => {
    const gc = exposeGc();
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const sets: TestPeer[] = [];
    for (let i = 0; i < 4; i++) sets.push(await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] }));
    const orders = await pki.peer(ORDERS);
    // Handles that keep the loop alive (unref'd timers and watchers are not listed: async_hooks sees those).
    const handles = () =>
      process
        .getActiveResourcesInfo()
        .filter((type) => type !== 'Timeout')
        .sort();
    const handlesBefore = handles();
    const resources = trackResources();

    const initial = await pki.credentials(SERVER);
    // Each set in a payload folder of its own, published by kubelet's commit step alone (`..data_tmp` renamed over
    // `..data`): a full AtomicWriter write per reload would make the writer, not the reloader, the bulk of the work.
    const payloads: string[] = [];
    for (const [i, peer] of sets.entries()) {
      const payload = `..leak_test_payload_${i}`;
      await mkdir(join(initial.dir, payload));
      for (const [name, content] of Object.entries(secretFiles(peer))) await writeFile(join(initial.dir, payload, name), content);
      payloads.push(payload);
    }
    const publish = async (payload: string) => {
      await symlink(payload, join(initial.dir, '..data_tmp'));
      await rename(join(initial.dir, '..data_tmp'), join(initial.dir, '..data'));
    };
    const server = await startLifecycleApp({ credentials: initial.credentials, reload: { debounceMs: 0 } });
    // The module's client follows the same store: one generation of pools per credential version, each to be drained.
    const http = server.app.get(MtlsHttpClient);
    const agent = keepAliveAgent(orders);
    const url = `https://127.0.0.1:${server.port}/ping`;
    let rotated: () => void = () => undefined;
    const unsubscribe = server.store.subscribe(() => rotated());
    const oldSets: Array<WeakRef<Credentials>> = [];
    let heapAfterWarmUp = 0;
    let failures = 0;

    const startedAt = performance.now();
    for (let reload = 1; reload <= RELOADS; reload++) {
      const done = new Promise<void>((resolve) => (rotated = resolve));
      oldSets.push(new WeakRef(server.store.current));
      await publish(payloads[reload % payloads.length]!);
      await done;
      // The test's own event log holds every rotated set: keep it out of the measurement.
      server.events.length = 0;
      if (reload % 50 === 0) {
        // Traffic on both sides, so that every generation has connections to drain.
        const [viaClient, viaAgent] = await Promise.all([
          http.get(url, { expectPeer: SERVER }),
          get(server.port, orders, '/ping', { agent }),
        ]);
        if (viaClient.status !== 200 || viaAgent.status !== 200) failures++;
      }
      if (reload === WARM_UP) {
        gc();
        heapAfterWarmUp = process.memoryUsage().heapUsed;
      }
    }
    const elapsed = performance.now() - startedAt;
    await sleep(100);
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    const growth = heapAfter - heapAfterWarmUp;
    // The last sets may still be referenced by a draining client generation or a closing connection.
    const retained = oldSets.slice(0, -2).filter((ref) => ref.deref() !== undefined).length;
    console.info(
      `${RELOADS} reloads in ${(elapsed / 1000).toFixed(1)} s (${(elapsed / RELOADS).toFixed(1)} ms each); ` +
        `heap ${(heapAfterWarmUp / 2 ** 20).toFixed(1)} MiB after ${WARM_UP}, ${(heapAfter / 2 ** 20).toFixed(1)} MiB after ${RELOADS}; ` +
        `${retained} of ${oldSets.length - 2} replaced sets still reachable`,
    );

    unsubscribe();
    agent.destroy();
    await server.close();
    resources.endWindow();
    // Whatever is still alive after a few GCs and undici's timer wheel has gone idle (it ticks every 499 ms and stops
    // once its timers are cleared) was leaked. Destroy hooks of collected handles run on a later turn.
    let leaked: string[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      gc();
      await sleep(150);
      leaked = resources.live(LEAKABLE);
      if (leaked.length === 0) break;
    }
    resources.stop();

    expect(failures).toBe(0);
    expect(server.store.version).toBe(RELOADS + 1);
    expect(retained).toBe(0);
    // Replaced sets are all collectable; what is left is noise from the test's own allocations.
    expect(growth).toBeLessThan(8 * 2 ** 20);
    expect(leaked).toEqual([]);
    expect(handles()).toEqual(handlesBefore);
  }, 120_000);
});
