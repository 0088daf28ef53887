// A server under test, in its own process (pinned to its own CPU by run.ts) so that its CPU time is its own.
// Usage: node dist/bench/bench-server.js '<ServerConfig JSON>'; answers over IPC (see protocol.ts).
import 'reflect-metadata';
import {
  Controller,
  ForbiddenException,
  Get,
  Injectable,
  Module,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type Type,
} from '@nestjs/common';
import { APP_GUARD, NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { mtlsFastifyAdapter } from '../lib/fastify/index.js';
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { MtlsHttpClient } from '../lib/client/index.js';
import type { CredentialStore } from '../lib/credentials/credential-store.js';
import { loadCredentials, resolveCredentialFiles } from '../lib/credentials/credentials-loader.js';
import { CredentialsReloadService } from '../lib/credentials-reload.service.js';
import { secureContextOptions } from '../lib/credentials/secure-context.js';
import { AllowPeers, MTLS_IDENTITY_CREDENTIALS, MtlsModule, mtlsHttpsOptions, RequireToken } from '../lib/index.js';
import { writeKubernetesSecret } from '../lib/testing/index.js';
import { report } from './child-process.js';
import { BENCH_BODY, BENCH_PATH, type ReloadMemoryReport, type ServerCommand, type ServerConfig } from './protocol.js';

const config = JSON.parse(process.argv[2] ?? 'null') as ServerConfig;

/** (b) and (d): the plain Nest route. */
@Controller('stock')
class StockController {
  @Get()
  get(): object {
    return BENCH_BODY;
  }
}

/** (c): the same route, admitted to the load generator's identity only. */
@Controller('stock')
@AllowPeers('orders')
class GuardedStockController {
  @Get()
  get(): object {
    return BENCH_BODY;
  }
}

/** The token group: the guarded route, also requiring a user token of the bench issuer. */
@Controller('stock')
@AllowPeers('orders')
@RequireToken('bench')
class TokenStockController {
  @Get()
  get(): object {
    return BENCH_BODY;
  }
}

/** The rotation server also calls itself through `MtlsHttpClient`, as `inventory`. */
@Controller('stock')
@AllowPeers('orders', 'inventory')
class RotationStockController {
  @Get()
  get(): object {
    return BENCH_BODY;
  }
}

/**
 * (d), for scale only — the anti-pattern DESIGN.md measured at 1.36×: re-reads the peer certificate and splits
 * Node's escaped `subjectaltname` string on every request. Splitting that string is also unsafe (san-injection.md).
 */
@Injectable()
class NaiveSanGuard implements CanActivate {
  readonly #expected = `URI:${config.callerSpiffeId}`;

  canActivate(context: ExecutionContext): boolean {
    const socket = context.switchToHttp().getRequest<{ socket: TLSSocket }>().socket;
    const certificate = socket.getPeerCertificate();
    const sans = (certificate.subjectaltname ?? '').split(', ');
    if (!socket.authorized || !sans.includes(this.#expected)) throw new ForbiddenException();
    return true;
  }
}

type TlsServerOptions = SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };

/** (e): the cheapest possible guard, to tell what Nest charges for running any guard from what a guard does. */
@Injectable()
class AdmitAllGuard implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

async function tlsServerOptions(): Promise<TlsServerOptions> {
  const credentials = await loadCredentials(resolveCredentialFiles({ dir: config.credentialsDir }));
  // The very option set MtlsModule installs, so that (a), (b) and (d) negotiate exactly what (c) does.
  return { ...secureContextOptions(credentials), requestCert: true, rejectUnauthorized: true };
}

async function startRaw(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer(await tlsServerOptions(), (request, response) => {
    if (request.url !== BENCH_PATH) {
      response.writeHead(404).end();
      return;
    }
    const body = JSON.stringify(BENCH_BODY);
    response.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

function nestModule(): { module: Type; httpsOptions: () => Promise<TlsServerOptions | undefined> } {
  return nestModuleOf(config.variant);
}

function nestModuleOf(variant: ServerConfig['variant']): {
  module: Type;
  httpsOptions: () => Promise<TlsServerOptions | undefined>;
} {
  const peers = { orders: config.callerSpiffeId, inventory: config.serverSpiffeId };
  switch (variant) {
    case 'nest': {
      @Module({ controllers: [StockController] })
      class PlainAppModule {}
      return { module: PlainAppModule, httpsOptions: tlsServerOptions };
    }
    case 'naive': {
      @Module({ controllers: [StockController], providers: [{ provide: APP_GUARD, useClass: NaiveSanGuard }] })
      class NaiveGuardAppModule {}
      return { module: NaiveGuardAppModule, httpsOptions: tlsServerOptions };
    }
    case 'any-guard': {
      @Module({ controllers: [StockController], providers: [{ provide: APP_GUARD, useClass: AdmitAllGuard }] })
      class AnyGuardAppModule {}
      return { module: AnyGuardAppModule, httpsOptions: tlsServerOptions };
    }
    case 'fastify':
      return nestModuleOf('nest');
    case 'fastify-mtls':
    case 'fastify-mtls-h2':
      return nestModuleOf('mtls');
    case 'mtls': {
      @Module({
        imports: [MtlsModule.forRoot({ credentials: { dir: config.credentialsDir }, peers: { orders: peers.orders } })],
        controllers: [GuardedStockController],
      })
      class MtlsAppModule {}
      return { module: MtlsAppModule, httpsOptions: async () => mtlsHttpsOptions() };
    }
    case 'mtls-token': {
      @Module({
        imports: [
          MtlsModule.forRoot({
            credentials: { dir: config.credentialsDir },
            peers: { orders: peers.orders },
            tokens: {
              issuers: { bench: { issuer: 'https://issuer.bench.test', audience: 'inventory', jwks: config.jwksFile! } },
            },
          }),
        ],
        controllers: [TokenStockController],
      })
      class TokenAppModule {}
      return { module: TokenAppModule, httpsOptions: async () => mtlsHttpsOptions() };
    }
    case 'rotation': {
      // Reload settings are the module's defaults: the rotation latency is what a user gets out of the box.
      @Module({
        imports: [MtlsModule.forRoot({ credentials: { dir: config.credentialsDir }, peers })],
        controllers: [RotationStockController],
      })
      class RotationAppModule {}
      return { module: RotationAppModule, httpsOptions: async () => mtlsHttpsOptions() };
    }
    case 'http-nest': {
      @Module({ controllers: [StockController] })
      class PlainHttpAppModule {}
      return { module: PlainHttpAppModule, httpsOptions: async () => undefined };
    }
    case 'http-xfcc': {
      // Behind a loopback sidecar: plain HTTP, identities from x-forwarded-client-cert.
      @Module({
        imports: [
          MtlsModule.forRoot({
            credentials: { dir: config.credentialsDir },
            peers: { orders: peers.orders },
            proxy: { header: 'xfcc', trust: 'loopback' },
          }),
        ],
        controllers: [GuardedStockController],
      })
      class ProxyAppModule {}
      return { module: ProxyAppModule, httpsOptions: async () => undefined };
    }
    default:
      throw new Error(`not a Nest variant: ${variant}`);
  }
}

async function startNest(): Promise<{ port: number; app: INestApplication; close: () => Promise<void> }> {
  const { module, httpsOptions } = nestModule();
  const tls = await httpsOptions();
  const app = config.variant.startsWith('fastify')
    ? await NestFactory.create(module, await fastifyAdapter(tls), { logger: false })
    : await NestFactory.create(module, { ...(tls === undefined ? {} : { httpsOptions: tls }), logger: false });
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as { address(): AddressInfo };
  return { port: server.address().port, app, close: () => app.close() };
}

/** The Fastify variants: TLS goes into the adapter (Nest ignores `httpsOptions` with Fastify). */
async function fastifyAdapter(tls: TlsServerOptions | undefined): Promise<FastifyAdapter> {
  if (config.variant === 'fastify-mtls') return mtlsFastifyAdapter();
  if (config.variant === 'fastify-mtls-h2') return mtlsFastifyAdapter({ http2: true });
  if (tls === undefined) throw new Error(`${config.variant} needs TLS options`);
  return new FastifyAdapter({ https: tls });
}

/** Memory after full collections, so that what is left is what is still referenced. */
async function settledMemory(gc: () => void): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc();
    await setImmediate();
  }
  return process.memoryUsage();
}

async function reloadSeries(
  app: INestApplication,
  port: number,
  command: Extract<ServerCommand, { type: 'reload' }>,
): Promise<ReloadMemoryReport> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the rotation server must run with --expose-gc');
  const reloader = app.get(CredentialsReloadService).reloader('identity');
  if (reloader === undefined) throw new Error('MtlsModule started no reloader for the identity set');
  const store = app.get<CredentialStore>(MTLS_IDENTITY_CREDENTIALS);
  const client = app.get(MtlsHttpClient);
  const url = `https://127.0.0.1:${port}${BENCH_PATH}`;
  const call = async (): Promise<boolean> => {
    try {
      return (await client.get(url, { expectPeer: config.serverSpiffeId })).status === 200;
    } catch {
      return false;
    }
  };
  if (!(await call())) throw new Error(`the rotation server cannot call itself through MtlsHttpClient (${url})`);

  const before = await settledMemory(gc);
  const firstVersion = store.version;
  let rotatedByCall = 0;
  let clientFailures = 0;
  const startedAt = performance.now();
  for (let i = 0; i < command.count; i++) {
    await writeKubernetesSecret(config.credentialsDir, command.sets[i % command.sets.length]!);
    // Read at once instead of waiting out the debounce; the watcher's own (debounced) reads still run.
    if ((await reloader.reloadNow()) === 'rotated') rotatedByCall++;
    // Traffic now and then, so that retired client generations have pools to drain.
    if (i % 50 === 49 && !(await call())) clientFailures++;
  }
  const elapsedMs = performance.now() - startedAt;
  // The watcher's last debounced read (at most four quiet periods of the default 250 ms) and the client's drains.
  await sleep(1_500);
  const after = await settledMemory(gc);
  return {
    reloads: command.count,
    rotatedByCall,
    versionsAdvanced: store.version - firstVersion,
    elapsedMs,
    rssBeforeBytes: before.rss,
    rssAfterBytes: after.rss,
    heapUsedBeforeBytes: before.heapUsed,
    heapUsedAfterBytes: after.heapUsed,
    externalBeforeBytes: before.external,
    externalAfterBytes: after.external,
    clientFailures,
  };
}

async function main(): Promise<void> {
  const started = config.variant === 'raw' ? { ...(await startRaw()), app: undefined } : await startNest();
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    // A stuck close must not hang the run; exiting normally also writes the --cpu-prof profile.
    await Promise.race([started.close(), sleep(2_000)]);
    process.exit(0);
  };
  process.on('message', (command: ServerCommand) => {
    if (command.type === 'stop') {
      void stop();
    } else if (command.type === 'reload' && started.app !== undefined) {
      reloadSeries(started.app, started.port, command).then(
        (result) => report({ type: 'reloaded', report: result }),
        (error: unknown) => report({ type: 'failed', message: String(error instanceof Error ? error.stack : error) }),
      );
    }
  });
  // The orchestrator went away: do not linger.
  process.on('disconnect', () => void stop());
  const readyAtUs = Number(process.hrtime.bigint() / 1000n);
  await report({ type: 'ready', port: started.port, pid: process.pid, readyAtUs });
}

main().catch(async (error: unknown) => {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  await report({ type: 'failed', message }).catch(() => undefined);
  process.exit(1);
});
