import 'reflect-metadata';
import { Controller, Module, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { JWTPayload } from 'jose';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, MtlsModule, RequireToken, Token } from '../../lib/index.js';
import { TestPki, type TestPeer, type TestTokenIssuer } from '../../lib/testing/index.js';
import { createCellApp, SERVER_CELLS } from '../support/cells.js';

/* The Authorization header edge cases of issue 11 on every adapter cell: Fastify's request has no rawHeaders of its own. */

const FRONTEND = 'spiffe://shop.test/ns/web/sa/frontend';

@Controller('t')
@AllowPeers('frontend')
class TokenController {
  @Post('user')
  @RequireToken('shop')
  user(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }
}

function rawPost(port: number, peer: TestPeer, headerLines: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        port,
        ca: peer.caPem,
        cert: peer.chainPem,
        key: peer.keyPem,
        servername: 'localhost',
        ALPNProtocols: ['http/1.1'],
      },
      () => {
        socket.write(`POST /t/user HTTP/1.1\r\nHost: localhost\r\n${headerLines}Content-Length: 0\r\nConnection: close\r\n\r\n`);
      },
    );
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('end', () => resolve({ status: Number(text.split(' ')[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
    socket.on('error', reject);
  });
}

describe.each(SERVER_CELLS)('Authorization header variations ($name, sent as HTTP/1.1)', (cell) => {
  let app: INestApplication;
  let pki: TestPki;
  let frontend: TestPeer;
  let issuer: TestTokenIssuer;
  let port: number;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/orders');
    frontend = await pki.peer(FRONTEND);
    issuer = await pki.tokenIssuer({ issuer: 'https://issuer.test' });
    const jwks = await issuer.writeJwks();
    @Module({
      imports: [
        MtlsModule.forRoot({
          credentials: server.credentials,
          peers: { frontend: FRONTEND },
          reload: { enabled: false },
          tokens: { issuers: { shop: { issuer: 'https://issuer.test', audience: 'orders', jwks } } },
        }),
      ],
      controllers: [TokenController],
    })
    class M {}
    const moduleRef = await Test.createTestingModule({ imports: [M] }).compile();
    app = createCellApp(moduleRef, cell);
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
  });

  it('control: one valid token → 201', async () => {
    const token = await issuer.mint({ sub: 'alice', aud: 'orders' });
    expect((await rawPost(port, frontend, `Authorization: Bearer ${token}\r\n`)).status).toBe(201);
  });

  it('two Authorization headers, the first valid → 401 (issue 11: "two Authorization headers → 401")', async () => {
    const token = await issuer.mint({ sub: 'alice', aud: 'orders' });
    const answer = await rawPost(port, frontend, `Authorization: Bearer ${token}\r\nAuthorization: Bearer x.y.z\r\n`);
    expect(answer.status).toBe(401);
  });

  it.each([
    ['a tab after the scheme', (t: string) => `Authorization: Bearer\t${t}\r\n`, 201],
    ['two spaces after the scheme', (t: string) => `Authorization: Bearer  ${t}\r\n`, 201],
    ['lower-case scheme', (t: string) => `authorization: bearer ${t}\r\n`, 201],
    ['comma-joined second credential', (t: string) => `Authorization: Bearer ${t}, Bearer ${t}\r\n`, 401],
  ])('%s', async (_name, line, status) => {
    const token = await issuer.mint({ sub: 'alice', aud: 'orders' });
    expect((await rawPost(port, frontend, line(token))).status).toBe(status);
  });
});
