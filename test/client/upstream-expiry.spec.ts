import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createSecureServer } from 'node:http2';
import { get as httpsGet, type Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, it, type TestContext } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import { eventually, startUpstream } from './upstream-server.js';

/*
 * The client side of "trust is decided per connection, and ends at the certificate's notAfter": an upstream whose
 * certificate expires while the client holds a kept-alive connection to it, or a TLS session it could resume. After
 * notAfter no call may be served over that connection, nor over a resumed session (a resumption skips the
 * certificate check); the call fails like a first connection to an expired server would, over HTTP/1.1 and HTTP/2.
 */

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
/** Long enough for the calls made before it to finish on a loaded machine. */
const VALIDITY_MS = 4_000;

/** What the tests read of an upstream, HTTP/1.1 or HTTP/2. */
interface Upstream {
  readonly origin: string;
  handshakes: number;
  resumed: number;
  requests: number;
  readonly sockets: Set<TLSSocket>;
  close(): Promise<void>;
}

async function h1Upstream(identity: TestPeer, caPem: string): Promise<Upstream> {
  const upstream = await startUpstream(identity, caPem);
  // Node's default (5 s) would close the idle connection about when the certificate expires: the client must.
  upstream.server.keepAliveTimeout = 60_000;
  return {
    origin: upstream.origin,
    get handshakes() {
      return upstream.handshakes;
    },
    get resumed() {
      return upstream.resumed;
    },
    get requests() {
      return upstream.requests.length;
    },
    sockets: upstream.sockets,
    close: () => upstream.close(),
  };
}

