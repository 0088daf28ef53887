import 'reflect-metadata';
import { Controller, Get, Module, Query, type INestApplication, type LoggerService, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHook } from 'node:async_hooks';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { open, rename, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import type { Subscription } from 'rxjs';
import {
  AllowAnyPeer,
  MTLS_IDENTITY_CREDENTIALS,
  MtlsEvents,
  mtlsHttpsOptions,
  MtlsModule,
  Peer,
  type MtlsEvent,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';
import type { CredentialStore } from 'nestjs-mtls/credentials';
import { MtlsServerBinding } from '../../lib/server/mtls-server.binding.js';
import type { TestPeer } from '../../lib/testing/index.js';

export { sleep };

/** Routes every lifecycle test calls: a cheap one, one that reports the caller, and a slow one for in-flight requests. */
@Controller()
@AllowAnyPeer()
export class ProbeController {
  @Get('ping')
  ping(): string {
    return 'ok';
  }

  @Get('whoami')
  whoami(@Peer() peer: PeerIdentity): { spiffeId: string | undefined; fingerprint256: string } {
    return { spiffeId: peer.spiffeId, fingerprint256: peer.fingerprint256 };
  }

  @Get('slow')
  async slow(@Query('ms') ms: string): Promise<string> {
    await sleep(Number(ms));
    return 'done';
  }
}

/** One captured log line. */
export interface LogLine {
  readonly level: 'log' | 'warn' | 'error';
  readonly message: string;
  readonly context: string | undefined;
}

/** A running app with everything a lifecycle test observes. */
export interface LifecycleApp {
  readonly app: INestApplication;
  readonly port: number;
  readonly events: MtlsEvent[];
  readonly logs: LogLine[];
  readonly store: CredentialStore;
  readonly binding: MtlsServerBinding;
  close(): Promise<void>;
}

/** Starts a Nest app with MtlsModule and the probe routes on 127.0.0.1, capturing logs and events. */
export async function startLifecycleApp(
  options: MtlsModuleOptions,
  controllers: Type[] = [ProbeController],
): Promise<LifecycleApp> {
  const logs: LogLine[] = [];
  const capture = (level: LogLine['level']) => (message: unknown, context?: unknown) =>
    void logs.push({ level, message: String(message), context: typeof context === 'string' ? context : undefined });
  const logger: LoggerService = { log: capture('log'), warn: capture('warn'), error: capture('error') };
  @Module({ imports: [MtlsModule.forRoot(options)], controllers })
  class LifecycleTestModule {}
  const moduleRef = await Test.createTestingModule({ imports: [LifecycleTestModule] })
    .setLogger(logger)
    .compile();
  const app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger });
  const events: MtlsEvent[] = [];
  const subscription: Subscription = app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  return {
    app,
    port,
    events,
    logs,
    store: app.get<CredentialStore>(MTLS_IDENTITY_CREDENTIALS),
    binding: app.get(MtlsServerBinding),
    async close() {
      await app.close();
      subscription.unsubscribe();
    },
  };
}

/** The outcome of one HTTPS request made as a peer. */
export interface ProbeResult {
  readonly status: number;
  readonly body: string;
  /** SHA-256 fingerprint of the certificate the server presented on this connection. */
  readonly serverFingerprint: string;
  readonly socket: TLSSocket;
}

/** GET `path` as `peer`, over `agent` (keep-alive) or a connection of its own (`agent: false`). */
export function get(
  port: number,
  peer: TestPeer,
  path: string,
  { agent = false, ca = peer.caPem }: { agent?: Agent | false; ca?: string } = {},
): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent,
        // With an agent, TLS options belong to the agent (they key its socket pool).
        ...(agent === false ? { ca, cert: peer.chainPem, key: peer.keyPem } : {}),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const serverFingerprint = socket.getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverFingerprint, socket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A keep-alive agent presenting `peer`. */
