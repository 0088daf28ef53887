import 'reflect-metadata';
import { get as httpsGet } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { Test } from '@nestjs/testing';
import { fetch as undiciFetch } from 'undici';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { UpstreamError } from '../../lib/errors/mtls.errors.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_OPTIONS } from '../../lib/mtls.constants.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import { eventually, startUpstream, type Handler, type UpstreamServer } from './upstream-server.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const PAYMENTS = 'spiffe://shop.test/ns/shop/sa/payments';

let pki: TestPki;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test' });
});

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** A client for the orders service, built as the module builds it (without Nest). */
async function ordersClient(options: Partial<MtlsModuleOptions> = {}): Promise<{ client: MtlsHttpClient; store: CredentialStore }> {
  const { credentials } = await pki.credentials(ORDERS);
  const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY }, ...options });
  const store = new CredentialStore(await loadCredentials(resolved.credentialFiles));
  const client = new MtlsHttpClient(resolved, store);
  cleanups.push(() => client.close());
  return { client, store };
}

/** An upstream server trusting this PKI, closed after the test. */
async function upstream(identity: Promise<TestPeer>, handler?: Handler): Promise<UpstreamServer> {
  const server = await startUpstream(await identity, pki.bundlePem, handler);
  cleanups.push(() => server.close());
  return server;
}

/** A server certificate with the SPIFFE ID and, like TestPki.credentials, an IP SAN for 127.0.0.1. */
function serverPeer(spiffeId: string): Promise<TestPeer> {
  return pki.peer({ spiffeId, ipAddresses: ['127.0.0.1'] });
}

