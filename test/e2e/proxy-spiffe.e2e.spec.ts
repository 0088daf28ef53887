import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Logger, Module } from '@nestjs/common';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MtlsModule, mtlsHttpsOptions } from '../../lib/index.js';
import { loopbackListenProblem } from '../../lib/proxy/loopback-listener.js';
import { ProxyIdentitySource } from '../../lib/proxy/proxy-identity.source.js';
import { TestPki, xfccElement, type TestPeer } from '../../lib/testing/index.js';
import { rawRequest } from '../support/raw-http.js';
import { ADAPTERS, ADMIN, ORDERS, PROXY, startProxyApp } from '../support/proxy-app.js';

const XFCC = 'x-forwarded-client-cert';

describe.each(ADAPTERS)("proxy mode, trusted by the proxy's SPIFFE ID over mTLS (%s)", (adapter) => {
  let pki: TestPki;
  let app: INestApplication;
  let proxy: TestPeer;
  let orders: TestPeer;
  let admin: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    [proxy, orders, admin] = await Promise.all([pki.peer(PROXY), pki.peer(ORDERS), pki.peer(ADMIN)]);
    app = await startProxyApp(adapter, {
      credentials: server.credentials,
      proxy: { header: 'xfcc', trust: { spiffeIds: [PROXY] } },
    });
  });

  afterAll(async () => {
    await app?.close();
  });

  it("the proxy's connection and header name the caller (SANITIZE_SET: one element)", async () => {
    const res = await rawRequest(app, '/orders-only', [[XFCC, xfccElement(orders, { by: PROXY, cert: true })]], proxy);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'xfcc' });
  });

  it("a header from any other TLS peer is ignored: the request has no identity (401), not the peer's own", async () => {
    const forged = await rawRequest(app, '/admin-only', [[XFCC, xfccElement(admin)]], orders);
    expect(forged.status).toBe(401);
    expect(forged.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
    const direct = await rawRequest(app, '/orders-only', [], orders);
    expect(direct.status).toBe(401);
  });

  it('the proxy without a header is nobody', async () => {
    const res = await rawRequest(app, '/orders-only', [], proxy);
    expect(res.status).toBe(401);
  });

  it('two header lines from the proxy: 400', async () => {
    const res = await rawRequest(
      app,
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

  it('app.listen on a non-loopback address fails with ERR_MTLS_CONFIG_INVALID and the server is closed', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    @Module({ imports: [MtlsModule.forRoot({ credentials: server.credentials, proxy: { header: 'xfcc', trust: 'loopback' } })] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    // A Unix socket: not loopback, and nothing on the network is exposed while the test runs.
    const path = join(await mkdtemp(join(tmpdir(), 'nestjs-mtls-proxy-')), 'app.sock');
    await expect(app.listen(path)).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: expect.stringMatching(
        /listens on the pipe .* but MtlsModule option proxy.trust is 'loopback'.*app.listen\(port, '127.0.0.1'\)/,
      ),
    });
    expect(app.getHttpServer().listening).toBe(false);
    await app.close();
  });

  it('refuses an HTTPS server in loopback mode at startup', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    @Module({ imports: [MtlsModule.forRoot({ credentials: server.credentials, proxy: { header: 'xfcc', trust: 'loopback' } })] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger: false });
    await expect(app.init()).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: expect.stringMatching(/Create the app without httpsOptions/),
    });
    await app.close();
  });
});
