import type { INestApplication } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CredentialsStatus, MtlsEvents } from 'nestjs-mtls';
import { MtlsMetrics } from 'nestjs-mtls/prometheus';
import { MtlsHealthIndicator } from 'nestjs-mtls/terminus';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { SampleConfigError } from './sample-config.js';

// Health and metrics carry no secret but say a lot about the service: never reachable from outside the host.
const METRICS_HOST = '127.0.0.1';

/** `METRICS_PORT`, checked; undefined (metrics listener off) when unset or empty. */
export function metricsPortFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.METRICS_PORT;
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new SampleConfigError(`METRICS_PORT must be a port number (0-65535), got ${JSON.stringify(value)}`);
  }
  return port;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Serves `GET /health` (the mTLS health indicator: 200 when up, 503 when down) and `GET /metrics` (Prometheus text
 * format: the mTLS metrics and the process's default metrics) over plain HTTP on 127.0.0.1:`METRICS_PORT`, beside the
 * service's mTLS port. Does nothing when `METRICS_PORT` is unset. Call it after `NestFactory.create` and before
 * `app.listen`, so that no handshake or reload goes uncounted; it closes when the application closes.
 * @example
 * ```ts
 * const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() });
 * await startMetricsServer('inventory', app);
 * await app.listen(port, host);
 * ```
 */
export async function startMetricsServer(
  name: string,
  app: INestApplication,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Server | undefined> {
  const port = metricsPortFromEnv(env);
  if (port === undefined) return undefined;

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const credentials = app.get(CredentialsStatus);
  const metrics = new MtlsMetrics(app.get(MtlsEvents), credentials, registry);
  const health = new MtlsHealthIndicator(new HealthIndicatorService(), credentials);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/health' && path !== '/metrics') return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (path === '/metrics') return send(res, 200, registry.contentType, await registry.metrics());
    const result = health.isHealthy('mtls');
    send(res, result.mtls.status === 'up' ? 200 : 503, 'application/json', `${JSON.stringify(result)}\n`);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      metrics.close();
      reject(new SampleConfigError(`METRICS_PORT ${port} on ${METRICS_HOST} is not available: ${error.message}`));
    });
    server.listen(port, METRICS_HOST, resolve);
  });
  app.getHttpServer().once('close', () => {
    metrics.close();
    server.close();
  });
  const address = server.address() as AddressInfo;
  console.log(`${name} health and metrics on http://${METRICS_HOST}:${address.port} (/health, /metrics)`);
  return server;
}
