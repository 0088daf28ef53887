import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Logger, Module } from '@nestjs/common';
import { join } from 'node:path';
import { connect as connectPipe, Socket, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MtlsModule } from '../../lib/index.js';
import { loopbackListenProblem, loopbackListenProblems } from '../../lib/proxy/loopback-listener.js';
import { ProxyIdentitySource } from '../../lib/proxy/proxy-identity.source.js';
import { rfc9440Fields, TestPki, xfccElement, type TestPeer } from '../../lib/testing/index.js';
import { createCellApp, SERVER_CELLS, type ServerCell } from '../support/cells.js';
import { rawRequest, rawRequestTo } from '../support/raw-http.js';
import { temporaryDir } from '../support/temporary-dirs.js';
import { canListenOnIpv6, withDualStackLocalhost } from '../support/dual-stack.js';
import { ADMIN, LOOPBACK_CELLS, ORDERS, PROXY, ProxyTestController, SPIFFE_CELLS, startProxyApp } from '../support/proxy-app.js';

const XFCC = 'x-forwarded-client-cert';

describe.each(SPIFFE_CELLS)("proxy mode, trusted by the proxy's SPIFFE ID over mTLS ($name)", (cell) => {
  let pki: TestPki;
  let app: INestApplication;
  let proxy: TestPeer;
  let orders: TestPeer;
  let admin: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    [proxy, orders, admin] = await Promise.all([pki.peer(PROXY), pki.peer(ORDERS), pki.peer(ADMIN)]);
    app = await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'xfcc', trust: { spiffeIds: [PROXY] } },
    });
  });

  afterAll(async () => {
    await app?.close();
  });

  // HTTP/2 on the HTTP/2 cell: header lines become header fields, a repeated name one field per value.
  const send = (path: string, headers: [string, string][], peer: TestPeer) => rawRequest(app, path, headers, peer, cell.http2);

  it("the proxy's connection and header name the caller (SANITIZE_SET: one element)", async () => {
    const res = await send('/orders-only', [[XFCC, xfccElement(orders, { by: PROXY, cert: true })]], proxy);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'xfcc' });
  });

  it("a header from any other TLS peer is ignored: the request has no identity (401), not the peer's own", async () => {
    const forged = await send('/admin-only', [[XFCC, xfccElement(admin)]], orders);
    expect(forged.status).toBe(401);
    expect(forged.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
    const direct = await send('/orders-only', [], orders);
    expect(direct.status).toBe(401);
  });

  it('the proxy without a header is nobody', async () => {
    const res = await send('/orders-only', [], proxy);
    expect(res.status).toBe(401);
  });

  it('two header lines from the proxy: 400', async () => {
    const res = await send(
      '/orders-only',
      [
        [XFCC, xfccElement(admin)],
        [XFCC, xfccElement(orders)],
      ],
      proxy,
    );
    expect(res.json()).toMatchObject({ statusCode: 400, code: 'ERR_MTLS_PROXY_HEADER_REPEATED' });
  });
});

describe.each(SPIFFE_CELLS)("proxy mode, RFC 9440 from the proxy's mTLS connection ($name)", (cell) => {
  let pki: TestPki;
  let app: INestApplication;
  let proxy: TestPeer;
  let orders: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    [proxy, orders] = await Promise.all([pki.peer(PROXY), pki.peer(ORDERS)]);
    app = await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'rfc9440', trust: { spiffeIds: [PROXY] } },
    });
  });

  afterAll(async () => {
    await app?.close();
  });

  const send = (headers: [string, string][]) => rawRequest(app, '/orders-only', headers, proxy, cell.http2);

  it('control: Client-Cert and Client-Cert-Chain once each → the caller', async () => {
    const { clientCert, clientCertChain } = rfc9440Fields(orders);
    const res = await send([
      ['Client-Cert', clientCert],
      ['Client-Cert-Chain', clientCertChain!],
    ]);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'rfc9440' });
  });

  it.each(['Client-Cert', 'Client-Cert-Chain'])('%s on two lines: 400 REPEATED, never joined into one list', async (name) => {
    const { clientCert, clientCertChain } = rfc9440Fields(orders);
    const fields: [string, string][] = [
      ['Client-Cert', clientCert],
      ['Client-Cert-Chain', clientCertChain!],
    ];
    // The same value twice: joined with ", " it would still be a valid-looking list.
    const res = await send([...fields, fields.find(([field]) => field === name)!]);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ statusCode: 400, code: 'ERR_MTLS_PROXY_HEADER_REPEATED' });
  });
});

