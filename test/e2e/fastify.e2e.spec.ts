import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { connect as connectHttp2 } from 'node:http2';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mtlsFastifyAdapter } from '../../lib/fastify/index.js';
import { AllowAnyPeer, AllowPeers, MtlsModule, mtlsHttpsOptions, Peer, type PeerIdentity } from '../../lib/index.js';
import { callAs, secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';
import { SERVER_CELLS } from '../support/cells.js';
import { canListenOnIpv6, withDualStackLocalhost } from '../support/dual-stack.js';
import { temporaryDir } from '../support/temporary-dirs.js';
import { startLifecycleApp, waitFor, type LifecycleApp } from '../lifecycle/lifecycle-support.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const FASTIFY_CELLS = SERVER_CELLS.filter((cell) => cell.adapter === 'fastify');

@Controller('stock')
class StockController {
  @Get()
  @AllowPeers(ORDERS)
  stock(@Peer() peer: PeerIdentity) {
    return { caller: peer.spiffeId };
  }

  @Get('any')
  @AllowAnyPeer()
  any() {
    return 'ok';
  }
}

/** Opens a TLS connection, sends one HTTP/1.1 request and resolves with the status line and the still-open socket. */
function http1Over(options: ConnectionOptions, path: string): Promise<{ status: number; socket: TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ ALPNProtocols: ['http/1.1'], ...options }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    });
    let data = '';
    const onData = (chunk: Buffer) => {
      data += chunk.toString();
      const end = data.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(data);
      if (end >= 0 && length !== null && data.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve({ status: Number(data.split(' ')[1]), socket });
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed after ${JSON.stringify(data.slice(0, 80))}`)));
  });
}

describe('Fastify startup', () => {
  let pki: TestPki;
  let credentials: Awaited<ReturnType<TestPki['credentials']>>['credentials'];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    credentials = (await pki.credentials(SERVER)).credentials;
  });

  it('refuses a FastifyAdapter given httpsOptions through NestFactory.create (ignored there: nestjs/nest#2150)', async () => {
    @Module({ imports: [MtlsModule.forRoot({ credentials })], controllers: [StockController] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, new FastifyAdapter(), { httpsOptions: mtlsHttpsOptions(), logger: false });
    try {
      await expect(app.init()).rejects.toMatchObject({
        code: 'ERR_MTLS_NOT_HTTPS',
        message: expect.stringMatching(
          /TLS goes into the adapter[\s\S]*NestFactory\.create\(AppModule, mtlsFastifyAdapter\(\)\)/,
        ),
      });
    } finally {
      await app.close().catch(() => undefined);
    }
  });

  it.each(['https', 'serverFactory'])('mtlsFastifyAdapter refuses "%s", which it sets itself', (name) => {
    expect(() => mtlsFastifyAdapter({ [name]: {} } as never)).toThrow(
      new TypeError(`mtlsFastifyAdapter: "${name}" is set by the adapter; pass credentials to MtlsModule instead`),
    );
    expect(() => mtlsFastifyAdapter({ http2: 'yes' } as never)).toThrow(/"http2" must be a boolean/);
  });
});

describe.each(FASTIFY_CELLS)('Fastify inject() ($name)', (cell) => {
  let app: NestFastifyApplication;

  beforeAll(async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const { credentials } = await pki.credentials(SERVER);
    @Module({ imports: [MtlsModule.forRoot({ credentials, peers: { orders: ORDERS } })], controllers: [StockController] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(mtlsFastifyAdapter({ http2: cell.http2 }), { logger: false });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
  });

  it.each(['/stock', '/stock/any'])('denies %s: an injected request has no TLS connection', async (url) => {
    const response = await app.inject({ method: 'GET', url, headers: { 'x-forwarded-client-cert': `URI=${ORDERS}` } });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
  });
});

describe('Fastify over HTTP/2', () => {
  let pki: TestPki;
  let orders: TestPeer;
  let app: Awaited<ReturnType<typeof startMtlsApp>>;
  let port: number;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    orders = await pki.peer(ORDERS);
    const { credentials } = await pki.credentials(SERVER);
    app = await startMtlsApp({ credentials, peers: { orders: ORDERS } }, [StockController], {
      cell: FASTIFY_CELLS.find((c) => c.http2)!,
    });
    port = (app.getHttpServer().address() as { port: number }).port;
  });

  afterAll(async () => {
    await app?.close();
  });

  it('serves HTTP/2 and HTTP/1.1 on the same port, ALPN choosing per connection', async () => {
    const h2 = await callAs(app, orders, { http2: true }).get('/stock');
    const h1 = await callAs(app, orders).get('/stock');
    expect([h2.status, h2.json()]).toEqual([200, { caller: ORDERS }]);
    expect([h1.status, h1.json()]).toEqual([200, { caller: ORDERS }]);
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: pki.bundlePem,
      cert: orders.chainPem,
      key: orders.keyPem,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.alpnProtocol).toBe('h2');
    socket.destroy();
  });

  it('admits many streams of one session as the peer of its TLS connection', async () => {
    const session = connectHttp2(`https://127.0.0.1:${port}`, { ca: pki.bundlePem, cert: orders.chainPem, key: orders.keyPem });
    try {
      const one = (): Promise<unknown> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': '/stock' });
          let body = '';
          stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          stream.on('end', () => resolve(JSON.parse(body))).on('error', reject);
        });
      expect(await Promise.all(Array.from({ length: 20 }, one))).toEqual(Array.from({ length: 20 }, () => ({ caller: ORDERS })));
    } finally {
      session.close();
    }
  });
});