async function failure(call: Promise<unknown>): Promise<UpstreamError> {
  const error = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

describe('MtlsHttpClient against a real mTLS server', () => {
  it('verifies the SPIFFE ID, sends JSON, parses JSON and exposes status and headers', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();

    const response = await client.post<{ method: string; url: string; body: string }>(
      `${server.origin}/stock/42?from=test`,
      { sku: 42 },
      { expectPeer: 'inventory', query: { tag: ['a', 'b'], skip: undefined, n: 1 }, headers: { 'x-request-id': 'r1' } },
    );

    expect(response.status).toBe(200);
    expect(response.ok).toBe(true);
    expect(response.headers['x-upstream']).toBe('test');
    expect(response.body).toEqual({ method: 'POST', url: '/stock/42?from=test&tag=a&tag=b&n=1', body: '{"sku":42}' });
    expect(JSON.parse(response.text)).toEqual(response.body);
    expect(server.requests[0]?.headers['content-type']).toBe('application/json');
    expect(server.requests[0]?.headers['x-request-id']).toBe('r1');
  });

  it('returns non-2xx answers as responses, and text bodies as strings', async () => {
    const server = await upstream(serverPeer(INVENTORY), (_request, response) => {
      response.statusCode = 404;
      response.setHeader('content-type', 'text/plain');
      response.end('no such sku');
    });
    const { client } = await ordersClient();

    const response = await client.get(`${server.origin}/stock/0`, { expectPeer: INVENTORY });

    expect(response).toMatchObject({ status: 404, ok: false, body: 'no such sku', text: 'no such sku' });
  });

  it('rejects a JSON response whose body does not parse, and a bad timeout before sending', async () => {
    const server = await upstream(serverPeer(INVENTORY), (_request, response) => {
      response.setHeader('content-type', 'application/problem+json');
      response.end('{oops');
    });
    const { client } = await ordersClient();

    const invalid = await failure(client.get(`${server.origin}/stock/1`, { expectPeer: 'inventory' }));
    expect(invalid.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(invalid.message).toBe(
      `GET /stock/1 to upstream ${server.origin}: the response (status 200) says application/problem+json but its body is not valid JSON`,
    );
    expect(invalid.cause).toBeInstanceOf(SyntaxError);

    const timeout = await failure(client.get(`${server.origin}/stock/2`, { expectPeer: 'inventory', timeoutMs: 0 }));
    expect(timeout.message).toBe(`GET /stock/2 to upstream ${server.origin}: timeoutMs must be a whole number of ms > 0, got 0; nothing was sent`);
    expect(server.requests).toHaveLength(1);
  });

  it('answers HEAD without a body, and rejects an unknown expected peer without sending', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();

    await expect(client.head(`${server.origin}/stock/1`, { expectPeer: 'inventory' })).resolves.toMatchObject({
      status: 200,
      body: undefined,
      text: '',
    });
    const call = client.get(`${server.origin}/`, { expectPeer: 'invetnory' });
    await expect(call).rejects.toMatchObject({ code: 'ERR_MTLS_UNKNOWN_PEER' });
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    ['a SPIFFE ID', INVENTORY],
    ['a named peer', 'inventory'],
    ['a pattern', 'spiffe://shop.test/ns/shop/sa/*'],
  ])('accepts the server when expectPeer is %s', async (_kind, expectPeer) => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();

    await expect(client.get(`${server.origin}/`, { expectPeer })).resolves.toMatchObject({ status: 200 });
  });

  it('refuses a server with another SPIFFE ID before sending any request byte', async () => {
    const server = await upstream(serverPeer(PAYMENTS));
    const { client } = await ordersClient();

    const error = await failure(client.post(`${server.origin}/stock/42`, { secret: 1 }, { expectPeer: 'inventory' }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.upstream).toBe(server.origin);
    expect(error.expected).toBe(`inventory (${INVENTORY})`);
    expect(error.seen).toBe(PAYMENTS);
    expect(error.message).toBe(
      `POST /stock/42: upstream ${server.origin} presented ${PAYMENTS}, expected inventory (${INVENTORY}); no request was sent`,
    );
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a server whose leaf is not an X509-SVID and says what it presented', async () => {
    const server = await upstream(pki.peer({ dnsNames: ['inventory.shop.internal'], ipAddresses: ['127.0.0.1'] }));
    const { client } = await ordersClient();

    const error = await failure(client.get(`${server.origin}/`, { expectPeer: INVENTORY }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.seen).toMatch(/^no SPIFFE ID \(.+\); SANs \[DNS:"inventory\.shop\.internal", IP:127\.0\.0\.1\]$/);
    expect(server.requests).toHaveLength(0);
  });

  it.each([
    ['issued by another CA', () => pki.foreignPeer(INVENTORY), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['expired', () => pki.expiredPeer(INVENTORY), 'CERT_HAS_EXPIRED'],
    ['not yet valid', () => pki.notYetValidPeer(INVENTORY), 'CERT_NOT_YET_VALID'],
  ])('refuses a server certificate %s with ERR_MTLS_UPSTREAM_TLS and sends nothing', async (_case, mint, reason) => {
    const server = await upstream(mint());
    const { client } = await ordersClient();

    const error = await failure(client.get(`${server.origin}/stock/1`, { expectPeer: 'inventory' }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_TLS');
    expect(error.seen).toBe(reason);
    expect(error.message).toContain(`the server's certificate was refused: ${reason}`);
    expect((error.cause as NodeJS.ErrnoException).code).toBe(reason);
    expect(server.requests).toHaveLength(0);
  });

  it('does not let the host name decide when a SPIFFE ID is expected', async () => {
    // Only a URI SAN, and a CN that Node's default check would match against the host: the SVID shape SPIRE issues.
    const server = await upstream(pki.peer({ spiffeId: INVENTORY, commonName: '127.0.0.1' }));
    const { client } = await ordersClient();

    await expect(client.get(`${server.origin}/`, { expectPeer: INVENTORY })).resolves.toMatchObject({ status: 200 });
    const error = await failure(client.get(`${server.origin}/`));
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.expected).toBe('host name 127.0.0.1');
    expect(error.seen).toBe(`SANs [URI:"${INVENTORY}"]`);
  });

  describe('host name mode', () => {
    it('verifies the URL host against the IP and DNS SANs when nothing else is expected', async () => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient();

      await expect(client.get(`${server.origin}/`)).resolves.toMatchObject({ status: 200 });
    });

    it('checks an expected host name and sends it as SNI', async () => {
      const server = await upstream(pki.peer({ dnsNames: ['inventory.shop.internal'] }));
      const { client } = await ordersClient();

      await expect(client.get(`${server.origin}/`, { expectPeer: { hostname: 'inventory.shop.internal' } })).resolves.toMatchObject({
        status: 200,
      });
      expect(server.requests[0]?.servername).toBe('inventory.shop.internal');

      const error = await failure(client.get(`${server.origin}/`, { expectPeer: { hostname: 'billing.shop.internal' } }));
      expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(error.message).toContain('billing.shop.internal is not among its SANs');
      expect(server.requests).toHaveLength(1);
    });

    it('never falls back to the subject CN', async () => {
      const server = await upstream(pki.peer({ commonName: 'legacy.shop.internal', ipAddresses: ['10.0.0.1'] }));
      const { client } = await ordersClient();

      const error = await failure(client.get(`${server.origin}/`, { expectPeer: { hostname: 'legacy.shop.internal' } }));

      expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(error.message).toContain('the certificate has no DNS SAN (the subject CN is never used)');
      expect(server.requests).toHaveLength(0);
    });
  });

  it.each([
    [1, 1],
    // undici reuses a socket only a full event-loop turn after its response (for servers that close despite
    // keep-alive), so a caller that sends at once gets a second connection; both are then reused.
    [16, 2],
  ])('keeps connections alive: 50 sequential requests with %i connection(s) per origin, at most %i handshake(s)', async (connectionsPerOrigin, handshakes) => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient({ client: { connectionsPerOrigin } });

    for (let i = 0; i < 50; i++) {
      expect((await client.get(`${server.origin}/n/${i}`, { expectPeer: 'inventory' })).status).toBe(200);
    }

    expect(server.requests).toHaveLength(50);
    expect(server.handshakes).toBeLessThanOrEqual(handshakes);
    expect(server.handshakes - server.resumed).toBe(1);
  });

  it('resumes the TLS session on a new connection', async () => {
    const server = await upstream(serverPeer(INVENTORY), (_request, response) => {
      response.setHeader('connection', 'close');
      response.end('bye');
    });
    const { client } = await ordersClient();

    await client.get(`${server.origin}/`, { expectPeer: 'inventory' });
    await eventually(() => server.sockets.size === 0);
    await client.get(`${server.origin}/`, { expectPeer: 'inventory' });

    expect(server.handshakes).toBe(2);
    expect(server.resumed).toBe(1);
  });

  it('never reuses a connection or a session verified for another expectation', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();

    await client.get(`${server.origin}/`, { expectPeer: 'inventory' });
    await client.get(`${server.origin}/`, { expectPeer: 'spiffe://shop.test/ns/shop/sa/*' });
    expect(server.handshakes).toBe(2);
    // Node skips checkServerIdentity on a resumed session: resuming across expectations would skip the check.
    const error = await failure(client.get(`${server.origin}/`, { expectPeer: PAYMENTS }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(server.resumed).toBe(0);
    expect(server.requests).toHaveLength(2);
  });

  it('times out with ERR_MTLS_UPSTREAM_TIMEOUT', async () => {
    const server = await upstream(serverPeer(INVENTORY), () => {
      // never answers
    });
    const { client } = await ordersClient();

    const started = Date.now();
    const error = await failure(client.get(`${server.origin}/slow?token=secret`, { expectPeer: 'inventory', timeoutMs: 150 }));

    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_TIMEOUT');
    expect(error.message).toBe(`GET /slow to upstream ${server.origin}: no complete response within 150 ms`);
    expect(server.requests).toHaveLength(1);
  });

  it('aborts with ERR_MTLS_UPSTREAM_ABORTED, in flight or before sending', async () => {
    const server = await upstream(serverPeer(INVENTORY), () => {
      // never answers
    });
    const { client } = await ordersClient();

    const controller = new AbortController();
    const call = client.get(`${server.origin}/slow`, { expectPeer: 'inventory', signal: controller.signal });
    await eventually(() => server.requests.length === 1);
    controller.abort();
    const error = await failure(call);
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_ABORTED');
    expect(error.message).toBe(`GET /slow to upstream ${server.origin}: aborted by the caller`);

    const early = await failure(client.get(`${server.origin}/never`, { expectPeer: 'inventory', signal: AbortSignal.abort() }));
    expect(early.code).toBe('ERR_MTLS_UPSTREAM_ABORTED');
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    ['TLSv1.3', 'the server closed a new connection before answering'],
    ['TLSv1.2', 'the server closed the connection during the TLS handshake'],
  ] as const)('reports a client certificate the server refuses over %s as ERR_MTLS_UPSTREAM_TLS', async (maxVersion, how) => {
    // The server trusts another CA. TLS 1.3 clients learn of the refusal on their first read, after sending.
    const other = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await startUpstream(await serverPeer(INVENTORY), other.bundlePem);
    cleanups.push(() => server.close());
    const { client } = await ordersClient({ tls: { maxVersion } });

    const error = await failure(client.get(`${server.origin}/`, { expectPeer: 'inventory' }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_TLS');
    expect(error.message).toContain(how);
    expect(error.message).toContain('the server may have refused our client certificate');
    expect(server.requests).toHaveLength(0);
  });

  it('maps transport failures to ERR_MTLS_UPSTREAM_REQUEST and refuses plain http', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    await server.close();
    const { client } = await ordersClient();

    const refused = await failure(client.get(`${server.origin}/`, { expectPeer: 'inventory' }));
    expect(refused.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(refused.seen).toBe('ECONNREFUSED');

    const plain = await failure(client.get('http://127.0.0.1:1/'));
    expect(plain.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(plain.message).toBe('GET / to upstream http://127.0.0.1:1: only https:// URLs are supported; nothing was sent');
  });

  describe('named upstreams', () => {
    it('binds origin, path prefix and expected identity', async () => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient({
        client: { upstreams: { inventory: { url: `${server.origin}/api/`, expectPeer: 'inventory' } } },
      });

      const response = await client.upstream('inventory').get<{ url: string }>('/stock/42', { query: { q: 1 } });

      expect(response.body.url).toBe('/api/stock/42?q=1');
      expect(client.upstream('inventory')).toBe(client.upstream('inventory'));
    });

    it("applies the upstream's expectation to URL calls to its origin, and names it in errors", async () => {
      const server = await upstream(serverPeer(PAYMENTS));
      const { client } = await ordersClient({
        client: { upstreams: { inventory: { url: server.origin, expectPeer: 'inventory' } } },
      });

      for (const call of [client.get(`${server.origin}/stock/1`), client.upstream('inventory').get('/stock/1')]) {
        const error = await failure(call);
        expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
        expect(error.upstream).toBe('inventory');
        expect(error.message).toContain(`upstream inventory presented ${PAYMENTS}, expected inventory (${INVENTORY})`);
      }
      expect(server.requests).toHaveLength(0);
    });

    it('rejects unknown upstreams and relative paths', async () => {
      const { client } = await ordersClient({ client: { upstreams: { inventory: { url: 'https://127.0.0.1:1', expectPeer: INVENTORY } } } });

      expect(() => client.upstream('billing')).toThrow('no upstream named "billing" in MtlsModule option "client.upstreams" (configured: "inventory")');
      const error = await failure(client.upstream('inventory').get('stock/1'));
      expect(error.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
      expect(error.message).toBe('GET to upstream inventory: the path must start with "/", got "stock/1"; nothing was sent');
    });
  });

  describe('dispatcher()', () => {
    it.each([
      ["undici's fetch", undiciFetch as unknown as typeof fetch],
      ["Node's global fetch", fetch],
    ])('serves %s with the client certificate and identity checks', async (_name, fetchWith) => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient();
      const dispatcher = client.dispatcher({ expectPeer: 'inventory' });

      const response = await fetchWith(`${server.origin}/stock/42`, { dispatcher } as unknown as RequestInit);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ url: '/stock/42' });

      const wrong = client.dispatcher({ expectPeer: PAYMENTS });
      const error = await fetchWith(`${server.origin}/stock/42`, { dispatcher: wrong } as unknown as RequestInit).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect((error as Error).cause).toBeInstanceOf(UpstreamError);
      expect(((error as Error).cause as UpstreamError).code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(server.requests).toHaveLength(1);
    });
  });

  describe('httpsAgent()', () => {
    function httpsGetStatus(url: string, agent: import('node:https').Agent): Promise<number> {
      return new Promise((resolve, reject) => {
        // The request's own TLS options must not weaken the agent's checks.
        httpsGet(url, { agent, rejectUnauthorized: false }, (response: IncomingMessage) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        }).on('error', reject);
      });
    }

    it('serves node:https with the client certificate, keep-alive and identity checks', async () => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient();
      const agent = client.httpsAgent({ expectPeer: 'inventory' });

      expect(await httpsGetStatus(`${server.origin}/a`, agent)).toBe(200);
      expect(await httpsGetStatus(`${server.origin}/b`, agent)).toBe(200);
      expect(server.handshakes).toBe(1);

      const error = await httpsGetStatus(`${server.origin}/c`, client.httpsAgent({ expectPeer: PAYMENTS })).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(server.requests).toHaveLength(2);
    });
  });

  it('close() closes every connection and refuses later calls', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();
    const agent = client.httpsAgent({ expectPeer: 'inventory' });
    await Promise.all([
      client.get(`${server.origin}/1`, { expectPeer: 'inventory' }),
      client.get(`${server.origin}/2`, { expectPeer: 'inventory' }),
      new Promise((resolve) => httpsGet(`${server.origin}/3`, { agent }, (response) => response.resume().on('end', resolve))),
    ]);
    expect(server.sockets.size).toBe(3);

    await client.close();

    await eventually(() => server.sockets.size === 0);
    const error = await failure(client.get(`${server.origin}/`, { expectPeer: 'inventory' }));
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(error.message).toContain('the mTLS client is closed');
  });

  it('moves to new credentials on rotation: client, dispatcher and agent present the new certificate', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client, store } = await ordersClient();
    const dispatcher = client.dispatcher({ expectPeer: 'inventory' });
    const agent = client.httpsAgent({ expectPeer: 'inventory' });
    const viaAgent = (path: string): Promise<unknown> =>
      new Promise((resolve, reject) => httpsGet(`${server.origin}${path}`, { agent }, (response) => response.resume().on('end', resolve)).on('error', reject));
    const callAll = async (): Promise<void> => {
      await client.get(`${server.origin}/client`, { expectPeer: 'inventory' });
      await (await undiciFetch(`${server.origin}/dispatcher`, { dispatcher })).text();
      await viaAgent('/agent');
    };
    await callAll();
    const before = new Set(server.requests.map((request) => request.clientSerial));
    expect(before.size).toBe(1);
    const { handshakes } = server;

    const { credentials } = await pki.credentials(ORDERS);
    store.replace(await loadCredentials(resolveMtlsOptions({ credentials }).credentialFiles));
    // Idle connections of the old generation close at once.
    await eventually(() => server.sockets.size === 0);
    await callAll();

    // A resumed session carries the certificate of its first handshake: resuming an old-generation session would
    // show the old serial here.
    const after = server.requests.slice(3).map((request) => request.clientSerial);
    expect(after).toHaveLength(3);
    expect(new Set(after).size).toBe(1);
    expect(before.has(after[0])).toBe(false);
    expect(server.handshakes).toBeGreaterThan(handshakes);
  });
});

