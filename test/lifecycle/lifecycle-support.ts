import 'reflect-metadata';
import { Controller, Get, Module, Query, type INestApplication, type LoggerService, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHook } from 'node:async_hooks';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { open, rename, writeFile } from 'node:fs/promises';
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
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
  MtlsModule,
  Peer,
  type MtlsEvent,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';
import type { CredentialStore } from 'nestjs-mtls/credentials';
import { MtlsServerBinding } from '../../lib/server/mtls-server.binding.js';
import type { TestPeer } from '../../lib/testing/index.js';
import { createCellApp, EXPRESS_H1, type ServerCell } from '../support/cells.js';

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

/** Where and how {@link startLifecycleApp} serves. */
export interface LifecycleAppOptions {
  /** @default Express over HTTP/1.1 */
  readonly cell?: ServerCell;
  /** @default '127.0.0.1' */
  readonly host?: string;
}

/** Starts a Nest app with MtlsModule and the probe routes on 127.0.0.1, capturing logs and events. */
export async function startLifecycleApp(
  options: MtlsModuleOptions,
  controllers: Type[] = [ProbeController],
  { cell = EXPRESS_H1, host = '127.0.0.1' }: LifecycleAppOptions = {},
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
  const app = createCellApp(moduleRef, cell, { logger });
  const events: MtlsEvent[] = [];
  const subscription: Subscription = app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  await app.listen(0, host);
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

/**
 * One HTTP/2 connection (session) presenting a peer, opened on first use and reused by every {@link get} through it:
 * the HTTP/2 counterpart of a keep-alive agent with one socket.
 */
export class Http2Connection {
  #session: ClientHttp2Session | undefined;

  constructor(
    private readonly peer: TestPeer,
    private readonly ca: string,
  ) {}

  /** The open session to `port`, connecting when there is none (or it closed). */
  session(port: number): ClientHttp2Session {
    if (this.#session === undefined || this.#session.closed || this.#session.destroyed) {
      this.#session = connectHttp2(`https://127.0.0.1:${port}`, { ca: this.ca, cert: this.peer.chainPem, key: this.peer.keyPem });
      this.#session.on('error', () => undefined);
    }
    return this.#session;
  }

  destroy(): void {
    this.#session?.destroy();
  }
}

/** What {@link get} sends through: an HTTPS keep-alive agent, one HTTP/2 connection, or `false` for a new connection. */
export type PeerAgent = Agent | Http2Connection | false;

function getHttp2(port: number, path: string, connection: Http2Connection, once: boolean): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const session = connection.session(port);
    const done = () => {
      session.off('error', fail);
      session.off('close', closed);
    };
    const fail = (error: Error) => {
      done();
      if (once) session.destroy();
      reject(error);
    };
    // A session the server destroys (revocation) ends its streams without an error of their own.
    const closed = () => fail(new Error('HTTP/2 session closed'));
    session.on('error', fail);
    session.on('close', closed);
    const stream = session.request({ ':path': path });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('error', fail);
    stream.on('end', () => {
      const socket = session.socket as TLSSocket | undefined;
      // A stream of a session the server destroyed ends without a response.
      if (status === 0 || socket === undefined || session.destroyed) {
        fail(new Error(`HTTP/2 stream ended without a response (${stream.rstCode ?? 'no RST_STREAM code'})`));
        return;
      }
      done();
      const serverFingerprint = socket.getPeerCertificate().fingerprint256;
      resolve({ status, body, serverFingerprint, socket });
      if (once) session.close();
    });
    stream.end();
  });
}

/**
 * GET `path` as `peer`, over `agent` (keep-alive, or one HTTP/2 connection) or a connection of its own
 * (`agent: false`; over HTTP/2 with `http2: true`).
 */
export function get(
  port: number,
  peer: TestPeer,
  path: string,
  { agent = false, ca = peer.caPem, http2 = false }: { agent?: PeerAgent; ca?: string; http2?: boolean } = {},
): Promise<ProbeResult> {
  if (agent instanceof Http2Connection) return getHttp2(port, path, agent, false);
  if (agent === false && http2) return getHttp2(port, path, new Http2Connection(peer, ca), true);
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

/** A keep-alive agent presenting `peer`; with `http2`, one HTTP/2 connection. */
export function keepAliveAgent(peer: TestPeer, options?: { ca?: string; maxSockets?: number }): Agent;
export function keepAliveAgent(
  peer: TestPeer,
  options: { ca?: string; maxSockets?: number; http2: boolean },
): Agent | Http2Connection;
export function keepAliveAgent(
  peer: TestPeer,
  { ca = peer.caPem, maxSockets = 1, http2 = false }: { ca?: string; maxSockets?: number; http2?: boolean } = {},
): Agent | Http2Connection {
  if (http2) return new Http2Connection(peer, ca);
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
  /** Speak HTTP/2: keep-alive loops share one session (streams multiplexed), the others open one per request. */
  readonly http2?: boolean;
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
      http2: options.http2 ?? false,
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
