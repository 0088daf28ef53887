// Request load for lifecycle tests, in a worker thread so that the client does not compete with the server under test
// for its event loop (in production the caller is another process). Plain JS: workers are not transformed by Vitest.
import { Agent, request } from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

/** @type {{ port: number, path: string, ca: string, cert: string, key: string, keepAlive: boolean, concurrency: number, pauseMs: number }} */
const options = workerData;
const agent = options.keepAlive
  ? new Agent({ keepAlive: true, maxSockets: options.concurrency, ca: options.ca, cert: options.cert, key: options.key })
  : false;
const stats = { ok: 0, failures: [], fingerprints: [] };
let running = true;

function once() {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path,
        agent,
        ...(agent === false ? { ca: options.ca, cert: options.cert, key: options.key } : {}),
      },
      (res) => {
        const fingerprint = res.socket.getPeerCertificate().fingerprint256;
        if (!stats.fingerprints.includes(fingerprint)) stats.fingerprints.push(fingerprint);
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
  parentPort.postMessage(stats);
  parentPort.close();
});
parentPort.postMessage('started');