/** A TCP socket as a peer at `address` would have (loopback trust asks for a real `net.Socket`, never a look-alike). */
function remotePeer(address: string): Socket {
  return Object.defineProperty(new Socket(), 'remoteAddress', { value: address });
}

describe('proxy mode, loopback trust: where the header may come from', () => {
  it('ignores a header from a non-loopback peer without reading it, logs it rate-limited, and gives no identity', () => {
    const source = new ProxyIdentitySource(
      {
        header: 'xfcc',
        trust: { kind: 'loopback' },
        element: 'last',
        verifyChain: false,
        requireCertificate: false,
        maxHeaderBytes: 65_536,
      },
      {
        identify: () => {
          throw new Error('not used in loopback mode');
        },
      },
      {
        get current(): never {
          throw new Error('a header from a non-proxy peer must not be read');
        },
      },
      1,
    );
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      for (let i = 0; i < 3; i++) {
        const verdict = source.identify({
          socket: remotePeer('10.1.2.3'),
          rawHeaders: ['X-Forwarded-Client-Cert', `URI=${ADMIN}`],
        });
        expect(verdict).toMatchObject({
          code: 'ERR_MTLS_PEER_UNAUTHENTICATED',
          message: 'not the trusted proxy (peer 10.1.2.3 is not on the loopback interface): no identity',
        });
      }
      // Rate-limited: one line per minute at logRateLimitPerMinute 1, the rest counted.
      expect(warn.mock.calls.map(([line]) => line)).toEqual([
        'x-forwarded-client-cert header ignored: peer 10.1.2.3 is not on the loopback interface; the request has no identity',
      ]);
      // No header at all: nothing to report.
      source.identify({ socket: remotePeer('10.1.2.3'), rawHeaders: [] });
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it.each([
    [
      { address: '0.0.0.0', family: 'IPv4', port: 80 },
      'the application listens on 0.0.0.0:80 (every interface: no host given to listen?)',
    ],
    [{ address: '::', family: 'IPv6', port: 80 }, 'the application listens on :::80 (every interface: no host given to listen?)'],
    [{ address: '10.0.0.5', family: 'IPv4', port: 80 }, 'the application listens on 10.0.0.5:80'],
    ['/tmp/app.sock', 'the application listens on the pipe "/tmp/app.sock"'],
    [{ address: '127.0.0.1', family: 'IPv4', port: 80 }, undefined],
    [{ address: '::1', family: 'IPv6', port: 80 }, undefined],
  ])('listening on %j: %s', (address, problem) => {
    expect(loopbackListenProblem(address)).toBe(problem);
  });

  it('an application listening on several addresses (Fastify on `localhost`): the first that is not loopback', () => {
    const v4 = { address: '127.0.0.1', family: 'IPv4', port: 80 };
    const v6 = { address: '::1', family: 'IPv6', port: 80 };
    expect(loopbackListenProblems([v4, v6])).toBeUndefined();
    expect(loopbackListenProblems([v4, { address: '192.0.2.7', family: 'IPv4', port: 80 }, v6])).toBe(
      'the application listens on 192.0.2.7:80',
    );
    expect(loopbackListenProblems([v6, { address: '::', family: 'IPv6', port: 80 }])).toMatch(/every interface/);
  });
});

/** A loopback-mode app on `cell`, created but not listening; `https` gives the mTLS server a user might keep by mistake. */
async function createLoopbackApp(cell: ServerCell, { https = false }: { https?: boolean } = {}): Promise<INestApplication> {
  const pki = await TestPki.create({ trustDomain: 'shop.test' });
  const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
  @Module({
    imports: [
      MtlsModule.forRoot({
        peers: { orders: ORDERS },
        credentials: server.credentials,
        proxy: { header: 'xfcc', trust: 'loopback' },
      }),
    ],
    controllers: [ProxyTestController],
  })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  return createCellApp(moduleRef, cell, { https });
}

/** Every address the application listens on: Fastify adds a server per further address of a name like `localhost`. */
function listeningAddresses(app: INestApplication): unknown[] {
  const instance = app.getHttpAdapter().getInstance() as { addresses?(): unknown[] };
  return typeof instance.addresses === 'function' ? instance.addresses() : [app.getHttpServer().address()];
}

describe.each(LOOPBACK_CELLS)('proxy mode, loopback trust: where the application may listen ($name)', (cell) => {
  it('app.listen on a Unix socket fails with ERR_MTLS_CONFIG_INVALID and the server is closed', async () => {
    const app = await createLoopbackApp(cell);
    // Not loopback, and nothing on the network is exposed while the test runs.
    const path = join(await temporaryDir('nestjs-mtls-proxy-'), 'app.sock');
    await expect(app.listen(path)).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: expect.stringMatching(
        /listens on the pipe .* but MtlsModule option proxy.trust is 'loopback'.*app.listen\(port, '127.0.0.1'\)/,
      ),
    });
    expect(app.getHttpServer().listening).toBe(false);
    await app.close();
  });

  it("app.listen(0, 'localhost') is accepted: every address the name resolves to is loopback, and each serves", async () => {
    const app = await createLoopbackApp(cell);
    await app.listen(0, 'localhost');
    try {
      const addresses = listeningAddresses(app) as AddressInfo[];
      expect(addresses.length).toBeGreaterThan(0);
      for (const address of addresses) {
        expect(loopbackListenProblem(address)).toBeUndefined();
        const res = await rawRequestTo(address, '/orders-only', [[XFCC, `URI=${ORDERS}`]], undefined, cell.http2);
        expect(res.status).toBe(200);
      }
    } finally {
      await app.close();
    }
  });
});

