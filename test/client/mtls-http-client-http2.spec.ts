import 'reflect-metadata';
import { Controller, Get, Req, type INestApplication } from '@nestjs/common';
import type { Http2SecureServer } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import { UpstreamError } from '../../lib/errors/mtls.errors.js';
import { AllowPeers } from '../../lib/index.js';
import { resolveMtlsOptions } from '../../lib/mtls.config.js';
import { TestPki } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';
import { SERVER_CELLS } from '../support/cells.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

@Controller('version')
class VersionController {
  @Get()
  @AllowPeers('orders')
  version(@Req() request: { raw: { httpVersion: string } }) {
    return { httpVersion: request.raw.httpVersion };
  }
}

/*
 * MtlsHttpClient with `client.http2` against a Fastify HTTP/2 server (which also speaks HTTP/1.1): ALPN picks h2, the
 * server's identity is checked in the handshake as over HTTP/1.1, and concurrent calls share one connection.
 */
describe('MtlsHttpClient over HTTP/2', () => {
  let pki: TestPki;
  let app: INestApplication;
  let origin: string;
  const counts = { connections: 0, streams: 0 };

  async function client(http2: boolean): Promise<MtlsHttpClient> {
    const { credentials } = await pki.credentials(ORDERS);
    const resolved = resolveMtlsOptions({ credentials, peers: { inventory: INVENTORY }, client: { http2 } });
    return new MtlsHttpClient(resolved, new CredentialStore(await loadCredentials(resolved.credentialFiles)));
  }

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const { credentials } = await pki.credentials(INVENTORY);
    app = await startMtlsApp({ credentials, peers: { orders: ORDERS } }, [VersionController], {
      cell: SERVER_CELLS.find((c) => c.http2)!,
    });
    const server = app.getHttpServer() as Http2SecureServer;
    server.on('secureConnection', () => counts.connections++);
    server.on('stream', () => counts.streams++);
    origin = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await app?.close();
  });

  it('speaks HTTP/2 when asked, HTTP/1.1 otherwise, to the same port', async () => {
    const [h2, h1] = await Promise.all([client(true), client(false)]);
    try {
      expect((await h2.get(`${origin}/version`, { expectPeer: 'inventory' })).body).toEqual({ httpVersion: '2.0' });
      expect((await h1.get(`${origin}/version`, { expectPeer: 'inventory' })).body).toEqual({ httpVersion: '1.1' });
    } finally {
      await Promise.all([h2.close(), h1.close()]);
    }
  });

  it('multiplexes concurrent calls on one connection once it is open', async () => {
    const h2 = await client(true);
    try {
      const before = counts.connections;
      // Before ALPN has answered, undici's pool cannot know the connection will multiplex: a cold burst opens more.
      await h2.get(`${origin}/version`, { expectPeer: 'inventory' });
      const responses = await Promise.all(
        Array.from({ length: 40 }, () => h2.get(`${origin}/version`, { expectPeer: 'inventory' })),
      );
      expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 40 }, () => 200));
      expect(counts.connections - before).toBe(1);
    } finally {
      await h2.close();
    }
  });

  it('refuses a server with another identity in the handshake: no stream is opened', async () => {
    const h2 = await client(true);
    try {
      const streams = counts.streams;
      const error = await h2.get(`${origin}/version`, { expectPeer: 'spiffe://shop.test/ns/shop/sa/payments' }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).code).toBe('ERR_MTLS_UPSTREAM_IDENTITY');
      expect(counts.streams).toBe(streams);
    } finally {
      await h2.close();
    }
  });
});
