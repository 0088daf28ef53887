import 'reflect-metadata';
import { get as httpsGet } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Test } from '@nestjs/testing';
import { fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { MtlsConfigError, UpstreamError } from '../../lib/errors/mtls.errors.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { MTLS_CLIENT_CREDENTIALS, MTLS_OPTIONS } from '../../lib/mtls.constants.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import { eventually, expectNothingReceived, mark, startUpstream, type Handler, type UpstreamServer } from './upstream-server.js';

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

/** A client for the orders service, built as the module builds it (without Nest); the caller closes it. */
async function buildOrdersClient(
  options: Partial<MtlsModuleOptions> = {},
): Promise<{ client: MtlsHttpClient; store: CredentialStore }> {
  const { credentials } = await pki.credentials(ORDERS);
  const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY }, ...options });
  const store = new CredentialStore(await loadCredentials(resolved.credentialFiles));
  return { client: new MtlsHttpClient(resolved, store), store };
}

/** A client for the orders service, closed after the test. */
async function ordersClient(
  options: Partial<MtlsModuleOptions> = {},
): Promise<{ client: MtlsHttpClient; store: CredentialStore }> {
  const built = await buildOrdersClient(options);
  cleanups.push(() => built.client.close());
  return built;
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

/** The MtlsConfigError a call rejects with: a bad argument, refused before anything was sent. */
async function refusal(call: Promise<unknown>): Promise<MtlsConfigError> {
  const error = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(MtlsConfigError);
  return error as MtlsConfigError;
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

    const before = mark(server);
    const timeout = await refusal(client.get(`${server.origin}/stock/2`, { expectPeer: 'inventory', timeoutMs: 0 }));
    expect(timeout.code).toBe('ERR_MTLS_INVALID_ARGUMENT');
    expect(timeout.message).toBe(
      `GET /stock/2 to upstream ${server.origin}: options.timeoutMs must be a whole number of ms from 1 to 2147483647; got 0; nothing was sent`,
    );
    await expectNothingReceived(server, before, 1);
  });

  it('answers HEAD without a body, and rejects an unknown expected peer without sending', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    const { client } = await ordersClient();

    await expect(client.head(`${server.origin}/stock/1`, { expectPeer: 'inventory' })).resolves.toMatchObject({
      status: 200,
      body: undefined,
      text: '',
    });
    const before = mark(server);
    const call = client.get(`${server.origin}/stock?token=secret`, { expectPeer: 'invetnory' });
    const error = await refusal(call);
    expect(error.code).toBe('ERR_MTLS_UNKNOWN_PEER');
    expect(error.message).toMatch(
      new RegExp(`^GET /stock to upstream ${server.origin}: options.expectPeer: .*unknown peer "invetnory".*; nothing was sent$`),
    );
    await expectNothingReceived(server, before, 1);
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
    await expectNothingReceived(server);
  });

  it('refuses a server whose leaf is not an X509-SVID and says what it presented', async () => {
    const server = await upstream(pki.peer({ dnsNames: ['inventory.shop.internal'], ipAddresses: ['127.0.0.1'] }));
    const { client } = await ordersClient();

    const error = await failure(client.get(`${server.origin}/`, { expectPeer: INVENTORY }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.seen).toMatch(/^no SPIFFE ID \(.+\); SANs \[DNS:"inventory\.shop\.internal", IP:127\.0\.0\.1\]$/);
    await expectNothingReceived(server);
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
    await expectNothingReceived(server);
  });

  it('does not let the host name decide when a SPIFFE ID is expected', async () => {
    // Only a URI SAN, and a CN that Node's default check would match against the host: the SVID shape SPIRE issues.
    const server = await upstream(pki.peer({ spiffeId: INVENTORY, commonName: '127.0.0.1' }));
    const { client } = await ordersClient();

    await expect(client.get(`${server.origin}/`, { expectPeer: INVENTORY })).resolves.toMatchObject({ status: 200 });
    const error = await failure(client.get(`${server.origin}/`, { expectPeer: { hostname: '127.0.0.1' } }));
    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(error.expected).toBe('host name 127.0.0.1');
    expect(error.seen).toBe(`SANs [URI:"${INVENTORY}"]`);
  });

  describe('host name mode', () => {
    it('verifies a host name asked for explicitly against the IP and DNS SANs', async () => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient();

      await expect(client.get(`${server.origin}/`, { expectPeer: { hostname: '127.0.0.1' } })).resolves.toMatchObject({
        status: 200,
      });
    });

    it('checks an expected host name and sends it as SNI', async () => {
      const server = await upstream(pki.peer({ dnsNames: ['inventory.shop.internal'] }));
      const { client } = await ordersClient();

      await expect(
        client.get(`${server.origin}/`, { expectPeer: { hostname: 'inventory.shop.internal' } }),
      ).resolves.toMatchObject({
        status: 200,
      });
      expect(server.requests[0]?.servername).toBe('inventory.shop.internal');

      const before = mark(server);
      const error = await failure(client.get(`${server.origin}/`, { expectPeer: { hostname: 'billing.shop.internal' } }));
      expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(error.message).toContain('billing.shop.internal is not among its SANs');
      await expectNothingReceived(server, before, 1);
    });

    it('never falls back to the subject CN', async () => {
      const server = await upstream(pki.peer({ commonName: 'legacy.shop.internal', ipAddresses: ['10.0.0.1'] }));
      const { client } = await ordersClient();

      const error = await failure(client.get(`${server.origin}/`, { expectPeer: { hostname: 'legacy.shop.internal' } }));

      expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(error.message).toContain('the certificate has no DNS SAN (the subject CN is never used)');
      await expectNothingReceived(server);
    });
  });

  it.each([
    [1, 1],
    // undici reuses a socket only a full event-loop turn after its response (for servers that close despite
    // keep-alive), so a caller that sends at once gets a second connection; both are then reused.
    [16, 2],
  ])(
    'keeps connections alive: 50 sequential requests with %i connection(s) per origin, at most %i handshake(s)',
    async (connectionsPerOrigin, handshakes) => {
      const server = await upstream(serverPeer(INVENTORY));
      const { client } = await ordersClient({ client: { connectionsPerOrigin } });

      for (let i = 0; i < 50; i++) {
        expect((await client.get(`${server.origin}/n/${i}`, { expectPeer: 'inventory' })).status).toBe(200);
      }

      expect(server.requests).toHaveLength(50);
      expect(server.handshakes).toBeLessThanOrEqual(handshakes);
      expect(server.handshakes - server.resumed).toBe(1);
    },
  );

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
    const before = mark(server);
    // Node skips checkServerIdentity on a resumed session: resuming across expectations would skip the check.
    const error = await failure(client.get(`${server.origin}/`, { expectPeer: PAYMENTS }));

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
    expect(server.resumed).toBe(0);
    await expectNothingReceived(server, before, 2);
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

    const before = mark(server);
    const early = await failure(client.get(`${server.origin}/never`, { expectPeer: 'inventory', signal: AbortSignal.abort() }));
    expect(early.code).toBe('ERR_MTLS_UPSTREAM_ABORTED');
    // The server keeps the first connection open while its response is pending; the early call opened none.
    await expectNothingReceived(server, before, 1);
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
    // With TLS 1.3 the request was written, but the server never completed the handshake, so never decrypted it.
    expect(server.handshakes).toBe(0);
    await expectNothingReceived(server);
  });

  it('maps transport failures to ERR_MTLS_UPSTREAM_REQUEST and refuses plain http', async () => {
    const server = await upstream(serverPeer(INVENTORY));
    await server.close();
    const { client } = await ordersClient();

    const refused = await failure(client.get(`${server.origin}/`, { expectPeer: 'inventory' }));
    expect(refused.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(refused.seen).toBe('ECONNREFUSED');

    const plain = await refusal(client.get('http://127.0.0.1:1/'));
    expect(plain.code).toBe('ERR_MTLS_INVALID_ARGUMENT');
    expect(plain.message).toBe(
      'GET: url must be https://, not http:// (http://127.0.0.1:1): plain http can neither present the client certificate nor verify the server; nothing was sent',
    );
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
      await expectNothingReceived(server);
    });

    it('rejects unknown upstreams and relative paths', async () => {
      const { client } = await ordersClient({
        client: { upstreams: { inventory: { url: 'https://127.0.0.1:1', expectPeer: INVENTORY } } },
      });

      expect(() => client.upstream('billing')).toThrow(
        'no upstream named "billing" in MtlsModule option "client.upstreams" (configured: "inventory")',
      );
      const error = await refusal(client.upstream('inventory').get('stock/1'));
      expect(error.code).toBe('ERR_MTLS_INVALID_ARGUMENT');
      expect(error.message).toBe('GET to upstream inventory: the path must start with "/"; got "stock/1"; nothing was sent');
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

      const before = mark(server);
      const wrong = client.dispatcher({ expectPeer: PAYMENTS });
      const error = await fetchWith(`${server.origin}/stock/42`, { dispatcher: wrong } as unknown as RequestInit).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect((error as Error).cause).toBeInstanceOf(UpstreamError);
      expect(((error as Error).cause as UpstreamError).code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      await expectNothingReceived(server, before, 1);
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

      const before = mark(server);
      const error = await httpsGetStatus(`${server.origin}/c`, client.httpsAgent({ expectPeer: PAYMENTS })).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      await expectNothingReceived(server, before, 1);
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
      new Promise((resolve, reject) =>
        httpsGet(`${server.origin}${path}`, { agent }, (response) => response.resume().on('end', resolve)).on('error', reject),
      );
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
      providers: [
        { provide: MTLS_OPTIONS, useValue: options },
        { provide: MTLS_CLIENT_CREDENTIALS, useValue: store },
        MtlsHttpClient,
      ],
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

describe('MtlsHttpClient argument checks', () => {
  let server: UpstreamServer;
  let client: MtlsHttpClient;

  beforeAll(async () => {
    server = await startUpstream(await serverPeer(INVENTORY), pki.bundlePem);
    ({ client } = await buildOrdersClient({
      client: { upstreams: { inventory: { url: 'https://127.0.0.1:1/api', expectPeer: 'inventory' } } },
    }));
  });

  afterAll(async () => {
    await client.close();
    await server.close();
  });

  const circular: Record<string, unknown> = {};
  circular.self = circular;
  type Call = (client: MtlsHttpClient, origin: string) => Promise<unknown>;

  it.each<[string, Call, string]>([
    ['a number as the URL', (c) => c.get(42 as never), 'GET: url must be a string or a URL; got 42'],
    ['null as the URL', (c) => c.post(null as never, {}), 'POST: url must be a string or a URL; got null'],
    ['a relative URL', (c) => c.get('/stock/1?token=secret'), 'GET: url must be an absolute https:// URL; got "/stock/1"'],
    [
      'an http:// URL',
      (c) => c.delete('http://inventory:8080/stock/1'),
      'DELETE: url must be https://, not http:// (http://inventory:8080): plain http can neither present the client certificate nor verify the server',
    ],
    [
      'a URL with credentials',
      (c, o) => c.get(o.replace('https://', 'https://user:pw@')),
      'GET: url must not carry credentials (user:password@127.0.0.1:PORT); send them in a header',
    ],
    [
      'a lower-case method',
      (c, o) => c.request('get' as never, o),
      'MtlsHttpClient.request(): the method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; got "get"',
    ],
    [
      'null options',
      (c, o) => c.get(`${o}/stock`, null as never),
      'GET /stock to upstream ORIGIN: options must be an object; got null',
    ],
    [
      'a null query',
      (c, o) => c.get(`${o}/stock`, { query: null as never }),
      'GET /stock to upstream ORIGIN: options.query must be a plain object of name → value; got null',
    ],
    [
      'a URLSearchParams query',
      (c, o) => c.get(`${o}/stock`, { query: new URLSearchParams('a=1') as never }),
      'GET /stock to upstream ORIGIN: options.query must be a plain object of name → value; got an instance of URLSearchParams',
    ],
    [
      'a null query value',
      (c, o) => c.get(`${o}/stock`, { query: { sku: null as never } }),
      'GET /stock to upstream ORIGIN: options.query["sku"] must be a string, a finite number, a boolean or an array of them; got null',
    ],
    [
      'a Headers instance',
      (c, o) => c.get(`${o}/stock`, { headers: new Headers({ a: '1' }) as never }),
      'GET /stock to upstream ORIGIN: options.headers must be a plain object of name → value; got an instance of Headers',
    ],
    [
      'a header value with CRLF',
      (c, o) => c.get(`${o}/stock`, { headers: { 'x-id': 'a\r\nx-injected: 1' } }),
      'GET /stock to upstream ORIGIN: options.headers["x-id"] contains a character not allowed in a header value (CR, LF, NUL…)',
    ],
    [
      'a header undici does not send',
      (c, o) => c.get(`${o}/stock`, { expectPeer: 'inventory', headers: { 'transfer-encoding': 'chunked' } }),
      'GET /stock to upstream ORIGIN: undici refused the request: invalid transfer-encoding header',
    ],
    [
      'a zero timeout',
      (c, o) => c.get(`${o}/stock`, { timeoutMs: 0 }),
      'GET /stock to upstream ORIGIN: options.timeoutMs must be a whole number of ms from 1 to 2147483647; got 0',
    ],
    [
      'a timeout Node cannot honour',
      (c, o) => c.get(`${o}/stock`, { timeoutMs: 2 ** 31 }),
      'GET /stock to upstream ORIGIN: options.timeoutMs must be a whole number of ms from 1 to 2147483647; got 2147483648',
    ],
    [
      'a negative maxResponseBytes',
      (c, o) => c.get(`${o}/stock`, { maxResponseBytes: -1 }),
      'GET /stock to upstream ORIGIN: options.maxResponseBytes must be a whole number of bytes ≥ 0; got -1',
    ],
    [
      'a signal that is not an AbortSignal',
      (c, o) => c.get(`${o}/stock`, { signal: {} as never }),
      'GET /stock to upstream ORIGIN: options.signal must be an AbortSignal; got an object',
    ],
    [
      'a number as expectPeer',
      (c, o) => c.get(`${o}/stock`, { expectPeer: 42 as never }),
      'GET /stock to upstream ORIGIN: options.expectPeer: expectPeer must be a named peer, a SPIFFE ID or pattern, or { hostname }; got 42',
    ],
    [
      'a host name with a space',
      (c, o) => c.get(`${o}/stock`, { expectPeer: { hostname: 'a b' } }),
      'GET /stock to upstream ORIGIN: options.expectPeer: expectPeer.hostname must be a DNS name or an IP address; got "a b"',
    ],
    [
      'a circular body',
      (c, o) => c.post(`${o}/stock`, circular, { expectPeer: 'inventory' }),
      'POST /stock to upstream ORIGIN: the body cannot be encoded as JSON (TypeError: Converting circular structure to JSON',
    ],
    [
      'a BigInt body',
      (c, o) => c.put(`${o}/stock`, { n: 1n }, { expectPeer: 'inventory' }),
      'PUT /stock to upstream ORIGIN: the body cannot be encoded as JSON (TypeError: Do not know how to serialize a BigInt)',
    ],
    [
      'a function body',
      (c, o) => c.patch(`${o}/stock`, () => 1, { expectPeer: 'inventory' }),
      'PATCH /stock to upstream ORIGIN: the body cannot be encoded as JSON (it is a function)',
    ],
    [
      'a web ReadableStream body',
      (c, o) => c.post(`${o}/stock`, new ReadableStream(), { expectPeer: 'inventory' }),
      'POST /stock to upstream ORIGIN: the body is an instance of ReadableStream; pass a string, bytes or a node:stream Readable (Readable.fromWeb)',
    ],
    [
      'an upstream path that is not a string',
      (c) => c.upstream('inventory').get(42 as never),
      'GET to upstream inventory: the path must start with "/"; got 42',
    ],
    [
      'an upstream path with a space',
      (c) => c.upstream('inventory').get('/stock 1'),
      'GET to upstream inventory: the path contains a space, a control character or a non-ASCII character: percent-encode it',
    ],
    [
      'an expectPeer on a named upstream',
      (c) => c.upstream('inventory').get('/stock', { expectPeer: PAYMENTS } as never),
      'GET /stock to upstream inventory: options.expectPeer cannot be set on a named upstream: its identity is configured in "client.upstreams"',
    ],
    [
      'a null query on a named upstream',
      (c) => c.upstream('inventory').get('/stock', { query: null as never }),
      'GET /stock to upstream inventory: options.query must be a plain object of name → value; got null',
    ],
  ])('rejects %s with MtlsConfigError, never throws, and sends nothing', async (_case, call, message) => {
    let promise: Promise<unknown> | undefined;
    expect(() => {
      promise = call(client, server.origin);
    }).not.toThrow();

    const error = await refusal(promise!);

    expect(error.code).toBe('ERR_MTLS_INVALID_ARGUMENT');
    const port = new URL(server.origin).port;
    expect(error.message).toContain(message.replace('ORIGIN', server.origin).replace('PORT', port));
    expect(error.message).toMatch(/; nothing was sent$/);
    expect(error.message).not.toMatch(/secret|pw@|x-injected/);
    expect(server.connections.size).toBe(0);
    expect(server.bytesReceived).toBe(0);
  });

  it('makes the factories throw MtlsConfigError for bad arguments', () => {
    expect(() => client.upstream(42 as never)).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_INVALID_ARGUMENT',
        message: 'no upstream named 42 in MtlsModule option "client.upstreams" (configured: "inventory")',
      }),
    );
    expect(() => client.dispatcher(null as never)).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_INVALID_ARGUMENT',
        message: 'MtlsHttpClient.dispatcher(): options must be an object; got null',
      }),
    );
    expect(() => client.httpsAgent({ expectPeer: 'invetnory' })).toThrow(
      expect.objectContaining({
        code: 'ERR_MTLS_UNKNOWN_PEER',
        message: expect.stringMatching(/^MtlsHttpClient\.httpsAgent\(\): options\.expectPeer: .*unknown peer "invetnory"/),
      }),
    );
  });

  it('reports an unusable host or port through the https agent as a request error, not a throw', async () => {
    const agent = client.httpsAgent({ expectPeer: 'inventory' });
    const attempt = (options: { host: string; port: number }): Promise<unknown> => {
      let request: ReturnType<typeof httpsGet> | undefined;
      expect(() => {
        request = httpsGet({ ...options, path: '/', agent });
      }).not.toThrow();
      return new Promise((resolve) => request!.on('error', resolve).on('response', (response) => resolve(response.statusCode)));
    };

    // An IPv6 literal as URLs write it; nothing listens on port 1 (the tests listen on 127.0.0.1 only).
    const ipv6 = (await attempt({ host: '[::1]', port: 1 })) as NodeJS.ErrnoException;
    expect(ipv6).toBeInstanceOf(Error);
    expect(['ECONNREFUSED', 'EADDRNOTAVAIL', 'ENETUNREACH']).toContain(ipv6.code);

    const badPort = (await attempt({ host: '127.0.0.1', port: 70_000 })) as UpstreamError;
    expect(badPort).toBeInstanceOf(UpstreamError);
    expect(badPort.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(badPort.message).toMatch(/^cannot open an mTLS connection to 127\.0\.0\.1:70000: .+; nothing was sent$/);
  });

  it('makes the dispatcher report a bad origin through the handler', async () => {
    const dispatcher = client.dispatcher();

    for (const origin of ['https://127.0.0.1:99999', 'not a url', 'http://127.0.0.1:1']) {
      const error = await dispatcher.request({ origin, path: '/', method: 'GET' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).message).toContain(
        `the mTLS dispatcher only reaches https:// origins, got ${JSON.stringify(origin)}`,
      );
    }
  });
});

