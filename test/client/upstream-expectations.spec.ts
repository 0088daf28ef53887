import 'reflect-metadata';
import type { IncomingMessage } from 'node:http';
import { get as httpsGet, type Agent } from 'node:https';
import { fetch as undiciFetch } from 'undici';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { MtlsConfigError, MtlsError } from '../../lib/errors/mtls.errors.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import { startUpstream, type Handler, type UpstreamServer } from './upstream-server.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

let pki: TestPki;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test' });
});

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function ordersClient(options: Partial<MtlsModuleOptions> = {}): Promise<MtlsHttpClient> {
  const { credentials } = await pki.credentials(ORDERS);
  const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY }, ...options });
  const client = new MtlsHttpClient(resolved, new CredentialStore(await loadCredentials(resolved.credentialFiles)));
  cleanups.push(() => client.close());
  return client;
}

async function upstream(identity: Promise<TestPeer>, handler?: Handler): Promise<UpstreamServer> {
  const server = await startUpstream(await identity, pki.bundlePem, handler);
  cleanups.push(() => server.close());
  return server;
}

/** The inventory server: its SVID also carries 127.0.0.1 and localhost, so the host-name check alone would pass. */
function inventoryServer(): Promise<UpstreamServer> {
  return upstream(pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'] }));
}

function portOf(server: UpstreamServer): string {
  return new URL(server.origin).port;
}

async function rejection(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => undefined,
    (error: unknown) => error,
  );
}

/** Not one TCP connection, handshake or byte reached the server. */
function expectUntouched(server: UpstreamServer): void {
  expect({
    connections: server.connections.size,
    handshakes: server.handshakes,
    bytes: server.bytesReceived,
    requests: server.requestHeads,
  }).toEqual({
    connections: 0,
    handshakes: 0,
    bytes: 0,
    requests: 0,
  });
}

function httpsGetStatus(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { agent }, (response: IncomingMessage) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    }).on('error', reject);
  });
}

/*
 * An upstream's expectation must not hang on one spelling of its origin, and no call may fall back to a weaker check
 * without saying so: a URL call to an origin that is not a configured upstream names whom it expects, or is refused.
 */