describe.skipIf(!canListenOnIpv6).each(LOOPBACK_CELLS.filter((cell) => cell.adapter === 'fastify'))(
  'proxy mode, loopback trust, Fastify on dual-stack localhost ($name)',
  (cell) => {
    it('listens with a second server on ::1, accepted as loopback, that serves the header the same way', async () => {
      const app = await createLoopbackApp(cell);
      await withDualStackLocalhost(() => app.listen(0, 'localhost'));
      try {
        const addresses = listeningAddresses(app) as AddressInfo[];
        expect(addresses.map((address) => address.address).sort()).toEqual(['127.0.0.1', '::1']);
        for (const address of addresses) {
          const res = await rawRequestTo(address, '/orders-only', [[XFCC, `URI=${ORDERS}`]], undefined, cell.http2);
          expect([address.address, res.status]).toEqual([address.address, 200]);
        }
      } finally {
        await app.close();
      }
    });
  },
);

/** What a client gets on a Unix socket: everything the server wrote before the connection closed. */
function answerOnPipe(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectPipe(path, () => socket.write('GET /orders-only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    // A connection destroyed at once may reset, or fail the write: either way, no answer.
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' || error.code === 'EPIPE' ? undefined : reject(error),
    );
    socket.on('close', () => resolve(text));
  });
}

describe.each(LOOPBACK_CELLS.filter((cell) => cell.adapter === 'fastify'))(
  'proxy mode, loopback trust, listening through the Fastify instance rather than app.listen ($name)',
  (cell) => {
    it('a non-loopback address: the server answers nothing (each connection is destroyed) and the log says why', async () => {
      const app = await createLoopbackApp(cell);
      await app.init();
      const error = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      const path = join(await temporaryDir('nestjs-mtls-proxy-'), 'app.sock');
      try {
        // Fastify's own listen(): no app.listen() to fail, so the server must refuse to serve.
        await (app.getHttpAdapter().getInstance() as { listen(options: { path: string }): Promise<string> }).listen({ path });
        expect(await answerOnPipe(path)).toBe('');
        expect(error.mock.calls.map(([line]) => line)).toContainEqual(
          expect.stringMatching(/listens on the pipe .* but MtlsModule option proxy.trust is 'loopback'/),
        );
      } finally {
        error.mockRestore();
        await app.close();
      }
    });
  },
);

describe.each(SERVER_CELLS)('proxy mode, loopback trust, the mTLS server kept by mistake ($name)', (cell) => {
  it('is refused at startup', async () => {
    const app = await createLoopbackApp(cell, { https: true });
    await expect(app.init()).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: expect.stringMatching(
        cell.adapter === 'express' ? /Create the app without httpsOptions/ : /new FastifyAdapter\(\)/,
      ),
    });
    await app.close();
  });
});
