import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { connect as connectHttp2, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsModule } from '../../lib/index.js';
import { TestPki } from '../../lib/testing/index.js';
import { createCellApp, SERVER_CELLS } from '../support/cells.js';

/* Permissive mode over a real HTTP/2 session without a client certificate: no listener, core `stream` ones included, sees the anonymous stream. */

@Controller('guarded')
@AllowAnyPeer()
class GuardedController {
  @Get()
  get(): string {
    return 'guarded';
  }
}

const H2 = SERVER_CELLS.find((cell) => cell.http2)!;

function h2get(port: number, ca: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(`https://127.0.0.1:${port}`, { ca, servername: 'localhost', ALPNProtocols: ['h2'] });
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ':path': path });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    stream.on('error', reject);
    stream.end();
  });
}

describe('permissive mode, Fastify h2, no client certificate', () => {
  let app: INestApplication;
  let pki: TestPki;
  let port: number;
  const streamsReached: string[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    @Module({
      imports: [MtlsModule.forRoot({ credentials: server.credentials, mode: 'permissive', reload: { enabled: false } })],
      controllers: [GuardedController],
    })
    class M {}
    const moduleRef = await Test.createTestingModule({ imports: [M] }).compile();
    app = createCellApp(moduleRef, H2);
    app.use('/raw', (_request: IncomingMessage, response: { end(body: string): void }) => response.end('raw'));
    app.getHttpAdapter().get('/adapter', (_request: unknown, reply: { send(body: string): void }) => reply.send('adapter'));
    // What a gRPC-style handler sharing the port would do: the core HTTP/2 API, not the compat 'request' event.
    app.getHttpServer().on('stream', (stream: ServerHttp2Stream, headers: Record<string, string>) => {
      if (headers[':path'] !== '/grpc') return;
      // Record what an application's stream handler would act on (a gRPC call, a side effect), answered or not.
      streamsReached.push(`${headers[':path']} headersSent=${stream.headersSent}`);
      if (stream.headersSent) return;
      stream.respond({ ':status': 200 });
      stream.end('grpc-handler-reached');
    });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
  });

  it.each(['/guarded', '/raw', '/adapter'])('h2 stream to %s without a certificate gets 401', async (path) => {
    const answer = await h2get(port, pki.bundlePem, path);
    expect(answer.status).toBe(401);
    expect(answer.body).toContain('ERR_MTLS_PEER_UNAUTHENTICATED');
  });

  it('a raw "stream" listener is not reached without a certificate', async () => {
    streamsReached.length = 0;
    const answer = await h2get(port, pki.bundlePem, '/grpc').catch((error: Error) => ({ status: -1, body: error.message }));
    expect(answer.status).toBe(401);
    expect(streamsReached).toEqual([]);
  });
});
