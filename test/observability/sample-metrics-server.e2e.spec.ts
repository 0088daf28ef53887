import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mtlsHttpsOptions } from '../../lib/index.js';
import { callAs, TestPki } from '../../lib/testing/index.js';
import { metricsPortFromEnv, startMetricsServer } from '../../sample-app/common/metrics-server.js';
import { SampleConfigError, SPIFFE_IDS } from '../../sample-app/common/sample-config.js';
import { InventoryModule } from '../../sample-app/inventory/inventory.module.js';

async function startInventory(pki: TestPki, validity: { notBefore: Date; notAfter: Date }): Promise<INestApplication> {
  const server = await pki.credentials({ spiffeId: SPIFFE_IDS.inventory, ...validity });
  return NestFactory.create(InventoryModule.register(server.credentials), {
    httpsOptions: mtlsHttpsOptions(),
    logger: false,
  });
}

const HOUR = 3_600_000;

describe('sample metrics listener (METRICS_PORT)', () => {
  let pki: TestPki;
  let app: INestApplication;
  let metricsServer: Server;
  let base: string;
  const printed = vi.spyOn(console, 'log').mockImplementation(() => undefined);

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const now = Date.now();
    app = await startInventory(pki, { notBefore: new Date(now - 60_000), notAfter: new Date(now + 24 * HOUR) });
    metricsServer = (await startMetricsServer('inventory', app, { METRICS_PORT: '0' }))!;
    await app.listen(0, '127.0.0.1');
    const { address, port } = metricsServer.address() as AddressInfo;
    base = `http://${address}:${port}`;
  });

  afterAll(async () => {
    await app?.close();
    printed.mockRestore();
  });

  it('listens on loopback only, and says where', () => {
    expect((metricsServer.address() as AddressInfo).address).toBe('127.0.0.1');
    expect(printed).toHaveBeenCalledWith(`inventory health and metrics on ${base} (/health, /metrics)`);
  });

  it('answers /health with the indicator as JSON, over plain HTTP', async () => {
    const res = await fetch(`${base}/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as { mtls: { status: string; identity: { spiffeId: string; secondsLeft: number } } };
    expect(body.mtls.status).toBe('up');
    expect(body.mtls.identity.spiffeId).toBe(SPIFFE_IDS.inventory);
    expect(body.mtls.identity.secondsLeft).toBeGreaterThan(23 * 3600);
  });

  it('answers /metrics in the Prometheus text format, with the mTLS and process metrics', async () => {
    const admin = await pki.peer(SPIFFE_IDS.admin);
    expect((await callAs(app, admin).get('/stock/42')).status).toBe(403);

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toMatch(/^nestjs_mtls_certificate_not_after_seconds\{set="identity"\} \d+$/m);
    expect(text).toMatch(/^nestjs_mtls_ca_not_after_seconds\{set="identity"\} \d+$/m);
    expect(text).toContain('nestjs_mtls_peer_denied_total{reason="ERR_MTLS_PEER_DENIED",route="StockController.get"} 1\n');
    expect(text).toContain('nestjs_mtls_credential_reloads_total{set="identity",result="refused"} 0\n');
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
  });

  it.each([
    ['GET', '/', 404],
    ['GET', '/healthz', 404],
    ['POST', '/metrics', 405],
    ['DELETE', '/health', 405],
    ['HEAD', '/health', 200],
  ])('%s %s → %i', async (method, path, status) => {
    const res = await fetch(`${base}${path}`, { method });
    expect(res.status).toBe(status);
    if (status === 405) expect(res.headers.get('allow')).toBe('GET, HEAD');
  });

  it('is not the mTLS port: the mTLS server does not answer plain HTTP', async () => {
    const { port } = app.getHttpServer().address() as AddressInfo;
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });
});

describe('sample metrics listener: health turns 503 near expiry, and lifecycle', () => {
  it('answers 503 when the certificate is inside its warning window', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const now = Date.now();
    // A third of a 3-hour lifetime is 1 hour; 10 minutes are left.
    const app = await startInventory(pki, {
      notBefore: new Date(now - 170 * 60_000),
      notAfter: new Date(now + 10 * 60_000),
    });
    const printed = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    let closed = false;
    try {
      const server = (await startMetricsServer('inventory', app, { METRICS_PORT: '0' }))!;
      await app.listen(0, '127.0.0.1');
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/health`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { mtls: { status: string; message: string } };
      expect(body.mtls.status).toBe('down');
      expect(body.mtls.message).toMatch(
        new RegExp(
          `^identity certificate ${SPIFFE_IDS.inventory} expires in \\d+m\\d+s \\(at .+\\), less than the 1h0m threshold$`,
        ),
      );

      // Closes with the application.
      const serverClosed = once(server, 'close');
      await app.close();
      closed = true;
      await serverClosed;
      expect(server.listening).toBe(false);
    } finally {
      if (!closed) await app.close();
      printed.mockRestore();
    }
  });

  it('is off when METRICS_PORT is unset or empty', async () => {
    expect(metricsPortFromEnv({})).toBeUndefined();
    expect(metricsPortFromEnv({ METRICS_PORT: '' })).toBeUndefined();
    expect(metricsPortFromEnv({ METRICS_PORT: '9464' })).toBe(9464);
  });

  it.each(['http', '-1', '65536', '94.64', ' 9464x'])('refuses METRICS_PORT=%j', (value) => {
    const read = () => metricsPortFromEnv({ METRICS_PORT: value });
    expect(read).toThrow(SampleConfigError);
    expect(read).toThrow(`METRICS_PORT must be a port number (0-65535), got ${JSON.stringify(value)}`);
  });

  it('fails clearly when the port is taken', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const now = Date.now();
    const app = await startInventory(pki, { notBefore: new Date(now - 60_000), notAfter: new Date(now + HOUR) });
    const printed = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as AddressInfo;
    try {
      const start = startMetricsServer('inventory', app, { METRICS_PORT: String(port) });
      await expect(start).rejects.toThrow(SampleConfigError);
      await expect(start).rejects.toThrow(
        new RegExp(`^METRICS_PORT ${port} on 127\\.0\\.0\\.1 is not available: listen EADDRINUSE`),
      );
      const server = await startMetricsServer('inventory', app, { METRICS_PORT: '0' });
      expect(server?.listening).toBe(true);
      server?.close();
    } finally {
      squatter.close();
      await app.close();
      printed.mockRestore();
    }
  });
});
