import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callAs, WorkloadApiTestServer, type CallerCredentials } from 'nestjs-mtls/testing';
import { describeDevCaResult, describeDevCertificateResult } from '../lib/cli/cli-format.js';
import { ensureDevCertificates } from '../lib/cli/dev-ca.js';
import { initDevIssuer, mintDevToken } from '../lib/cli/dev-issuer.js';
import { servingFromEnv } from './common/http-adapter.js';
import { LinePrefixer } from './common/log-prefix.js';
import { devCertificatesDir, SPIFFE_IDS, TRUST_DOMAIN } from './common/sample-config.js';

/**
 * `npm run sample`: makes the dev CA and certificates if missing, starts inventory and orders on loopback, plays the
 * scenario, prints each call and its outcome, and exits 0 only if every outcome is the expected one.
 * `npm run sample -- --serve` leaves both services running afterwards. `npm run sample -- --workload-api` gives each
 * service its credentials through the SPIFFE Workload API instead of files: the testing kit's Workload API server
 * stands in for a SPIRE agent (one socket per workload, as the agent's attestation would pick each one's SVID).
 */

const HOST = '127.0.0.1';
const INVENTORY_PORT = 8443;
const ORDERS_PORT = 8444;
const here = dirname(fileURLToPath(import.meta.url));
const serve = process.argv.includes('--serve');
const workloadApi = process.argv.includes('--workload-api');

interface Step {
  caller: string;
  request: string;
  expected: string;
  call: () => Promise<string>;
}

async function loadPeer(dir: string): Promise<CallerCredentials> {
  const [chainPem, keyPem, caPem] = await Promise.all(
    ['tls.crt', 'tls.key', 'ca.crt'].map((name) => readFile(join(dir, name), 'utf8')),
  );
  return { chainPem: chainPem!, keyPem: keyPem!, caPem: caPem! };
}

