import 'reflect-metadata';
import {
  Controller,
  Get,
  Module,
  type DynamicModule,
  type INestApplication,
  type LoggerService,
  type Provider,
  type Type,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Registry } from 'prom-client';
import {
  AllowPeers,
  MtlsEvents,
  MtlsModule,
  mtlsHttpsOptions,
  type CredentialSetName,
  type MtlsEvent,
  type MtlsModuleOptions,
} from '../../lib/index.js';
import { CredentialsReloadService } from '../../lib/credentials-reload.service.js';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';

export const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
export const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
export const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

/** Stock, for orders only: admin is denied. */
@Controller('stock')
@AllowPeers('orders')
export class StockController {
  @Get()
  get(): { available: number } {
    return { available: 7 };
  }
}

/** Log lines by level, captured from Nest's Logger. */
export class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = [];
  log(message: unknown): void {
    this.lines.push({ level: 'log', message: String(message) });
  }
  warn(message: unknown): void {
    this.lines.push({ level: 'warn', message: String(message) });
  }
  error(message: unknown): void {
    this.lines.push({ level: 'error', message: String(message) });
  }
  messages(level: string): string[] {
    return this.lines.filter((line) => line.level === level).map((line) => line.message);
  }
}

/** A listening app and every event its bus emitted since before `init()`. */
export interface ObservedApp {
  readonly app: INestApplication;
  readonly events: MtlsEvent[];
}

/**
 * Like test/support/app.ts `startMtlsApp`, with extra imports and providers (TerminusModule, MtlsMetricsModule), and
 * the event bus recorded from before init, so that what happens at startup is seen too.
 */
export async function startObservedApp(
  options: MtlsModuleOptions,
  extra: {
    imports?: Array<Type | DynamicModule>;
    controllers?: Type[];
    providers?: Provider[];
    logger?: LoggerService;
  } = {},
): Promise<ObservedApp> {
  @Module({
    imports: [MtlsModule.forRoot(options), ...(extra.imports ?? [])],
    controllers: extra.controllers ?? [],
    providers: extra.providers ?? [],
  })
  class ObservedAppModule {}
  const builder = Test.createTestingModule({ imports: [ObservedAppModule] });
  // Also for what providers log while the module compiles (the startup load of the credentials).
  if (extra.logger !== undefined) builder.setLogger(extra.logger);
  const moduleRef = await builder.compile();
  const events: MtlsEvent[] = [];
  moduleRef.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  const app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger: extra.logger ?? false });
  await app.listen(0, '127.0.0.1');
  return { app, events };
}

/** A server identity valid from a minute ago for `validityMs`, in the Kubernetes Secret layout. */
export function serverCredentials(pki: TestPki, validityMs: number, spiffeId = INVENTORY) {
  const notBefore = new Date(Date.now() - MINUTE);
  return pki.credentials({ spiffeId, notBefore, notAfter: new Date(notBefore.getTime() + validityMs) });
}

/** Writes a new, valid set into a Secret directory as kubelet would; returns the new leaf. */
export async function writeNewSet(pki: TestPki, dir: string, validityMs: number, spiffeId = INVENTORY): Promise<TestPeer> {
  const notBefore = new Date(Date.now() - MINUTE);
  const peer = await pki.peer({
    spiffeId,
    ipAddresses: ['127.0.0.1'],
    dnsNames: ['localhost'],
    notBefore,
    notAfter: new Date(notBefore.getTime() + validityMs),
  });
  await writeKubernetesSecret(dir, secretFiles(peer));
  return peer;
}

/** Writes a bad set into a Secret directory as kubelet would: a real certificate with the key of another one. */
export async function writeMismatchedSet(pki: TestPki, dir: string, spiffeId = INVENTORY): Promise<void> {
  const [certificate, other] = await Promise.all([pki.peer(spiffeId), pki.peer(spiffeId)]);
  await writeKubernetesSecret(dir, { ...secretFiles(certificate), 'tls.key': other.keyPem });
}

/**
 * Makes the app's reloader act on the files now, as its watcher does after the debounce (and may already have done):
 * on return the set on disk has been read, validated, and installed or refused, with its events emitted.
 */
export async function reloadFromDisk(app: INestApplication, set: CredentialSetName = 'identity'): Promise<void> {
  const reloader = app.get(CredentialsReloadService).reloader(set);
  if (reloader === undefined) throw new Error(`no reloader runs for the ${set} set`);
  await reloader.reloadNow();
}

/** The value of one series of a metric, or undefined when the series does not exist. */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return undefined;
  const { values } = await metric.get();
  const wanted = Object.entries(labels);
  const series = values.find(
    (value) =>
      Object.keys(value.labels).length === wanted.length && wanted.every(([key, expected]) => value.labels[key] === expected),
  );
  return series?.value;
}
