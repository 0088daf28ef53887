import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  connect as connectHttp2,
  type ClientHttp2Session,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsModule, mtlsHttpsOptions } from '../../lib/index.js';
import { TestPki, type TestPeer } from '../../lib/testing/index.js';
import { createCellApp, SERVER_CELLS } from '../support/cells.js';
import { rawRequest } from '../support/raw-tls.js';

/*
 * Permissive mode over a real HTTP/2 session without a client certificate: listeners the application adds on the
 * Http2Session itself (through the server's 'session' event), the server's 'connect' listener for CONNECT streams and
 * its 'checkContinue' listener see nothing of the anonymous session; each of its streams is answered 401 and the session
 * stays usable. A client with a certificate reaches every one of them (the control).
 */

@Controller('guarded')
@AllowAnyPeer()
class GuardedController {
  @Get()
  get(): string {
    return 'guarded';
  }
}

const H2 = SERVER_CELLS.find((cell) => cell.http2)!;

interface Answer {
  status: number;
  body: string;
}

function open(port: number, ca: string, peer?: TestPeer): ClientHttp2Session {
  return connectHttp2(`https://127.0.0.1:${port}`, {
    ca,
    servername: 'localhost',
    ALPNProtocols: ['h2'],
    ...(peer === undefined ? {} : { cert: peer.chainPem, key: peer.keyPem }),
  });
}

function send(session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
    let status = 0;
    let body = '';
    stream.on('response', (response) => {
      status = Number(response[':status']);
      // A CONNECT tunnel that was accepted stays open until one side ends it.
      if (headers[':method'] === 'CONNECT') stream.end();
    });
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

describe('permissive mode, Fastify h2: the anonymous session reaches no application listener', () => {
  let app: INestApplication;
  let pki: TestPki;
  let port: number;
  let client: TestPeer;
  const reached: string[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    client = await pki.peer('spiffe://shop.test/ns/shop/sa/orders');
    @Module({
      imports: [MtlsModule.forRoot({ credentials: server.credentials, mode: 'permissive', reload: { enabled: false } })],
      controllers: [GuardedController],
    })
    class M {}
    const moduleRef = await Test.createTestingModule({ imports: [M] }).compile();
    app = createCellApp(moduleRef, H2);
    const httpServer = app.getHttpServer();
    // What a gRPC-style handler would do: listen on the session, not on the server.
    httpServer.on('session', (session: ServerHttp2Session) => {
      // Whether or not someone answered first, this is where such a handler acts (a call, a side effect).
      session.on('stream', (_stream: ServerHttp2Stream, headers: Record<string, string>) => {
        reached.push(`session stream ${headers[':path'] ?? headers[':method']}`);
      });
    });
    // A forward proxy sharing the port.
    httpServer.on('connect', (request: Http2ServerRequest, response: Http2ServerResponse) => {
      reached.push(`connect ${request.headers[':authority']}`);
      response.writeHead(200);
      response.end();
    });
    httpServer.on('checkContinue', (request: Http2ServerRequest, response: Http2ServerResponse) => {
      reached.push(`checkContinue ${request.url}`);
      response.writeHead(200);
      response.end('continue-listener-reached');
    });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
  });

  beforeEach(() => {
    reached.length = 0;
  });

  it('a stream listener on the Http2Session is not reached; the stream is answered 401', async () => {
    const session = open(port, pki.bundlePem);
    try {
      const answer = await send(session, { ':method': 'GET', ':path': '/guarded' });
      expect(answer.status).toBe(401);
      expect(answer.body).toContain('ERR_MTLS_PEER_UNAUTHENTICATED');
      expect(reached).toEqual([]);
    } finally {
      session.close();
    }
  });

  it('a CONNECT stream gets an HTTP/2 401, never the connect listener, and the session stays usable', async () => {
    const session = open(port, pki.bundlePem);
    try {
      const answer = await send(session, { ':method': 'CONNECT', ':authority': 'internal.example:443' });
      expect(answer.status).toBe(401);
      expect(answer.body).toContain('ERR_MTLS_PEER_UNAUTHENTICATED');
      expect(reached).toEqual([]);
      const next = await send(session, { ':method': 'GET', ':path': '/guarded' });
      expect(next.status).toBe(401);
      expect(session.destroyed).toBe(false);
    } finally {
      session.close();
    }
  });

  it('an expect: 100-continue stream never reaches the checkContinue listener', async () => {
    const session = open(port, pki.bundlePem);
    try {
      const answer = await send(session, { ':method': 'POST', ':path': '/guarded', expect: '100-continue' });
      expect(answer.status).toBe(401);
      expect(reached).toEqual([]);
    } finally {
      session.close();
    }
  });

  it('a client with a certificate reaches the session listener, the connect listener and checkContinue', async () => {
    const session = open(port, pki.bundlePem, client);
    try {
      expect(await send(session, { ':method': 'GET', ':path': '/guarded' })).toEqual({ status: 200, body: 'guarded' });
      expect((await send(session, { ':method': 'CONNECT', ':authority': 'internal.example:443' })).status).toBe(200);
      expect(await send(session, { ':method': 'POST', ':path': '/guarded', expect: '100-continue' })).toEqual({
        status: 200,
        body: 'continue-listener-reached',
      });
      expect(reached).toEqual([
        // Node's own session listener (which hands the stream to the server) runs before the application's.
        'session stream /guarded',
        'connect internal.example:443',
        'session stream CONNECT',
        'checkContinue /guarded',
        'session stream /guarded',
      ]);
    } finally {
      session.close();
    }
  });
});

describe('permissive mode, an h2-only server (no allowHTTP1): unknownProtocol', () => {
  let app: INestApplication;
  let pki: TestPki;
  let port: number;
  let client: TestPeer;
  const reached: string[] = [];
  const REQUEST = 'GET /guarded HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n';

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    client = await pki.peer('spiffe://shop.test/ns/shop/sa/orders');
    @Module({
      imports: [MtlsModule.forRoot({ credentials: server.credentials, mode: 'permissive', reload: { enabled: false } })],
      controllers: [GuardedController],
    })
    class M {}
    const moduleRef = await Test.createTestingModule({ imports: [M] }).compile();
    // What a user can build by hand: HTTP/2 only, so a client without ALPN h2 goes to 'unknownProtocol'.
    app = moduleRef.createNestApplication(new FastifyAdapter({ http2: true, https: mtlsHttpsOptions() } as never), {
      logger: false,
    });
    // A listener that serves such clients itself, with the bare TLS socket.
    app.getHttpServer().on('unknownProtocol', (socket: TLSSocket) => {
      reached.push('unknownProtocol');
      socket.resume();
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 16\r\nconnection: close\r\n\r\nunknown-reached\n');
    });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
  });

  beforeEach(() => {
    reached.length = 0;
  });

  it('an anonymous connection without h2 is answered 401, never reaching the unknownProtocol listener', async () => {
    const answer = await rawRequest(port, REQUEST, { ca: pki.bundlePem });
    expect(answer.status).toBe(401);
    expect(answer.text).toContain('ERR_MTLS_PEER_UNAUTHENTICATED');
    expect(reached).toEqual([]);
  });

  it('a connection with a certificate does (the control)', async () => {
    const answer = await rawRequest(port, REQUEST, { ca: pki.bundlePem, cert: client.chainPem, key: client.keyPem });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('unknown-reached');
    expect(reached).toEqual(['unknownProtocol']);
  });
});