function start(name: string, script: string, env: Record<string, string>): Promise<ChildProcess> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, HOST, ...env };
  for (const key of Object.keys(childEnv)) if (key.startsWith('MTLS_') || key === 'SPIFFE_ENDPOINT_SOCKET') delete childEnv[key];
  Object.assign(childEnv, env);
  const child = spawn(process.execPath, [join(here, script)], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const prefixer = new LinePrefixer(name);
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      if (serve) process.stdout.write(prefixer.push(text));
      if (text.includes('listening on https://')) {
        if (!serve)
          process.stdout.write(
            text
              .split('\n')
              .filter((l) => l.includes('listening on'))
              .map((l) => `${l}\n`)
              .join(''),
          );
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before listening:\n${output}`));
    });
  });
}

async function outcomeOf(call: Promise<{ status: number; body: string }>): Promise<string> {
  try {
    const res = await call;
    let code = '';
    try {
      const body = JSON.parse(res.body) as { code?: string };
      if (body.code) code = ` ${body.code}`;
    } catch {
      // not JSON
    }
    return `HTTP ${res.status}${code}`;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return `refused at handshake (${e.code ?? e.message})`;
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<number> {
  // ADAPTER and HTTP2 reach the services through the environment; with HTTP2=1 the scenario's calls speak HTTP/2 too.
  const { http2 } = servingFromEnv();
  const certs = devCertificatesDir();
  const local = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
  const shop = await ensureDevCertificates({
    dir: certs,
    trustDomain: TRUST_DOMAIN,
    identities: [
      { name: 'inventory', spiffeId: SPIFFE_IDS.inventory, ...local },
      { name: 'orders', spiffeId: SPIFFE_IDS.orders, ...local },
      { name: 'frontend', spiffeId: SPIFFE_IDS.frontend },
      { name: 'admin', spiffeId: SPIFFE_IDS.admin },
    ],
  });
  // The stranger belongs to another trust domain, with its own CA.
  const elsewhere = await ensureDevCertificates({
    dir: join(certs, 'elsewhere'),
    trustDomain: 'elsewhere.test',
    identities: [{ name: 'stranger', spiffeId: SPIFFE_IDS.stranger }],
  });
  for (const { ca, certificates } of [shop, elsewhere]) {
    if (ca.action !== 'loaded') console.log(describeDevCaResult(ca));
    for (const certificate of certificates) console.log(describeDevCertificateResult(certificate));
  }
  // The token scenario: a dev user-token issuer, and a second certificate of the frontend's identity.
  await initDevIssuer({ dir: certs });
  await ensureDevCertificates({
    dir: certs,
    trustDomain: TRUST_DOMAIN,
    identities: [{ name: 'frontend-2', spiffeId: SPIFFE_IDS.frontend }],
  });

  const agents: WorkloadApiTestServer[] = [];
  /** With --workload-api: an agent serving `service`'s dev SVID, and the env that points the service at it. */
  const credentialsEnv = async (service: 'inventory' | 'orders'): Promise<Record<string, string>> => {
    if (!workloadApi) return {};
    const agent = await WorkloadApiTestServer.start();
    agents.push(agent);
    agent.setSvids([{ peer: { ...(await loadPeer(join(certs, service))), spiffeId: SPIFFE_IDS[service] } }]);
    return { SPIFFE_ENDPOINT_SOCKET: agent.address };
  };
  const children: ChildProcess[] = [];
  const stop = () =>
    Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    children.push(
      await start('inventory', 'inventory/main.js', { PORT: String(INVENTORY_PORT), ...(await credentialsEnv('inventory')) }),
    );
    children.push(
      await start('orders', 'orders/main.js', {
        PORT: String(ORDERS_PORT),
        INVENTORY_URL: `https://${HOST}:${INVENTORY_PORT}`,
        ...(await credentialsEnv('orders')),
      }),
    );

    const orders = `https://${HOST}:${ORDERS_PORT}`;
    const frontend = await loadPeer(join(certs, 'frontend'));
    const inventory = await loadPeer(join(certs, 'inventory'));
    const stranger = { ...(await loadPeer(join(certs, 'elsewhere', 'stranger'))), caPem: frontend.caPem };
    const steps: Step[] = [
      {
        caller: 'frontend',
        request: 'GET orders /orders/42/availability',
        expected: 'HTTP 200',
        call: async () => {
          const res = await callAs(orders, frontend, { http2 }).get('/orders/42/availability');
          const outcome = await outcomeOf(Promise.resolve(res));
          const body = res.status === 200 ? (res.json() as { available: number; caller: string }) : undefined;
          return body ? `${outcome} (available ${body.available}, inventory saw ${body.caller})` : outcome;
        },
      },
      {
        caller: 'stranger (elsewhere.test)',
        request: 'GET orders /orders/42/availability',
        expected: 'refused at handshake',
        call: () => outcomeOf(callAs(orders, stranger, { http2 }).get('/orders/42/availability')),
      },
      {
        caller: '(no certificate)',
        request: 'GET orders /orders/42/availability',
        expected: 'refused at handshake',
        call: () => outcomeOf(callAs(orders, undefined, { ca: frontend.caPem, http2 }).get('/orders/42/availability')),
      },
      {
        caller: 'inventory',
        request: 'GET orders /orders/42/availability',
        expected: 'HTTP 403 ERR_MTLS_PEER_DENIED',
        call: () => outcomeOf(callAs(orders, inventory, { http2 }).get('/orders/42/availability')),
      },
    ];

    const rows = [['caller', 'request', 'expected', 'outcome', '']];
    let failures = 0;
    for (const step of steps) {
      const outcome = await step.call();
      const ok = outcome.startsWith(step.expected);
      if (!ok) failures++;
      rows.push([step.caller, step.request, step.expected, outcome, ok ? 'ok' : 'UNEXPECTED']);
    }
    console.log(`\n${table(rows)}\n`);
    console.log(failures === 0 ? `all ${steps.length} outcomes as expected` : `${failures} unexpected outcome(s)`);

    // Tokens: a user's token relayed by the frontend, bound to the frontend's certificate for refunds.
    const frontend2 = await loadPeer(join(certs, 'frontend-2'));
    const bound = await mintDevToken({
      dir: certs,
      sub: 'alice',
      aud: ['orders'],
      ttlMs: 600_000,
      bindCert: join(certs, 'frontend', 'tls.crt'),
    });
    const tokenSteps: Step[] = [
      {
        caller: 'frontend + bound token',
        request: 'POST orders /orders/42/refund',
        expected: 'HTTP 201',
        call: async () => {
          const res = await callAs(orders, frontend, { http2, token: bound }).post('/orders/42/refund');
          const outcome = await outcomeOf(Promise.resolve(res));
          return res.status === 201 ? `${outcome} (user ${(res.json() as { user: string }).user})` : outcome;
        },
      },
      {
        caller: 'frontend (2nd certificate) + same token',
        request: 'POST orders /orders/42/refund',
        expected: 'HTTP 401 ERR_MTLS_TOKEN_UNBOUND',
        call: () => outcomeOf(callAs(orders, frontend2, { http2, token: bound }).post('/orders/42/refund')),
      },
    ];
    const tokenRows = [['caller', 'request', 'expected', 'outcome', '']];
    let tokenFailures = 0;
    for (const step of tokenSteps) {
      const outcome = await step.call();
      const ok = outcome.startsWith(step.expected);
      if (!ok) tokenFailures++;
      tokenRows.push([step.caller, step.request, step.expected, outcome, ok ? 'ok' : 'UNEXPECTED']);
    }
    console.log(`\n${table(tokenRows)}\n`);
    console.log(
      tokenFailures === 0
        ? `all ${tokenSteps.length} token outcomes as expected`
        : `${tokenFailures} unexpected token outcome(s)`,
    );
    failures += tokenFailures;
    if (serve && failures === 0) {
      console.log(`services left running (inventory :${INVENTORY_PORT}, orders :${ORDERS_PORT}); Ctrl-C stops them`);
      await new Promise(() => undefined);
    }
    return failures === 0 ? 0 : 1;
  } finally {
    if (!serve) {
      await stop();
      await Promise.all(agents.map((agent) => agent.close()));
    }
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`sample failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