describe('MtlsHttpClient dispatcher origins', () => {
  it("finds the named upstream's expectation whatever the origin's spelling", async () => {
    // SPIFFE ID only: the URL's host name cannot be verified, only the named upstream's expectation accepts it.
    const server = await upstream(pki.peer({ spiffeId: INVENTORY }));
    const { client } = await ordersClient({
      client: { upstreams: { inventory: { url: server.origin, expectPeer: 'inventory' } } },
    });
    const dispatcher = client.dispatcher();

    for (const origin of [server.origin, `${server.origin}/`, new URL(server.origin)]) {
      const response = await dispatcher.request({ origin, path: '/stock', method: 'GET' });
      await response.body.text();
      expect(response.statusCode).toBe(200);
    }
  });
});

describe('MtlsHttpClient response size limit', () => {
  /** Streams `total` bytes (or forever) in 16 KiB chunks, stopping when the client goes away. */
  function streaming(total = Infinity, contentLength = false): Handler {
    return (request, response) => {
      if (contentLength) response.setHeader('content-length', total);
      let sent = 0;
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const write = (): void => {
        while (sent < total && !response.destroyed) {
          const part = total - sent < chunk.length ? chunk.subarray(0, total - sent) : chunk;
          sent += part.length;
          if (!response.write(part)) {
            response.once('drain', write);
            return;
          }
        }
        if (sent >= total) response.end();
      };
      if (request.method === 'HEAD') response.end();
      else write();
    };
  }

  it('fails a body that runs past maxResponseBytes, closes its connection and frees it for the next call', async () => {
    let streamed: Socket | undefined;
    const server = await upstream(serverPeer(INVENTORY), (request, response, body) => {
      if (request.url?.startsWith('/endless') !== true) return response.end('small');
      streamed = request.socket;
      streaming()(request, response, body);
    });
    const { client } = await ordersClient({ client: { connectionsPerOrigin: 1 } });

    const error = await failure(
      client.get(`${server.origin}/endless?token=secret`, { expectPeer: 'inventory', maxResponseBytes: 64 * 1024 }),
    );

    expect(error.code).toBe('ERR_MTLS_UPSTREAM_REQUEST');
    expect(error.message).toBe(
      `GET /endless to upstream ${server.origin}: the response body (status 200) exceeds maxResponseBytes (65536 bytes); its connection was closed`,
    );
    // (undici then opens a fresh connection to retry the head of its queue, finds it aborted, and keeps it idle.)
    await eventually(() => streamed?.destroyed === true);
    // One connection per origin: the next call would wait forever if the aborted one still held it.
    await expect(client.get(`${server.origin}/small`, { expectPeer: 'inventory', timeoutMs: 2_000 })).resolves.toMatchObject({
      text: 'small',
    });
  });

  it('fails on a declared content-length over the limit before the body arrives', async () => {
    let clientClosed = false;
    const server = await upstream(serverPeer(INVENTORY), (request, response) => {
      // The server keeps a connection whose response is unfinished half-open: the client's FIN is what shows.
      request.socket.once('end', () => (clientClosed = true));
      response.setHeader('content-length', 4096);
      response.flushHeaders();
      // and never a byte of body
    });
    const { client } = await ordersClient();

    const started = Date.now();
    const error = await failure(
      client.get(`${server.origin}/`, { expectPeer: 'inventory', maxResponseBytes: 1024, timeoutMs: 10_000 }),
    );

    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error.message).toBe(
      `GET / to upstream ${server.origin}: the response body (status 200, content-length 4096) exceeds maxResponseBytes (1024 bytes); its connection was closed`,
    );
    await eventually(() => clientClosed);
  });

  it('accepts a body of exactly maxResponseBytes, and a HEAD whatever length it declares', async () => {
    const server = await upstream(serverPeer(INVENTORY), streaming(50_000, true));
    const { client } = await ordersClient();

    const exact = await client.get(`${server.origin}/`, { expectPeer: 'inventory', maxResponseBytes: 50_000 });
    expect(exact.text).toHaveLength(50_000);
    await expect(client.head(`${server.origin}/`, { expectPeer: 'inventory', maxResponseBytes: 0 })).resolves.toMatchObject({
      status: 200,
    });
    const over = await failure(client.get(`${server.origin}/`, { expectPeer: 'inventory', maxResponseBytes: 49_999 }));
    expect(over.message).toContain('(status 200, content-length 50000) exceeds maxResponseBytes (49999 bytes)');
  });

  it('applies client.maxResponseBytes, 10 MiB by default, and lets a call raise it', async () => {
    const server = await upstream(serverPeer(INVENTORY), (request, response, body) =>
      streaming(request.url === '/11MiB' ? 11 * 1024 * 1024 : 200)(request, response, body),
    );
    const byDefault = await ordersClient();
    const error = await failure(byDefault.client.get(`${server.origin}/11MiB`, { expectPeer: 'inventory' }));
    expect(error.message).toContain('exceeds maxResponseBytes (10485760 bytes)');

    const { credentials } = await pki.credentials(ORDERS);
    const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY } });
    const store = new CredentialStore(await loadCredentials(resolved.credentialFiles));
    const limited = new MtlsHttpClient(
      { ...resolved, client: { ...resolved.client, maxResponseBytes: 100 } as typeof resolved.client },
      store,
    );
    cleanups.push(() => limited.close());

    const small = await failure(limited.get(`${server.origin}/200B`, { expectPeer: 'inventory' }));
    expect(small.message).toContain('exceeds maxResponseBytes (100 bytes)');
    await expect(limited.get(`${server.origin}/200B`, { expectPeer: 'inventory', maxResponseBytes: 200 })).resolves.toMatchObject(
      { status: 200 },
    );

    expect(() => resolveMtlsOptions({ credentials: { dir: '/unused' }, client: { maxResponseBytes: -1 } })).toThrow(
      'MtlsModule option "client.maxResponseBytes" is -1; use a whole number ≥ 0',
    );
  });
});

describe('the byte counter of the test server', () => {
  it('sees a request written right before its connection closes', async () => {
    // What the "nothing received" assertions rely on: a client that sent a request and destroyed its socket at once.
    const server = await upstream(serverPeer(INVENTORY));
    const { peer } = await pki.credentials(ORDERS);
    const { connect } = await import('node:tls');
    const { port } = new URL(server.origin);
    const socket = connect({ host: '127.0.0.1', port: Number(port), key: peer.keyPem, cert: peer.chainPem, ca: pki.bundlePem });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    // Destroyed as soon as the bytes are handed to the kernel, as a client failing right after a write would be.
    socket.write('GET /secret HTTP/1.1\r\nhost: x\r\n\r\n', () => socket.destroy());

    await eventually(() => server.connections.size === 0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(server.bytesReceived).toBeGreaterThan(0);
  });
});
