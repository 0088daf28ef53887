import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CredentialsStatus, type MtlsEvent } from 'nestjs-mtls';
import { expiryWarningWindow } from '../../lib/observability/credentials-status.js';
import { TestPki } from '../../lib/testing/index.js';
import {
  CapturingLogger,
  HOUR,
  INVENTORY,
  MINUTE,
  ORDERS,
  reloadFromDisk,
  serverCredentials,
  startObservedApp,
  writeMismatchedSet,
  writeNewSet,
} from './fixtures.js';

describe('expiryWarningWindow', () => {
  const notBefore = new Date('2030-01-01T00:00:00Z');
  it.each([
    ['24 h lifetime, default: a third', 24 * HOUR, undefined, 8 * HOUR],
    ['90 days lifetime, default: 30 days', 90 * 24 * HOUR, undefined, 30 * 24 * HOUR],
    ['configured window wins', 24 * HOUR, HOUR, HOUR],
    ['configured 0 disables the warning window', 24 * HOUR, 0, 0],
  ])('%s', (_, lifetimeMs, configured, expected) => {
    const leaf = { notBefore, notAfter: new Date(notBefore.getTime() + lifetimeMs) };
    expect(expiryWarningWindow(leaf, configured)).toBe(expected);
  });
});

describe('CredentialsStatus', () => {
  let pki: TestPki;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  const expiring = (events: MtlsEvent[]) => events.filter((event) => event.type === 'credentials.expiring');

  it('warns when the clock brings the certificate into its window, once per version, then reports its expiry', async () => {
    const logger = new CapturingLogger();
    const server = await serverCredentials(pki, 24 * HOUR);
    const observed = await startObservedApp({ credentials: server.credentials }, { logger });
    app = observed.app;
    const status = app.get(CredentialsStatus);
    expect(expiring(observed.events)).toHaveLength(0);

    // The interval calls checkExpiry(); move the clock instead of waiting for it.
    vi.useFakeTimers({ toFake: ['Date'], now: server.peer.notAfter.getTime() - 7 * HOUR });
    try {
      status.checkExpiry();
      status.checkExpiry();
      expect(expiring(observed.events)).toHaveLength(1);
      const [event] = expiring(observed.events);
      expect(event).toMatchObject({ type: 'credentials.expiring', set: 'identity', remainingMs: 7 * HOUR });
      expect(logger.messages('warn')).toEqual([
        `identity certificate ${INVENTORY} (sha256 ${server.peer.fingerprint256}) expires in 7h0m, ` +
          `at ${server.peer.notAfter.toISOString()} (warning window 8h0m): ` +
          `check that its issuer renews ${server.dir}/tls.crt`,
      ]);

      vi.setSystemTime(server.peer.notAfter.getTime() + 1000);
      status.checkExpiry();
      status.checkExpiry();
      expect(expiring(observed.events)).toHaveLength(1);
      expect(logger.messages('error')).toEqual([
        `identity certificate ${INVENTORY} (sha256 ${server.peer.fingerprint256}) expired at ` +
          `${server.peer.notAfter.toISOString()}; peers reject it until ${server.dir}/tls.crt is renewed`,
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('signals a set installed inside its window at once, logging it once, and each new version again', async () => {
    const logger = new CapturingLogger();
    const server = await serverCredentials(pki, 10 * MINUTE);
    const observed = await startObservedApp({ credentials: server.credentials, expiryWarningMs: HOUR }, { logger });
    app = observed.app;
    const status = app.get(CredentialsStatus);

    expect(expiring(observed.events)).toHaveLength(1);
    const [event] = expiring(observed.events);
    expect(event).toMatchObject({ type: 'credentials.expiring', set: 'identity' });
    if (event?.type !== 'credentials.expiring') throw new Error('unreachable');
    expect(event.credentials.leaf.fingerprint256).toBe(server.peer.fingerprint256);
    expect(event.remainingMs).toBeGreaterThan(8 * MINUTE);
    expect(event.remainingMs).toBeLessThanOrEqual(9 * MINUTE);
    // Startup validation already said it; the watch does not repeat it.
    const expiryLines = logger.messages('warn').filter((line) => line.includes('expires'));
    expect(expiryLines).toHaveLength(1);
    expect(expiryLines[0]).toMatch(new RegExp(`^identity credentials: ${server.dir}/tls\\.crt expires at `));

    // Later ticks of the same version stay quiet.
    status.checkExpiry();
    status.checkExpiry();
    expect(expiring(observed.events)).toHaveLength(1);

    // A new version still inside the window signals again; a healthy one does not.
    await writeNewSet(pki, server.dir, 20 * MINUTE);
    await reloadFromDisk(app);
    expect(expiring(observed.events)).toHaveLength(2);
    await writeNewSet(pki, server.dir, 24 * HOUR);
    await reloadFromDisk(app);
    status.checkExpiry();
    expect(expiring(observed.events)).toHaveLength(2);
    expect(status.status().expiring).toBe(false);
    expect(status.status().current.version).toBe(3);
  });

  it('uses a third of the lifetime when no window is configured', async () => {
    const notBefore = new Date(Date.now() - 2 * HOUR - 50 * MINUTE);
    const notAfter = new Date(notBefore.getTime() + 3 * HOUR);
    const nearEnd = await pki.credentials({ spiffeId: INVENTORY, notBefore, notAfter });
    const observed = await startObservedApp({ credentials: nearEnd.credentials });
    app = observed.app;

    expect(expiring(observed.events)).toHaveLength(1);
    const status = app.get(CredentialsStatus).status();
    expect(status.expiryWarningMs).toBe(HOUR);
    expect(status.expiring).toBe(true);
  });

  it('stays quiet for a fresh certificate', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    const observed = await startObservedApp({ credentials: server.credentials });
    app = observed.app;

    expect(expiring(observed.events)).toHaveLength(0);
    expect(app.get(CredentialsStatus).status().expiring).toBe(false);
  });

  it('knows each set: its certificate, time left, last reload and counts', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    const client = await serverCredentials(pki, 12 * HOUR, ORDERS);
    const observed = await startObservedApp({
      credentials: server.credentials,
      client: { credentials: client.credentials },
    });
    app = observed.app;
    const credentials = app.get(CredentialsStatus);

    expect(credentials.setNames).toEqual(['identity', 'client']);
    const now = Date.now();
    const identity = credentials.status('identity', now);
    expect(identity).toMatchObject({
      set: 'identity',
      current: {
        spiffeId: INVENTORY,
        fingerprint256: server.peer.fingerprint256,
        serialNumber: server.peer.serialNumber,
        notBefore: server.peer.notBefore,
        notAfter: server.peer.notAfter,
        version: 1,
      },
      remainingMs: server.peer.notAfter.getTime() - now,
      expiryWarningMs: 8 * HOUR,
      expiring: false,
      lastReload: { result: 'loaded' },
      counts: { loaded: 1, rotated: 0, refused: 0 },
    });
    expect(credentials.status('client', now).current.spiffeId).toBe(ORDERS);

    await writeMismatchedSet(pki, client.dir, ORDERS);
    await reloadFromDisk(app, 'client');
    const refused = observed.events.find((event) => event.type === 'credentials.refused');
    if (refused?.type !== 'credentials.refused') throw new Error('no credentials.refused event');
    const refusal = refused.error;
    expect(credentials.status('client').lastReload).toEqual({
      result: 'refused',
      at: expect.any(Date),
      refusal: { code: 'ERR_MTLS_KEY_MISMATCH', file: refusal.file, field: refusal.field, reason: refusal.reason },
    });
    expect(credentials.status('client').counts).toEqual({ loaded: 1, rotated: 0, refused: 1 });
    expect(credentials.status('identity').lastReload.result).toBe('loaded');

    const next = await writeNewSet(pki, server.dir, 24 * HOUR);
    await reloadFromDisk(app, 'identity');
    expect(credentials.status('identity').current).toMatchObject({ fingerprint256: next.fingerprint256, version: 2 });
    expect(credentials.status('identity').lastReload.result).toBe('rotated');
    expect(credentials.status('identity').counts).toEqual({ loaded: 1, rotated: 1, refused: 0 });
    expect(credentials.all().map((set) => set.set)).toEqual(['identity', 'client']);
  });

  it('answers for the client with the identity set when there is no separate client set', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials }));
    const credentials = app.get(CredentialsStatus);

    expect(credentials.setNames).toEqual(['identity']);
    expect(credentials.status('client')).toMatchObject({ set: 'identity', current: { spiffeId: INVENTORY } });
  });
});
