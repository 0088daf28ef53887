// A load generator, in its own process (pinned to the other CPU by run.ts): one job, one measured window, one report.
// Usage: node dist/bench/load-generator.js '<LoadJob JSON>'; answers over IPC (see protocol.ts).
import 'reflect-metadata';
import { Agent as HttpsAgent, get as httpsGet } from 'node:https';
import { readFileSync } from 'node:fs';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { connect, type SecureContext } from 'node:tls';
import { Agent, Client as UndiciClient, fetch, Pool, type Dispatcher } from 'undici';
import type { MtlsHttpClient } from '../lib/client/index.js';
import { CredentialStore } from '../lib/credentials/credential-store.js';
import { loadCredentials } from '../lib/credentials/credentials-loader.js';
import { createSecureContext } from '../lib/credentials/secure-context.js';
import { resolveMtlsOptions } from '../lib/mtls.config.js';
import { processCpuTicks, report } from './child-process.js';
import type { ClientVariant, LoadJob, LoadResult } from './protocol.js';
import { LatencyRecorder } from './statistics.js';

const job = JSON.parse(process.argv[2] ?? 'null') as LoadJob;
const plainHttp = job.mode === 'keep-alive' && job.client === 'http-pool';
const origin = `${plainHttp ? 'http' : 'https'}://127.0.0.1:${job.port}`;

/** One request (or one connection) that resolves when it completed with status 200. */
type Call = () => Promise<string | undefined>;

interface Client {
  readonly call: Call;
  close(): Promise<unknown>;
}

function expectOk(status: number | undefined): void {
  if (status !== 200) throw new Error(`HTTP ${String(status)}`);
}

function viaFetch(url: string, dispatcher: Dispatcher): Call {
  return async () => {
    const response = await fetch(url, { dispatcher });
    await response.json();
    expectOk(response.status);
    return undefined;
  };
}

function viaHttps(agent: HttpsAgent): Call {
  return () =>
    new Promise((resolve, reject) => {
      const request = httpsGet({ host: '127.0.0.1', port: job.port, path: job.path, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          try {
            expectOk(response.statusCode);
            JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve(undefined);
          } catch (error) {
            reject(error);
          }
        });
      });
      request.on('error', reject);
    });
}