describe('a named upstream reached by another host name', () => {
  it('refuses a URL call to an origin that is no configured upstream when it does not say whom it expects, sending nothing', async () => {
    const server = await inventoryServer();
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://localhost:${portOf(server)}`, expectPeer: 'inventory' } } },
    });

    const error = await rejection(client.get(`https://127.0.0.1:${portOf(server)}/stock/1`));
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    const message = (error as Error).message;
    expect(message).toContain(`GET /stock/1 to upstream https://127.0.0.1:${portOf(server)}: `);
    expect(message).toContain(`https://127.0.0.1:${portOf(server)} is not the origin of a configured upstream`);
    expect(message).toContain(`inventory: https://localhost:${portOf(server)}`);
    expect(message).toMatch(/pass options\.expectPeer .*\{ hostname \}/);
    expect(message).toMatch(/; nothing was sent$/);
    expectUntouched(server);
  });

  it('serves the same call when it names the peer, or asks for the host-name check explicitly', async () => {
    const server = await inventoryServer();
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://localhost:${portOf(server)}`, expectPeer: 'inventory' } } },
    });
    const url = `https://127.0.0.1:${portOf(server)}/stock/1`;

    expect((await client.get(url, { expectPeer: 'inventory' })).status).toBe(200);
    expect((await client.get(url, { expectPeer: INVENTORY })).status).toBe(200);
    expect((await client.get(url, { expectPeer: { hostname: '127.0.0.1' } })).status).toBe(200);
  });

  it("keeps the upstream's expectation for every spelling of its origin", async () => {
    // A SPIFFE ID and no SAN for the host: only the upstream's expectation can accept this server.
    const server = await upstream(pki.peer({ spiffeId: INVENTORY }));
    const port = portOf(server);
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://LocalHost:${port}/api/`, expectPeer: 'inventory' } } },
    });

    // (A trailing dot, `localhost.`, is in the registry's table: this resolver does not resolve it.)
    for (const url of [`https://localhost:${port}/a`, `https://LOCALHOST:${port}/b`, new URL(`https://localhost:${port}/d`)]) {
      expect((await client.get(url)).status, String(url)).toBe(200);
    }
    expect((await client.upstream('inventory').get('/e')).status).toBe(200);
    // An explicit expectation still wins over the configured one, and is checked.
    const wrong = await rejection(
      client.get(`https://localhost:${port}/f`, { expectPeer: 'spiffe://shop.test/ns/shop/sa/payments' }),
    );
    expect(wrong).toMatchObject({ code: 'ERR_MTLS_UPSTREAM_IDENTITY' });
  });

  it.each([
    ["undici's fetch", undiciFetch as unknown as typeof fetch],
    ["Node's global fetch", fetch],
  ])('refuses %s through dispatcher() without expectPeer to such an origin, sending nothing', async (_name, fetchWith) => {
    const server = await inventoryServer();
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://localhost:${portOf(server)}`, expectPeer: 'inventory' } } },
    });
    const dispatcher = client.dispatcher();

    const error = await rejection(
      fetchWith(`https://127.0.0.1:${portOf(server)}/stock`, { dispatcher } as unknown as RequestInit),
    );
    expect(error).toBeInstanceOf(TypeError);
    const cause = (error as TypeError).cause;
    expect(cause).toBeInstanceOf(MtlsConfigError);
    expect(cause).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    expect((cause as Error).message).toMatch(
      /^MtlsHttpClient\.dispatcher\(\) without expectPeer: https:\/\/127\.0\.0\.1:\d+ is not the origin of a configured upstream/,
    );
    expectUntouched(server);

    // The configured origin through the same dispatcher: the upstream's expectation, served.
    const served = await fetchWith(`https://localhost:${portOf(server)}/stock`, { dispatcher } as unknown as RequestInit);
    await served.text();
    expect(served.status).toBe(200);
  });

  it('refuses node:https through httpsAgent() without expectPeer to such an origin, sending nothing', async () => {
    const server = await inventoryServer();
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://localhost:${portOf(server)}`, expectPeer: 'inventory' } } },
    });
    const agent = client.httpsAgent();

    const error = await rejection(httpsGetStatus(`https://127.0.0.1:${portOf(server)}/stock`, agent));
    expect(error).toBeInstanceOf(MtlsConfigError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    expect((error as Error).message).toMatch(
      /^MtlsHttpClient\.httpsAgent\(\) without expectPeer: https:\/\/127\.0\.0\.1:\d+ is not the origin of a configured upstream/,
    );
    expectUntouched(server);

    expect(await httpsGetStatus(`https://localhost:${portOf(server)}/stock`, agent)).toBe(200);
    expect(
      await httpsGetStatus(
        `https://127.0.0.1:${portOf(server)}/stock`,
        client.httpsAgent({ expectPeer: { hostname: '127.0.0.1' } }),
      ),
    ).toBe(200);
  });

  it('refuses a URL call without expectPeer when no upstream is configured at all', async () => {
    const server = await inventoryServer();
    const client = await ordersClient();

    const error = await rejection(client.post(`${server.origin}/orders`, { sku: 1 }));
    expect(error).toBeInstanceOf(MtlsError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    expect((error as Error).message).toContain('(no upstreams configured)');
    expectUntouched(server);
  });

  it('does not follow a redirect from a configured upstream to another origin through dispatcher() without expectPeer', async () => {
    // Another path out: fetch follows redirects, and the target origin is the redirecting server's choice.
    const elsewhere = await inventoryServer();
    const server = await upstream(pki.peer({ spiffeId: INVENTORY, dnsNames: ['localhost'] }), (_request, response) => {
      response.statusCode = 302;
      response.setHeader('location', `${elsewhere.origin}/stolen`);
      response.end();
    });
    const client = await ordersClient({
      client: { upstreams: { inventory: { url: `https://localhost:${portOf(server)}`, expectPeer: 'inventory' } } },
    });

    const error = await rejection(undiciFetch(`https://localhost:${portOf(server)}/stock`, { dispatcher: client.dispatcher() }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).cause).toMatchObject({ code: 'ERR_MTLS_CONFIG_INVALID' });
    expect(server.requests).toHaveLength(1);
    expectUntouched(elsewhere);
  });
});
