// Request load for lifecycle tests, in a worker thread so that the client does not compete with the server under test
// for its event loop (in production the caller is another process). Plain JS: workers are not transformed by Vitest.
import { connect as connectHttp2 } from 'node:http2';
import { Agent, request } from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

/** @type {{ port: number, path: string, ca: string, cert: string, key: string, keepAlive: boolean, concurrency: number, pauseMs: number, http2: boolean }} */
const options = workerData;
const tls = { ca: options.ca, cert: options.cert, key: options.key };
const agent =
  options.keepAlive && !options.http2 ? new Agent({ keepAlive: true, maxSockets: options.concurrency, ...tls }) : false;
const stats = { ok: 0, failures: [], fingerprints: [] };
let running = true;
/** With HTTP/2 keep-alive: one session, every loop's streams multiplexed on it. */
let shared;

function sessionFor() {
  if (!options.keepAlive) return connectHttp2(`https://127.0.0.1:${options.port}`, tls);
  if (shared === undefined || shared.closed || shared.destroyed) {
    shared = connectHttp2(`https://127.0.0.1:${options.port}`, tls);
    shared.on('error', () => undefined);
  }
  return shared;
}

function seen(socket) {
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  if (!stats.fingerprints.includes(fingerprint)) stats.fingerprints.push(fingerprint);
}

function onceHttp2() {
  return new Promise((resolve) => {
    const session = sessionFor();
    let settled = false;
    const settle = (failure) => {
      if (settled) return;
      settled = true;
      if (failure !== undefined) stats.failures.push(failure);
      if (!options.keepAlive) session.close();
      resolve();
    };
    if (!options.keepAlive) session.on('error', (error) => settle(`session: ${error.code ?? ''} ${error.message}`));
    const stream = session.request({ ':path': options.path });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      seen(session.socket);
    });
    stream.on('data', (chunk) => (body += chunk));
    stream.on('error', (error) => settle(`stream: ${error.code ?? ''} ${error.message}`));
    stream.on('close', () => {
      if (status === 200) stats.ok++;
      settle(
        status === 200
          ? undefined
          : status === 0
            ? `stream closed without a response (${stream.rstCode})`
            : `HTTP ${status}: ${body}`,
      );
    });
    stream.end();
  });
}

function onceHttp1() {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: options.port, path: options.path, agent, ...(agent === false ? tls : {}) },
      (res) => {
        seen(res.socket);
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('error', (error) => {
          stats.failures.push(`response: ${error.code ?? ''} ${error.message}`);
          resolve();
        });
        res.on('end', () => {
          if (res.statusCode === 200) stats.ok++;
          else stats.failures.push(`HTTP ${res.statusCode}: ${body}`);
          resolve();
        });
      },
    );
    req.on('error', (error) => {
      stats.failures.push(`request: ${error.code ?? ''} ${error.message}`);
      resolve();
    });
    req.end();
  });
}

const once = options.http2 ? onceHttp2 : onceHttp1;

async function loop() {
  while (running) {
    await once();
    if (options.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
  }
}

const loops = Array.from({ length: options.concurrency }, loop);
parentPort.on('message', async (message) => {
  if (message !== 'stop') return;
  running = false;
  await Promise.all(loops);
  if (agent !== false) agent.destroy();
  shared?.close();
  parentPort.postMessage(stats);
  parentPort.close();
});
parentPort.postMessage('started');