/** The client under test. The bare clients get the SecureContext the package builds: same TLS options, built once. */
async function createClient(variant: ClientVariant): Promise<Client> {
  // The proxy group's sidecar side: plain HTTP, no client certificate, the job's headers on every request.
  if (variant === 'http-pool') {
    const pool = new Pool(origin, { connections: job.concurrency });
    const headers = job.headers ?? {};
    return {
      call: async () => {
        const { statusCode, body } = await pool.request({ method: 'GET', path: job.path, headers });
        await body.json();
        expectOk(statusCode);
        return undefined;
      },
      close: () => pool.close(),
    };
  }
  const resolved = resolveMtlsOptions({
    credentials: { dir: job.credentialsDir },
    client: {
      http2: variant === 'mtls-client-h2',
      connectionsPerOrigin: job.concurrency,
      upstreams: { inventory: { url: origin, expectPeer: job.serverSpiffeId } },
    },
    reload: { enabled: false },
  });
  const store = new CredentialStore(await loadCredentials(resolved.credentialFiles));
  const secureContext: SecureContext = createSecureContext(store.current, resolved.tls);
  const tls = { secureContext, rejectUnauthorized: true };
  const url = `${origin}${job.path}`;
  // Loaded only by the cases that use it: the bare cases start faster without Nest's packages.
  const mtls = async (): Promise<MtlsHttpClient> => {
    const { MtlsHttpClient: Client } = await import('../lib/client/index.js');
    return new Client(resolved, store);
  };
  const expectPeer = job.serverSpiffeId;
  // The token group's bearer tokens, one per request in turn; no header at all for every other case.
  const authorizations =
    job.authorizations === undefined
      ? []
      : 'file' in job.authorizations
        ? readFileSync(job.authorizations.file, 'utf8')
            .split('\n')
            .filter((line) => line !== '')
        : job.authorizations;
  let nextAuthorization = 0;
  const headersOfCall = (): { authorization: string } | undefined =>
    authorizations.length === 0 ? undefined : { authorization: authorizations[nextAuthorization++ % authorizations.length]! };

  switch (variant) {
    case 'undici-pool': {
      const pool = new Pool(origin, { connections: job.concurrency, connect: tls });
      return {
        call: async () => {
          const { statusCode, body } = await pool.request({ method: 'GET', path: job.path, headers: headersOfCall() });
          await body.json();
          expectOk(statusCode);
          return undefined;
        },
        close: () => pool.close(),
      };
    }
    case 'undici-dispatch': {
      const pool = new Pool(origin, { connections: job.concurrency, connect: tls });
      return {
        call: () =>
          new Promise((resolve, reject) => {
            let status = 0;
            const chunks: Buffer[] = [];
            pool.dispatch(
              { method: 'GET', path: job.path },
              {
                // Its presence selects undici's controller-based handler API, the one MtlsHttpClient uses.
                onRequestStart: () => undefined,
                onResponseStart: (_controller, statusCode) => void (status = statusCode),
                onResponseData: (_controller, chunk) => void chunks.push(chunk),
                onResponseEnd: () => {
                  try {
                    expectOk(status);
                    JSON.parse(Buffer.concat(chunks).toString('utf8'));
                    resolve(undefined);
                  } catch (error) {
                    reject(error);
                  }
                },
                onResponseError: (_controller, error) => reject(error),
              },
            );
          }),
        close: () => pool.close(),
      };
    }
    case 'undici-h2': {
      // One connection; `pipelining` is undici's cap on its streams in flight.
      const client = new UndiciClient(origin, { allowH2: true, pipelining: job.concurrency, connect: tls });
      return {
        call: async () => {
          const { statusCode, body } = await client.request({ method: 'GET', path: job.path });
          await body.json();
          expectOk(statusCode);
          return undefined;
        },
        close: () => client.close(),
      };
    }
    case 'mtls-client-h2':
    case 'mtls-client': {
      const client = await mtls();
      return {
        call: async () => {
          expectOk((await client.get(url, { expectPeer })).status);
          return undefined;
        },
        close: () => client.close(),
      };
    }
    case 'mtls-upstream': {
      const client = await mtls();
      const inventory = client.upstream('inventory');
      return {
        call: async () => {
          expectOk((await inventory.get(job.path)).status);
          return undefined;
        },
        close: () => client.close(),
      };
    }
    case 'https-agent': {
      const agent = new HttpsAgent({ keepAlive: true, maxSockets: job.concurrency, ...tls });
      return { call: viaHttps(agent), close: async () => agent.destroy() };
    }
    case 'mtls-https-agent': {
      const client = await mtls();
      return { call: viaHttps(client.httpsAgent({ expectPeer })), close: () => client.close() };
    }
    case 'undici-fetch': {
      const dispatcher = new Agent({ connections: job.concurrency, connect: tls });
      return { call: viaFetch(url, dispatcher), close: () => dispatcher.close() };
    }
    case 'mtls-fetch': {
      const client = await mtls();
      return { call: viaFetch(url, client.dispatcher({ expectPeer })), close: () => client.close() };
    }
  }
}

/**
 * One new TLS connection per request: connect, send one request with `Connection: close`, read to the end. With
 * `resume`, every loop offers the last session ticket it received, as a client with a session cache does.
 */