describe.each(SERVER_CELLS.filter((cell) => !cell.http2))('TLS 1.2 renegotiation ($name)', (cell) => {
  it('is refused: the identity of an HTTP/1.1 connection cannot change after the handshake', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const orders = await pki.peer(ORDERS);
    const app = await startMtlsApp(
      { credentials: (await pki.credentials(SERVER)).credentials, peers: { orders: ORDERS } },
      [StockController],
      { cell },
    );
    try {
      const port = (app.getHttpServer().address() as { port: number }).port;
      const { status, socket } = await http1Over(
        { host: '127.0.0.1', port, ca: pki.bundlePem, cert: orders.chainPem, key: orders.keyPem, maxVersion: 'TLSv1.2' },
        '/stock',
      );
      expect(status).toBe(200);
      const outcome = await new Promise<string>((resolve) => {
        socket.on('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
        socket.on('close', () => resolve('closed'));
        socket.renegotiate({ rejectUnauthorized: true }, (error) => {
          resolve(error ? ((error as Error & { code?: string }).code ?? error.message) : 'renegotiated');
        });
      });
      expect(outcome).not.toBe('renegotiated');
      socket.destroy();
    } finally {
      await app.close();
    }
  });
});

/**
 * `localhost` that resolves to 127.0.0.1 and ::1 makes Fastify listen on both, the second through a server of its
 * own. Where the host's resolver gives `localhost` a single address (this machine's /etc/hosts maps it to 127.0.0.1
 * only), the answer for `localhost` alone is made dual-stack in this process: servers, sockets and TLS stay real.
 */
describe.skipIf(!canListenOnIpv6).each(FASTIFY_CELLS)('a Fastify app listening on dual-stack localhost ($name)', (cell) => {
  let pki: TestPki;
  let dir: string;
  let serverPeer: TestPeer;
  let orders: TestPeer;
  let server: LifecycleApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    serverPeer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1', '::1'], dnsNames: ['localhost'] });
    orders = await pki.peer(ORDERS);
    dir = await temporaryDir('nestjs-mtls-dual-stack-');
    await writeKubernetesSecret(dir, { ...secretFiles(serverPeer), 'ca.crl': await pki.ca.createCrl([]) });
    server = await withDualStackLocalhost(() =>
      startLifecycleApp({ credentials: { dir, crlFiles: ['ca.crl'] }, reload: { debounceMs: 50 } }, undefined, {
        cell,
        host: 'localhost',
      }),
    );
  });

  afterAll(async () => {
    await server?.close();
  });

  const tlsTo = (host: string, peer: TestPeer | undefined): ConnectionOptions => ({
    host,
    port: server.port,
    ca: pki.bundlePem,
    ...(peer ? { cert: peer.chainPem, key: peer.keyPem } : {}),
  });

  it('binds every server Fastify listens on: credentials, client-certificate policy, the guard', async () => {
    expect(server.binding.servers).toHaveLength(2);
    const addresses = server.binding.servers.map((s) => (s.address() as { address: string }).address).sort();
    expect(addresses).toEqual(['127.0.0.1', '::1']);
    for (const host of ['127.0.0.1', '::1']) {
      const base = `https://${host === '::1' ? '[::1]' : host}:${server.port}`;
      const res = await callAs(base, orders, { http2: cell.http2 }).get('/whoami');
      expect([host, res.status, res.json<{ spiffeId: string }>().spiffeId]).toEqual([host, 200, ORDERS]);
      await expect(callAs(base, undefined, { ca: pki.bundlePem, http2: cell.http2 }).get('/whoami')).rejects.toThrow();
    }
    await waitFor('the rejected handshake from ::1', () =>
      server.events.some((event) => event.type === 'handshake.rejected' && event.remoteAddress === '::1') ? true : undefined,
    );
  });

  it('reloads the secondary server and closes its revoked connections', async () => {
    const { status, socket } = await http1Over(tlsTo('::1', orders), '/ping');
    expect(status).toBe(200);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const rotated = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1', '::1'] });
    const version = server.store.version;
    await writeKubernetesSecret(dir, { ...secretFiles(rotated), 'ca.crl': await pki.ca.createCrl([orders.serialNumber]) });
    await waitFor('the reload', () => (server.store.version > version ? true : undefined), 5_000);
    await closed;
    expect(server.events.filter((event) => event.type === 'connection.revoked')).toEqual([
      { type: 'connection.revoked', reason: 'revoked', peer: ORDERS },
    ]);
    const payments = await pki.peer('spiffe://shop.test/ns/shop/sa/payments');
    const fingerprint = await new Promise<string>((resolve, reject) => {
      const probe = connect(tlsTo('::1', payments), () => {
        resolve(probe.getPeerCertificate().fingerprint256);
        probe.destroy();
      }).on('error', reject);
    });
    expect(fingerprint).toBe(rotated.fingerprint256);
  });

  it('stops listening on every address when the app closes', async () => {
    const [primary, secondary] = server.binding.servers;
    await server.close();
    expect([primary!.listening, secondary!.listening]).toEqual([false, false]);
    server = undefined as never;
  });
});