export function keepAliveAgent(
  peer: TestPeer,
  { ca = peer.caPem, maxSockets = 1 }: { ca?: string; maxSockets?: number } = {},
): Agent {
  return new Agent({ keepAlive: true, maxSockets, ca, cert: peer.chainPem, key: peer.keyPem });
}

/** Counts of one request loop. */
export interface LoadStats {
  readonly ok: number;
  readonly failures: readonly string[];
  /** Server fingerprints seen, in order of first appearance. */
  readonly fingerprints: readonly string[];
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** One keep-alive agent for all loops, or a new connection per request. */
  readonly keepAlive: boolean;
  /** Concurrent request loops. @default 1 */
  readonly concurrency?: number;
  /** Pause between a loop's requests. @default 0 */
  readonly pauseMs?: number;
  /** @default '/ping' */
  readonly path?: string;
  /** Bundle the client verifies the server with. @default the peer's */
  readonly ca?: string;
}

/**
 * Requests `path` as `peer` back to back until stopped, from a worker thread (a real client is another process: it
 * must not slow the server's event loop down). Every error and every non-200 status counts as a failure.
 */
export async function startLoad(port: number, peer: TestPeer, options: LoadOptions): Promise<{ stop(): Promise<LoadStats> }> {
  const worker = new Worker(new URL('./load-worker.mjs', import.meta.url), {
    workerData: {
      port,
      path: options.path ?? '/ping',
      ca: options.ca ?? peer.caPem,
      cert: peer.chainPem,
      key: peer.keyPem,
      keepAlive: options.keepAlive,
      concurrency: options.concurrency ?? 1,
      pauseMs: options.pauseMs ?? 0,
    },
  });
  await once(worker, 'message');
  return {
    async stop() {
      worker.postMessage('stop');
      const [stats] = (await once(worker, 'message')) as [LoadStats];
      await worker.terminate();
      return stats;
    },
  };
}

const probeContexts = new WeakMap<TestPeer, SecureContext>();

/**
 * Opens a new TLS connection as `peer` and returns the fingerprint of the certificate the server presents (no HTTP:
 * the handshake is what a rotation changes). One client context per peer, as a real client would have.
 */
export function serverFingerprint(port: number, peer: TestPeer): Promise<string> {
  let secureContext = probeContexts.get(peer);
  if (secureContext === undefined) {
    secureContext = createSecureContext({ ca: peer.caPem, cert: peer.chainPem, key: peer.keyPem });
    probeContexts.set(peer, secureContext);
  }
  const context = secureContext;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext: context }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5_000,
  everyMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** spiffe-helper's write: `os.WriteFile` in place (open with O_TRUNC, write, close), here in two chunks with a pause. */
export async function writeInPlace(path: string, content: string, { pauseMs = 10 }: { pauseMs?: number } = {}): Promise<void> {
  const handle = await open(path, 'w');
  try {
    const half = Math.floor(content.length / 2);
    await handle.write(content.slice(0, half));
    // A reader in this window sees a truncated file.
    await sleep(pauseMs);
    await handle.write(content.slice(half));
  } finally {
    await handle.close();
  }
}

/** consul-template's (Vault Agent's) write: a temp file with a random numeric name in the same directory, renamed over. */
export async function writeByRename(path: string, content: string): Promise<void> {
  const temp = join(dirname(path), String(randomInt(1e9, 1e10)));
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, path);
}

/** Percentile of a sample, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** `global.gc` without restarting the worker with `--expose-gc`: the flag is read when a new context is created. */
export function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * Native handles and timers created between the call and `endWindow()` and not destroyed since, by async resource type.
 * Sockets are only reported destroyed to async_hooks once collected, hence a GC before looking.
 */
export function trackResources() {
  const live = new Map<number, string>();
  let recording = true;
  const hook = createHook({
    init: (asyncId, type) => void (recording && live.set(asyncId, type)),
    destroy: (asyncId) => void live.delete(asyncId),
  }).enable();
  return {
    endWindow: () => void (recording = false),
    stop: () => void hook.disable(),
    live: (types: readonly string[]) => [...live.values()].filter((type) => types.includes(type)).sort(),
  };
}
