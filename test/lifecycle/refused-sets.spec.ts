import 'reflect-metadata';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CredentialsError } from '../../lib/index.js';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { get, serverFingerprint, sleep, startLifecycleApp, waitFor, type LifecycleApp } from './lifecycle-support.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

describe('a credential set that fails validation on reload', () => {
  let pki: TestPki;
  let dir: string;
  let orders: TestPeer;
  let serving: TestPeer;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const initial = await pki.credentials(SERVER);
    dir = initial.dir;
    serving = initial.peer;
    orders = await pki.peer(ORDERS);
    // Fast retries, so that several happen while each bad set sits on disk.
    server = await startLifecycleApp({ credentials: initial.credentials, reload: { debounceMs: 20, maxRetryDelayMs: 100 } });
  });

  afterAll(async () => {
    await server?.close();
  });

  const issueServer = () => pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
  const cases: Array<[name: string, files: () => Promise<Record<string, string>>, code: string, file: string, reason: RegExp]> = [
    [
      'the key of another certificate',
      async () => ({ ...secretFiles(await issueServer()), 'tls.key': (await issueServer()).keyPem }),
      'ERR_MTLS_KEY_MISMATCH',
      'tls.key',
      /the private key does not belong to the certificate/,
    ],
    [
      'a truncated certificate PEM',
      async () => {
        const files = secretFiles(await issueServer());
        return { ...files, 'tls.crt': files['tls.crt']!.slice(0, Math.floor(files['tls.crt']!.length / 2)) };
      },
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'tls.crt',
      /no matching END line/,
    ],
    [
      'an expired certificate',
      async () => secretFiles(await pki.expiredPeer(SERVER)),
      'ERR_MTLS_CERT_EXPIRED',
      'tls.crt',
      /expired at/,
    ],
    [
      'a certificate from another CA',
      async () => secretFiles(await pki.foreignPeer(SERVER)),
      'ERR_MTLS_CHAIN_UNTRUSTED',
      'ca.crt',
      /does not chain to the trust bundle/,
    ],
  ];

  it.each(cases)('refuses %s, keeps serving the old set and reports it once', async (_name, bad, code, file, reason) => {
    const version = server.store.version;
    const refusedBefore = server.events.filter((event) => event.type === 'credentials.refused').length;
    const logsBefore = server.logs.length;

    await writeKubernetesSecret(dir, await bad());
    const event = await waitFor(
      'the refusal',
      () => {
        const events = server.events.filter((event) => event.type === 'credentials.refused');
        return events.length > refusedBefore
          ? (events[events.length - 1] as { set: string; error: CredentialsError })
          : undefined;
      },
      3_000,
    );
    const refusal = event.error;
    // Several retries (20 ms, then 100 ms apart) find the same content: no new event, no new log line.
    await sleep(500);

    expect(event.set).toBe('identity');
    expect(refusal).toMatchObject({ code, file: join(dir, file) });
    expect(refusal.reason).toMatch(reason);
    expect(server.events.filter((event) => event.type === 'credentials.refused')).toHaveLength(refusedBefore + 1);
    const warnings = server.logs.slice(logsBefore).filter((line) => line.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain(
      `identity credentials on disk refused, still serving sha256 ${serving.fingerprint256}`,
    );
    expect(warnings[0]!.message).toContain(`${join(dir, file)} (`);
    expect(warnings[0]!.message).toMatch(reason);
    expect(warnings[0]!.message).not.toMatch(/PRIVATE KEY/);
    // The old set keeps serving, to new connections as to requests.
    expect(server.store.version).toBe(version);
    expect(await serverFingerprint(server.port, orders)).toBe(serving.fingerprint256);
    expect((await get(server.port, orders, '/ping')).status).toBe(200);

    // A good set written afterwards is picked up (the retries were still running).
    serving = await issueServer();
    await writeKubernetesSecret(dir, secretFiles(serving));
    await waitFor(
      'the good set',
      async () => ((await serverFingerprint(server.port, orders)) === serving.fingerprint256 ? true : undefined),
      3_000,
      10,
    );
    expect(server.store.version).toBe(version + 1);
  });
});