async function h2Upstream(identity: TestPeer, caPem: string): Promise<Upstream> {
  const server = createSecureServer(
    { key: identity.keyPem, cert: identity.chainPem, ca: caPem, requestCert: true, rejectUnauthorized: true },
    (_request, response) => {
      state.requests++;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ ok: true }));
    },
  );
  const state: Upstream = {
    origin: '',
    handshakes: 0,
    resumed: 0,
    requests: 0,
    sockets: new Set(),
    close: async () => {
      for (const socket of state.sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    state.handshakes++;
    if (socket.isSessionReused()) state.resumed++;
    state.sockets.add(socket);
    socket.once('close', () => state.sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(state, { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

let pki: TestPki;

beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test' });
});

afterAll(async () => {
  await pki?.dispose();
});

/** An orders client (one connection per origin), closed after the test. */
async function ordersClient(http2: boolean, { onTestFinished }: TestContext): Promise<MtlsHttpClient> {
  const { credentials } = await pki.credentials(ORDERS);
  const resolved = resolveMtlsOptions({
    credentials,
    peers: { inventory: INVENTORY },
    client: { http2, connectionsPerOrigin: 1 },
  });
  const client = new MtlsHttpClient(resolved, new CredentialStore(await loadCredentials(resolved.credentialFiles)));
  onTestFinished(() => client.close());
  return client;
}

/** An upstream whose certificate expires VALIDITY_MS from now, closed after the test; `notAfter` as the certificate says. */
async function expiringUpstream(
  start: typeof h1Upstream,
  { onTestFinished }: TestContext,
): Promise<{ upstream: Upstream; notAfter: number }> {
  const identity = await pki.peer({
    spiffeId: INVENTORY,
    ipAddresses: ['127.0.0.1'],
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + VALIDITY_MS),
  });
  const upstream = await start(identity, pki.bundlePem);
  onTestFinished(() => upstream.close());
  // X.509 keeps whole seconds: the certificate's own notAfter, not the instant asked for.
  return { upstream, notAfter: Date.parse(new X509Certificate(identity.certPem).validTo) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(ms, 0)));

/** Waits until the certificate has expired for OpenSSL, which compares whole seconds. */
const pastNotAfter = (notAfter: number) => sleep(notAfter - Date.now() + 1_100);

/** Ends every connection from the server side; the client keeps the TLS session it was given. */
async function dropConnections(upstream: Upstream): Promise<void> {
  for (const socket of upstream.sockets) socket.destroy();
  await eventually(() => upstream.sockets.size === 0);
}

/**
 * A call right after the server dropped every connection. Over HTTP/2 the client may send it on the dropped session
 * before it has read the session's end, and get ECONNRESET, as any client could; the next call opens a new
 * connection. Anything else fails the test.
 */
async function afterDrop<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if ((error as { seen?: unknown }).seen !== 'ECONNRESET') throw error;
    return call();
  }
}

// Concurrent: each test waits for its own certificate to expire.
describe.concurrent.each([
  { protocol: 'HTTP/1.1', http2: false, start: h1Upstream },
  { protocol: 'HTTP/2', http2: true, start: h2Upstream },
])('MtlsHttpClient and an upstream certificate that expires ($protocol)', ({ http2, start }) => {
  it('closes a kept-alive connection at notAfter and serves no call over it afterwards', async (context) => {
    const { expect } = context;
    const client = await ordersClient(http2, context);
    const { upstream, notAfter } = await expiringUpstream(start, context);
    const get = () => client.get(`${upstream.origin}/stock`, { expectPeer: 'inventory' });
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    expect(upstream.handshakes).toBe(1);
    expect(upstream.sockets.size).toBe(1);
    // The client closes it at notAfter: nothing on the server side ends it (generous bound).
    await eventually(() => upstream.sockets.size === 0, notAfter - Date.now() + 3_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notAfter);
    await pastNotAfter(notAfter);
    await expect(get()).rejects.toMatchObject({ code: 'ERR_MTLS_UPSTREAM_TLS', seen: 'CERT_HAS_EXPIRED' });
    expect(upstream.requests).toBe(2);
  });

  it('resumes no TLS session of the expired certificate', async (context) => {
    const { expect } = context;
    const client = await ordersClient(http2, context);
    const { upstream, notAfter } = await expiringUpstream(start, context);
    const get = () => client.get(`${upstream.origin}/stock`, { expectPeer: 'inventory' });
    expect((await get()).status).toBe(200);
    await dropConnections(upstream);
    // The control: the session resumes while the certificate is valid.
    expect((await afterDrop(get)).status).toBe(200);
    expect(upstream.resumed).toBe(1);
    await dropConnections(upstream);
    await pastNotAfter(notAfter);
    await expect(get()).rejects.toMatchObject({ code: 'ERR_MTLS_UPSTREAM_TLS', seen: 'CERT_HAS_EXPIRED' });
    expect(upstream.resumed).toBe(1);
    expect(upstream.requests).toBe(2);
  });
});

describe.concurrent('httpsAgent() and an upstream certificate that expires', () => {
  function status(upstream: Upstream, agent: Agent): Promise<number> {
    return new Promise((resolve, reject) => {
      httpsGet(`${upstream.origin}/stock`, { agent }, (response: IncomingMessage) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      }).on('error', reject);
    });
  }

  it('closes a kept-alive socket at notAfter and serves no call over it afterwards', async (context) => {
    const { expect } = context;
    const agent = (await ordersClient(false, context)).httpsAgent({ expectPeer: 'inventory' });
    const { upstream, notAfter } = await expiringUpstream(h1Upstream, context);
    expect(await status(upstream, agent)).toBe(200);
    // Used again shortly before notAfter: its idle timeout (5 s) then ends well after it.
    await sleep(notAfter - Date.now() - 1_000);
    expect(await status(upstream, agent)).toBe(200);
    expect(upstream.handshakes).toBe(1);
    await eventually(() => upstream.sockets.size === 0, notAfter - Date.now() + 2_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notAfter);
    await pastNotAfter(notAfter);
    await expect(status(upstream, agent)).rejects.toMatchObject({ code: 'CERT_HAS_EXPIRED' });
    expect(upstream.requests).toBe(2);
  });

  it('resumes no TLS session of the expired certificate', async (context) => {
    const { expect } = context;
    const agent = (await ordersClient(false, context)).httpsAgent({ expectPeer: 'inventory' });
    const { upstream, notAfter } = await expiringUpstream(h1Upstream, context);
    expect(await status(upstream, agent)).toBe(200);
    await dropConnections(upstream);
    // The control: the session resumes while the certificate is valid.
    expect(await status(upstream, agent)).toBe(200);
    expect(upstream.resumed).toBe(1);
    await dropConnections(upstream);
    await pastNotAfter(notAfter);
    await expect(status(upstream, agent)).rejects.toMatchObject({ code: 'CERT_HAS_EXPIRED' });
    expect(upstream.resumed).toBe(1);
    expect(upstream.requests).toBe(2);
  });
});