async function createConnector(resume: boolean): Promise<{ call: () => Call }> {
  const resolved = resolveMtlsOptions({ credentials: { dir: job.credentialsDir }, reload: { enabled: false } });
  const secureContext = createSecureContext(await loadCredentials(resolved.credentialFiles), resolved.tls);
  const request = Buffer.from(`GET ${job.path} HTTP/1.1\r\nHost: 127.0.0.1:${job.port}\r\nConnection: close\r\n\r\n`, 'latin1');
  return {
    // One closure per loop: each keeps its own ticket.
    call: () => {
      let ticket: Buffer | undefined;
      return () =>
        new Promise((resolve, reject) => {
          const socket = connect({
            host: '127.0.0.1',
            port: job.port,
            secureContext,
            rejectUnauthorized: true,
            ...(resume && ticket !== undefined ? { session: ticket } : {}),
          });
          let head = '';
          let outcome: string | undefined;
          if (resume) socket.on('session', (session: Buffer) => (ticket = session));
          socket.once('secureConnect', () => {
            const cipher = socket.getCipher();
            outcome = `${socket.isSessionReused() ? 'resumed' : 'full'} ${socket.getProtocol() ?? '?'} ${cipher.name}`;
            socket.write(request);
          });
          socket.on('data', (chunk: Buffer) => {
            if (head.length < 12) head += chunk.toString('latin1', 0, 12 - head.length);
          });
          socket.once('error', reject);
          socket.once('close', () => {
            if (head.startsWith('HTTP/1.1 200')) resolve(outcome);
            else reject(new Error(`no 200 response (got ${JSON.stringify(head)})`));
          });
        });
    },
  };
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause === undefined ? error.message : `${error.message} (cause: ${String(error.cause)})`;
}

async function measure(calls: readonly Call[]): Promise<LoadResult> {
  const latencies = new LatencyRecorder();
  let phase: 'warm-up' | 'measure' | 'done' = 'warm-up';
  let requests = 0;
  let errors = 0;
  let resumed = 0;
  let firstError: string | undefined;
  let tls: string | undefined;
  const loop = async (call: Call): Promise<void> => {
    while (phase !== 'done') {
      const start = performance.now();
      try {
        const outcome = await call();
        if (phase !== 'measure') continue;
        requests++;
        latencies.add(performance.now() - start);
        if (outcome !== undefined) {
          if (outcome.startsWith('resumed')) resumed++;
          tls ??= outcome.slice(outcome.indexOf(' ') + 1);
        }
      } catch (error) {
        if (phase === 'measure') errors++;
        firstError ??= describeError(error);
        // A case that only fails must not spin the CPU it shares with nothing else.
        await setImmediate();
      }
    }
  };
  const loops = calls.map(loop);
  await sleep(job.warmupMs);
  const serverStart = processCpuTicks(job.serverPid);
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  phase = 'measure';
  await sleep(job.durationMs);
  phase = 'done';
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  const serverTicks = processCpuTicks(job.serverPid) - serverStart;
  await Promise.all(loops);
  const perRequest = (us: number): number => (requests === 0 ? Number.NaN : us / requests);
  return {
    requests,
    errors,
    firstError,
    elapsedMs,
    requestsPerSecond: (requests * 1000) / elapsedMs,
    serverCpuUsPerRequest: perRequest((serverTicks * 1e6) / job.clockTicksPerSecond),
    clientCpuUsPerRequest: perRequest(cpu.user + cpu.system),
    p50Ms: latencies.percentile(50),
    p99Ms: latencies.percentile(99),
    resumedFraction: job.mode === 'handshake' ? (requests === 0 ? 0 : resumed / requests) : undefined,
    tls,
  };
}

async function main(): Promise<void> {
  let result: LoadResult;
  if (job.mode === 'handshake') {
    const connector = await createConnector(job.resume);
    result = await measure(Array.from({ length: job.concurrency }, () => connector.call()));
  } else {
    const client = await createClient(job.client);
    result = await measure(Array.from({ length: job.concurrency }, () => client.call));
    // Closing must not hold the report back: the process exits right after.
    await Promise.race([client.close(), sleep(2_000)]);
  }
  await report({ type: 'result', result });
  process.exit(0);
}

main().catch(async (error: unknown) => {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  await report({ type: 'failed', message }).catch(() => undefined);
  process.exit(1);
});
