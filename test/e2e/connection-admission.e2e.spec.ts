import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsEvents, MtlsModule, type MtlsEvent, type MtlsModuleOptions } from '../../lib/index.js';
import { authorizeMemberOf } from 'nestjs-mtls/spiffe';
import { TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { createCellApp, SERVER_CELLS, type ServerCell } from '../support/cells.js';
import { rawRequest } from '../support/raw-tls.js';

/*
 * Findings 4 and 5 (issue 8): trust is decided on the connection, right after the handshake, so that routes outside
 * the controllers (app.use, the adapter's own routes, static files) and other HTTP events (upgrade, CONNECT) never
 * see a peer the package would refuse.
 */

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

@Controller('guarded')
@AllowAnyPeer()
class GuardedController {
  @Get()
  get(): string {
    return 'guarded';
  }
}

interface RunningApp {
  readonly app: INestApplication;
  readonly port: number;
  readonly events: MtlsEvent[];
  /** Upgrade and CONNECT requests that reached the application's listeners. */
  readonly reached: string[];
}

/**
 * Static files need @fastify/static on Fastify, which the package does not depend on: the Fastify cells serve
 * middleware and adapter routes outside the controllers, Express also static files.
 */
const pathsOf = (cell: ServerCell) => PATHS.filter((path) => cell.adapter === 'express' || path !== '/static/file.txt');

async function startApp(options: MtlsModuleOptions, staticDir: string, cell: ServerCell): Promise<RunningApp> {
  @Module({ imports: [MtlsModule.forRoot(options)], controllers: [GuardedController] })
  class AdmissionTestModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AdmissionTestModule] }).compile();
  const app = createCellApp(moduleRef, cell);
  const events: MtlsEvent[] = [];
  app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  // Three ways to serve outside the controllers, none of which runs a guard.
  app.use('/raw', (_request: IncomingMessage, response: { end(body: string): void }) => response.end('raw'));
  if (cell.adapter === 'express') (app as NestExpressApplication).useStaticAssets(staticDir, { prefix: '/static' });
  // Express's response and Fastify's reply both have send().
  app.getHttpAdapter().get('/adapter', (_request: unknown, response: { send(body: string): void }) => response.send('adapter'));
  const reached: string[] = [];
  const server = app.getHttpServer();
  // What a WebSocket library and a forward proxy would do.
  server.on('upgrade', (request: IncomingMessage, socket: Socket) => {
    reached.push(`upgrade ${request.url}`);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
  });
  server.on('connect', (request: IncomingMessage, socket: Socket) => {
    reached.push(`connect ${request.url}`);
    socket.end('HTTP/1.1 200 Connection Established\r\n\r\n');
  });
  await app.listen(0, '127.0.0.1');
  return { app, port: (server.address() as AddressInfo).port, events, reached };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nhost: inventory\r\nconnection: close\r\n\r\n`;
const UPGRADE =
  'GET /socket HTTP/1.1\r\nhost: inventory\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
const CONNECT = 'CONNECT internal.example:443 HTTP/1.1\r\nhost: internal.example:443\r\n\r\n';
const PATHS = ['/raw', '/adapter', '/static/file.txt', '/guarded'] as const;

describe.each(SERVER_CELLS)('routes outside the controllers, against hostile certificates ($name)', (cell) => {
  let shop: TestPki;
  let elsewhere: TestPki;
  let dir: string;
  let staticDir: string;
  let strict: RunningApp;
  let gated: RunningApp;
  const peers: Record<string, TestPeer> = {};

  beforeAll(async () => {
    shop = await TestPki.create({ trustDomain: 'shop.test' });
    elsewhere = await TestPki.create({ trustDomain: 'elsewhere.test' });
    const server = await shop.peer({ spiffeId: 'spiffe://shop.test/ns/shop/sa/inventory', ipAddresses: ['127.0.0.1'] });
    dir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-admission-'));
    staticDir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-static-'));
    await writeFile(join(staticDir, 'file.txt'), 'static');
    // Both roots trusted: each hostile certificate below passes OpenSSL; only the package's own checks stop it.
    await writeKubernetesSecret(dir, {
      'tls.crt': server.chainPem,
      'tls.key': server.keyPem,
      'ca.crt': shop.bundlePem + elsewhere.bundlePem,
    });
    const options: MtlsModuleOptions = { credentials: { dir }, reload: { enabled: false } };
    strict = await startApp(options, staticDir, cell);
    gated = await startApp({ ...options, connectionAuthorizer: authorizeMemberOf('shop.test') }, staticDir, cell);
    peers['two URI SANs'] = await shop.peer({ spiffeId: ORDERS, uris: ['spiffe://shop.test/ns/shop/sa/attacker'] });
    peers['a CA:TRUE leaf'] = await shop.peer({ spiffeId: ORDERS, isCa: true });
    peers['a shop.test ID from the elsewhere.test root'] = await elsewhere.peer({ spiffeId: ORDERS });
    peers['orders'] = await shop.peer(ORDERS);
    peers['a workload of elsewhere.test'] = await elsewhere.peer('spiffe://elsewhere.test/ns/billing/sa/api');
  });

  afterAll(async () => {
    await strict?.app.close();
    await gated?.app.close();
    await rm(dir, { recursive: true, force: true });
    await rm(staticDir, { recursive: true, force: true });
  });

  const as = (peer: TestPeer) => ({ ca: shop.bundlePem, cert: peer.chainPem, key: peer.keyPem });

  describe.each(['two URI SANs', 'a CA:TRUE leaf', 'a shop.test ID from the elsewhere.test root'])('%s', (name) => {
    it.each(pathsOf(cell))('gets no answer on %s: the connection is closed before HTTP', async (path) => {
      strict.events.length = 0;
      const answer = await rawRequest(strict.port, get(path), as(peers[name]!));
      expect(answer.status).toBeUndefined();
      expect(answer.text).toBe('');
      expect(strict.events).toContainEqual({
        type: 'handshake.rejected',
        reason: 'ERR_MTLS_PEER_INVALID',
        remoteAddress: '127.0.0.1',
      });
    });

    it('never reaches an upgrade or CONNECT listener', async () => {
      strict.reached.length = 0;
      expect((await rawRequest(strict.port, UPGRADE, as(peers[name]!))).status).toBeUndefined();
      expect((await rawRequest(strict.port, CONNECT, as(peers[name]!))).status).toBeUndefined();
      expect(strict.reached).toEqual([]);
    });
  });

  it.each(pathsOf(cell))('control: a valid peer is served on %s', async (path) => {
    const answer = await rawRequest(strict.port, get(path), as(peers['orders']!));
    expect(answer.status).toBe(200);
  });

  describe('with connectionAuthorizer: authorizeMemberOf("shop.test")', () => {
    it.each(pathsOf(cell))('refuses a valid workload of another trust domain on %s', async (path) => {
      gated.events.length = 0;
      const answer = await rawRequest(gated.port, get(path), as(peers['a workload of elsewhere.test']!));
      expect(answer.status).toBeUndefined();
      expect(gated.events).toContainEqual({
        type: 'handshake.rejected',
        reason: 'ERR_MTLS_PEER_DENIED',
        remoteAddress: '127.0.0.1',
      });
    });

    it('admits shop.test', async () => {
      expect((await rawRequest(gated.port, get('/raw'), as(peers['orders']!))).status).toBe(200);
    });
  });
});

describe.each(SERVER_CELLS)('permissive mode without a client certificate ($name)', (cell) => {
  let pki: TestPki;
  let dir: string;
  let staticDir: string;
  let permissive: RunningApp;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    dir = server.dir;
    staticDir = await mkdtemp(join(tmpdir(), 'nestjs-mtls-static-'));
    await writeFile(join(staticDir, 'file.txt'), 'static');
    permissive = await startApp(
      { credentials: server.credentials, mode: 'permissive', reload: { enabled: false } },
      staticDir,
      cell,
    );
  });

  afterAll(async () => {
    await permissive?.app.close();
    await rm(dir, { recursive: true, force: true });
    await rm(staticDir, { recursive: true, force: true });
  });

  const anonymous = () => ({ ca: pki.bundlePem });

  it.each(pathsOf(cell))('answers 401 on %s', async (path) => {
    const answer = await rawRequest(permissive.port, get(path), anonymous());
    expect(answer.status).toBe(401);
    expect(answer.text).toContain('"code":"ERR_MTLS_PEER_UNAUTHENTICATED"');
  });

  it('answers 401 to an upgrade and closes, without reaching the upgrade listener', async () => {
    permissive.reached.length = 0;
    const answer = await rawRequest(permissive.port, UPGRADE, anonymous());
    expect(answer.status).toBe(401);
    expect(permissive.reached).toEqual([]);
  });

  it('answers 401 to CONNECT and closes, without reaching the connect listener', async () => {
    permissive.reached.length = 0;
    const answer = await rawRequest(permissive.port, CONNECT, anonymous());
    expect(answer.status).toBe(401);
    expect(permissive.reached).toEqual([]);
  });

  it('control: a peer with a certificate reaches the upgrade listener', async () => {
    permissive.reached.length = 0;
    const peer = await pki.peer(ORDERS);
    const answer = await rawRequest(permissive.port, UPGRADE, { ca: pki.bundlePem, cert: peer.chainPem, key: peer.keyPem });
    expect(answer.status).toBe(101);
    expect(permissive.reached).toEqual(['upgrade /socket']);
  });
});
