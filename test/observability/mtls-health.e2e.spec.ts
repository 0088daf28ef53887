import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TerminusModule } from '@nestjs/terminus';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AllowAnyPeer, CredentialsStatus, MtlsConfigError, type MtlsEvent } from '../../lib/index.js';
import { callAs, TestPki, type TestPeer } from '../../lib/testing/index.js';
import { MtlsHealthIndicator, type MtlsHealthDetails } from '../../lib/observability/terminus/index.js';
import {
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

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly mtls: MtlsHealthIndicator,
  ) {}

  @Get()
  @AllowAnyPeer()
  @HealthCheck()
  check() {
    return this.health.check([() => this.mtls.isHealthy('mtls')]);
  }

  @Get('two-days')
  @AllowAnyPeer()
  @HealthCheck()
  twoDays() {
    return this.health.check([() => this.mtls.isHealthy('mtls', { minRemainingMs: 48 * HOUR })]);
  }
}

interface HealthBody {
  status: 'ok' | 'error';
  info?: { mtls?: MtlsHealthDetails & { status: string } };
  error?: { mtls?: MtlsHealthDetails & { status: string } };
  details: { mtls: MtlsHealthDetails & { status: string } };
}

const withTerminus = {
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [MtlsHealthIndicator],
};

describe('MtlsHealthIndicator', () => {
  let pki: TestPki;
  let orders: TestPeer;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    orders = await pki.peer(ORDERS);
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function health(path = '/health'): Promise<{ status: number; body: HealthBody }> {
    const res = await callAs(app!, orders).get(path);
    return { status: res.status, body: res.json<HealthBody>() };
  }

  it('is up for a fresh certificate, with its identity, time left and the startup load', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials, peers: { orders: ORDERS } }, withTerminus));

    const { status, body } = await health();

    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    const mtls = body.details.mtls;
    expect(mtls.status).toBe('up');
    expect(mtls.identity).toMatchObject({
      spiffeId: INVENTORY,
      fingerprint256: server.peer.fingerprint256,
      notAfter: server.peer.notAfter.toISOString(),
      // Default threshold: a third of the 24-hour lifetime.
      minRemainingSeconds: 8 * 3600,
      caNotAfter: expect.any(String),
      version: 1,
      lastReload: { result: 'loaded', at: expect.any(String) },
      reloads: { rotated: 0, refused: 0 },
    });
    const expectedLeft = (server.peer.notAfter.getTime() - Date.now()) / 1000;
    expect(mtls.identity.secondsLeft).toBeGreaterThan(expectedLeft - 30);
    expect(mtls.identity.secondsLeft).toBeLessThanOrEqual(expectedLeft);
    expect(mtls.client).toBeUndefined();
    expect(mtls.message).toBeUndefined();
  });

  it('is down (503) for a certificate inside the threshold, and says which and why', async () => {
    const server = await serverCredentials(pki, 10 * MINUTE);
    ({ app } = await startObservedApp(
      { credentials: server.credentials, peers: { orders: ORDERS }, expiryWarningMs: HOUR },
      withTerminus,
    ));

    const { status, body } = await health();

    expect(status).toBe(503);
    expect(body.status).toBe('error');
    const mtls = body.error!.mtls!;
    expect(mtls.status).toBe('down');
    expect(mtls.identity.minRemainingSeconds).toBe(3600);
    expect(mtls.identity.secondsLeft).toBeLessThan(9 * 60);
    expect(mtls.message).toMatch(
      new RegExp(
        `^identity certificate ${INVENTORY} expires in \\d+m\\d+s ` +
          `\\(at ${server.peer.notAfter.toISOString()}\\), less than the 1h0m threshold$`,
      ),
    );
  });

  it('takes minRemainingMs over the module window', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials, peers: { orders: ORDERS } }, withTerminus));

    expect((await health('/health')).status).toBe(200);
    const { status, body } = await health('/health/two-days');
    expect(status).toBe(503);
    expect(body.details.mtls.identity.minRemainingSeconds).toBe(48 * 3600);
    expect(body.details.mtls.message).toContain('less than the 2d0h threshold');
  });

  it('stays up after a refused reload, and reports the refusal', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    let events: MtlsEvent[];
    ({ app, events } = await startObservedApp({ credentials: server.credentials, peers: { orders: ORDERS } }, withTerminus));

    await writeMismatchedSet(pki, server.dir);
    await reloadFromDisk(app);
    const refused = events.find((event) => event.type === 'credentials.refused');
    if (refused?.type !== 'credentials.refused') throw new Error('no credentials.refused event');
    const refusal = refused.error;
    expect(refusal.code).toBe('ERR_MTLS_KEY_MISMATCH');
    const { status, body } = await health();

    expect(status).toBe(200);
    const mtls = body.details.mtls;
    expect(mtls.status).toBe('up');
    expect(mtls.identity.fingerprint256).toBe(server.peer.fingerprint256);
    expect(mtls.identity.lastReload).toEqual({
      result: 'refused',
      at: expect.any(String),
      code: 'ERR_MTLS_KEY_MISMATCH',
      field: refusal.field,
      file: refusal.file,
      reason: refusal.reason,
    });
    expect(mtls.identity.reloads).toEqual({ rotated: 0, refused: 1 });
    // Nothing in the answer comes from the key.
    expect(JSON.stringify(body)).not.toMatch(/PRIVATE KEY/);
  });

  it('follows a rotation: the new certificate, version 2, lastReload rotated', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials, peers: { orders: ORDERS } }, withTerminus));

    const next = await writeNewSet(pki, server.dir, 48 * HOUR);
    await reloadFromDisk(app);
    const { status, body } = await health();

    expect(status).toBe(200);
    expect(body.details.mtls.identity).toMatchObject({
      fingerprint256: next.fingerprint256,
      notAfter: next.notAfter.toISOString(),
      version: 2,
      lastReload: { result: 'rotated' },
      reloads: { rotated: 1, refused: 0 },
    });
  });

  it('checks a separate client set too', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    const client = await serverCredentials(pki, 10 * MINUTE, ORDERS);
    ({ app } = await startObservedApp(
      {
        credentials: server.credentials,
        peers: { orders: ORDERS },
        client: { credentials: client.credentials },
        expiryWarningMs: HOUR,
      },
      withTerminus,
    ));

    const { status, body } = await health();

    expect(status).toBe(503);
    const mtls = body.details.mtls;
    expect(mtls.identity.spiffeId).toBe(INVENTORY);
    expect(mtls.client).toMatchObject({ spiffeId: ORDERS, fingerprint256: client.peer.fingerprint256 });
    expect(mtls.message).toMatch(new RegExp(`^client certificate ${ORDERS} expires in`));
  });

  it('says when the certificate has expired', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials }));
    const indicator = new MtlsHealthIndicator(new HealthIndicatorService(), app.get(CredentialsStatus));

    vi.useFakeTimers({ toFake: ['Date'], now: server.peer.notAfter.getTime() + 1000 });
    try {
      const result = indicator.isHealthy('tls');
      expect(result.tls.status).toBe('down');
      expect(result.tls.identity.secondsLeft).toBe(-1);
      expect(result.tls.message).toBe(`identity certificate ${INVENTORY} expired at ${server.peer.notAfter.toISOString()}`);
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses a meaningless threshold', async () => {
    const server = await serverCredentials(pki, 24 * HOUR);
    ({ app } = await startObservedApp({ credentials: server.credentials, peers: { orders: ORDERS } }));
    const indicator = new MtlsHealthIndicator(new HealthIndicatorService(), app.get(CredentialsStatus));

    for (const minRemainingMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const attempt = () => indicator.isHealthy('mtls', { minRemainingMs });
      expect(attempt).toThrow(MtlsConfigError);
      expect(attempt).toThrow(
        `MtlsHealthIndicator option "minRemainingMs" is ${minRemainingMs}; use a number of milliseconds ≥ 0`,
      );
    }
    expect(indicator.isHealthy().mtls.status).toBe('up');
  });
});
