import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/mtls-http-client.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import type { MtlsModuleOptions } from '../../lib/mtls.options.js';
import { TestPki } from '../../lib/testing/index.js';
import { startUpstream } from '../client/upstream-server.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln';

let pki: TestPki;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test' });
});
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function client(options: Partial<MtlsModuleOptions> = {}): Promise<MtlsHttpClient> {
  const { credentials } = await pki.credentials(ORDERS);
  const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY }, ...options });
  const http = new MtlsHttpClient(resolved, new CredentialStore(await loadCredentials(resolved.credentialFiles)));
  cleanups.push(() => http.close());
  return http;
}

async function upstream(handler?: Parameters<typeof startUpstream>[2]) {
  const server = await startUpstream(await pki.peer({ spiffeId: INVENTORY, ipAddresses: ['127.0.0.1'] }), pki.bundlePem, handler);
  cleanups.push(() => new Promise((resolve) => server.server.close(resolve)));
  return server;
}

describe('MtlsHttpClient bearer tokens (real mTLS)', () => {
  it('sends a per-call token (string or function) as Authorization: Bearer to the verified server', async () => {
    const server = await upstream();
    const http = await client();
    await http.get(`${server.origin}/a`, { expectPeer: 'inventory', token: TOKEN });
    await http.get(`${server.origin}/b`, { expectPeer: 'inventory', token: async () => TOKEN });
    expect(server.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  it("sends a named upstream's token on its calls only, and a call's own token wins", async () => {
    const server = await upstream();
    let calls = 0;
    const http = await client({
      client: { upstreams: { inventory: { url: server.origin, expectPeer: 'inventory', token: () => `${TOKEN}${++calls}` } } },
    });
    await http.upstream('inventory').get('/x');
    await http.upstream('inventory').get('/y', { token: TOKEN });
    await http.get(`${server.origin}/z`, { expectPeer: 'inventory' });
    expect(server.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${TOKEN}1`, `Bearer ${TOKEN}`, undefined]);
  });

  it('never follows a redirect, so the token never reaches the Location origin', async () => {
    const other = await upstream();
    const server = await upstream((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `${other.origin}/stolen`);
      res.end();
    });
    const http = await client();
    const res = await http.get(`${server.origin}/r`, { expectPeer: 'inventory', token: TOKEN });
    expect(res.status).toBe(302);
    expect(other.requests).toEqual([]);
  });

  it.each([
    ['a token with a line break', { token: `${TOKEN}\r\nX-Evil: 1` }, 'is not a bearer token'],
    [
      'a token and an Authorization header',
      { token: TOKEN, headers: { Authorization: 'Basic eA==' } },
      'both options.token and an Authorization header',
    ],
    ['a function returning no string', { token: () => undefined as unknown as string }, 'returned no string'],
  ])('refuses %s without sending anything or quoting the value', async (_name, options, message) => {
    const server = await upstream();
    const http = await client();
    const error = await http.get(`${server.origin}/q`, { expectPeer: 'inventory', ...options }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MTLS_INVALID_ARGUMENT' });
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain(TOKEN);
    expect(server.requests).toEqual([]);
  });
});