describe('MtlsHttpClient in a Nest application', () => {
  it('is injectable with the module tokens and closes its connections on shutdown', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { credentials } = await pki.credentials(ORDERS);
    const options = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY } });
    const store = new CredentialStore(await loadCredentials(options.credentialFiles));
    const moduleRef = await Test.createTestingModule({
      providers: [{ provide: MTLS_OPTIONS, useValue: options }, { provide: MTLS_CLIENT_CREDENTIALS, useValue: store }, MtlsHttpClient],
    }).compile();
    moduleRef.enableShutdownHooks();
    const client = moduleRef.get(MtlsHttpClient);

    await expect(client.get(`${server.origin}/`, { expectPeer: 'inventory' })).resolves.toMatchObject({ status: 200 });
    expect(server.sockets.size).toBe(1);
    await moduleRef.close();

    await eventually(() => server.sockets.size === 0);
  });
});

describe('MtlsHttpClient configuration', () => {
  it('fails at construction on an upstream expecting an unknown peer', async () => {
    const build = ordersClient({ client: { upstreams: { inventory: { url: 'https://127.0.0.1:1', expectPeer: 'invetnory' } } } });

    await expect(build).rejects.toMatchObject({
      code: 'ERR_MTLS_UNKNOWN_PEER',
      message: expect.stringContaining('MtlsModule option "client.upstreams.inventory.expectPeer": unknown peer "invetnory"'),
    });
  });

  it('fails at construction when two upstreams share an origin but expect different peers', async () => {
    const build = ordersClient({
      client: {
        upstreams: {
          inventory: { url: 'https://10.0.0.1:8443/a', expectPeer: INVENTORY },
          payments: { url: 'https://10.0.0.1:8443/b', expectPeer: PAYMENTS },
        },
      },
    });

    await expect(build).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message:
        'MtlsModule options "client.upstreams.inventory" and "client.upstreams.payments" share the origin https://10.0.0.1:8443 but expect different peers; give them the same "expectPeer"',
    });
  });
});
