import 'reflect-metadata';
import { Controller, Module, Post, type INestApplication, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { JWTPayload } from 'jose';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  AllowPeers,
  CredentialsStatus,
  MtlsEvents,
  MtlsModule,
  mtlsHttpsOptions,
  RequireToken,
  Token,
  type MtlsEvent,
  type MtlsModuleOptions,
} from '../../lib/index.js';
import { callAs, certificateThumbprint, TestPki, TestTokenIssuer, type TestPeer } from '../../lib/testing/index.js';
import { MtlsMetrics } from '../../lib/observability/prometheus/index.js';
import type { TokenIssuers } from '../../lib/tokens/token-issuers.service.js';
import { TokenIssuers as TokenIssuersService } from '../../lib/tokens/token-issuers.service.js';
import { startUpstream, type UpstreamServer } from '../client/upstream-server.js';
import type { JwksUrlSource } from '../../lib/tokens/jwks-url-source.js';

/*
 * Tokens through a real Nest app over real TLS, signed by real keys. Every log line the app writes is captured, and
 * no token, nor any of its three parts, may appear in any of them.
 */

const FRONTEND = 'spiffe://shop.test/ns/web/sa/frontend';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

@Controller('t')
@AllowPeers('frontend')
class TokenController {
  @Post('user')
  @RequireToken('shop')
  user(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }

  @Post('bound')
  @RequireToken('shop', { bind: 'certificate' })
  bound(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }

  @Post('svid')
  @RequireToken('svid', { bind: 'peer-id' })
  svid(@Token() claims: JWTPayload) {
    return { sub: claims.sub };
  }

  @Post('scoped')
  @RequireToken('shop', { scopes: ['orders:write'] })
  scoped(@Token('token') token: string) {
    return { relayed: typeof token === 'string' };
  }

  @Post('remote')
  @RequireToken('remote')
  remote(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }

  @Post('flaky')
  @RequireToken('flaky')
  flaky(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }

  @Post('mesh')
  @RequireToken('mesh')
  mesh(@Token() claims: JWTPayload) {
    return { user: claims.sub };
  }
}

class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown, ...rest: unknown[]) {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
  error(message: unknown, ...rest: unknown[]) {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('bearer tokens bound to the mTLS peer (real TLS, real keys)', () => {
  let pki: TestPki;
  let app: INestApplication;
  let frontend: TestPeer;
  let frontend2: TestPeer;
  let stranger: TestPeer;
  let issuer: TestTokenIssuer;
  let svidIssuer: TestTokenIssuer;
  let remoteIssuer: TestTokenIssuer;
  let jwksFile: string;
  let keyServer: Server;
  let keyServerHits = 0;
  let flakyDown = false;
  let meshIssuer: TestTokenIssuer;
  let meshKeyServer: UpstreamServer;
  const logger = new CapturingLogger();
  const events: MtlsEvent[] = [];
  const sentTokens: string[] = [];
  const registry = new Registry();
  let metrics: MtlsMetrics | undefined;

  const call = (peer: TestPeer, path: string, token?: string, headers: Record<string, string> = {}) => {
    if (token !== undefined) sentTokens.push(token);
    return callAs(app, peer).post(path, undefined, { ...(token === undefined ? {} : { token }), headers });
  };

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(ORDERS);
    frontend = await pki.peer(FRONTEND);
    frontend2 = await pki.peer(FRONTEND);
    stranger = await pki.peer('spiffe://shop.test/ns/web/sa/stranger');
    issuer = await pki.tokenIssuer({ issuer: 'https://issuer.test' });
    jwksFile = await issuer.writeJwks();
    // A SPIFFE bundle: an X509-SVID authority the token layer ignores, and a `use: "jwt-svid"` key it must accept.
    svidIssuer = await pki.tokenIssuer({ issuer: 'https://svid.issuer.test' });
    const bundleFile = join(dirname(jwksFile), 'bundle.json');
    const svidKey = { ...svidIssuer.currentKey.publicJwk, use: 'jwt-svid' };
    delete (svidKey as { alg?: string }).alg;
    await writeFile(
      bundleFile,
      JSON.stringify({
        keys: [{ kty: 'EC', crv: 'P-256', use: 'x509-svid', x: svidKey.x, y: svidKey.y, x5c: [] }, svidKey],
        spiffe_sequence: 1,
      }),
    );
    // A key server over HTTPS with its own CA bundle, counting fetches.
    remoteIssuer = await pki.tokenIssuer({ issuer: 'https://remote.issuer.test' });
    const keyServerCert = await pki.peer({ spiffeId: 'spiffe://shop.test/ns/idp/sa/keys', ipAddresses: ['127.0.0.1'] });
    keyServer = createServer({ cert: keyServerCert.chainPem, key: keyServerCert.keyPem }, (req, res) => {
      if (req.url === '/flaky') {
        res.statusCode = flakyDown ? 503 : 200;
        res.end(flakyDown ? 'down' : JSON.stringify(remoteIssuer.jwks()));
        return;
      }
      keyServerHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(remoteIssuer.jwks()));
    });
    await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
    // A key server inside the mesh: fetched through MtlsHttpClient, which presents the service's certificate and
    // checks the key server's SPIFFE ID.
    meshIssuer = await pki.tokenIssuer({ issuer: 'https://mesh.issuer.test' });
    meshKeyServer = await startUpstream(
      await pki.peer({ spiffeId: 'spiffe://shop.test/ns/idp/sa/mesh-keys', ipAddresses: ['127.0.0.1'] }),
      pki.bundlePem,
      (_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(meshIssuer.jwks()));
      },
    );
    const caFile = join(dirname(jwksFile), 'idp-ca.pem');
    await writeFile(caFile, pki.bundlePem);
    const options: MtlsModuleOptions = {
      credentials: server.credentials,
      peers: { frontend: FRONTEND },
      reload: { debounceMs: 50, pollIntervalMs: 0 },
      tokens: {
        issuers: {
          shop: { issuer: 'https://issuer.test', audience: 'orders', jwks: jwksFile },
          svid: { issuer: 'https://svid.issuer.test', audience: ORDERS, jwks: { file: bundleFile } },
          remote: {
            issuer: 'https://remote.issuer.test',
            audience: ['orders'],
            jwks: { url: `https://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks`, caFile, cooldownMs: 60_000 },
          },
          flaky: {
            issuer: 'https://remote.issuer.test',
            audience: 'orders',
            jwks: {
              url: `https://127.0.0.1:${(keyServer.address() as AddressInfo).port}/flaky`,
              caFile,
              refreshMs: 1_000,
              staleIfErrorMs: 600_000,
            },
          },
          mesh: {
            issuer: 'https://mesh.issuer.test',
            audience: 'orders',
            jwks: { url: `${meshKeyServer.origin}/jwks`, expectPeer: 'spiffe://shop.test/ns/idp/sa/mesh-keys' },
          },
        },
      },
    };
    @Module({ imports: [MtlsModule.forRoot(options)], controllers: [TokenController] })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    // Node's own header limit (16 KiB in total) is raised so that the token layer's limit is the one tested.
    app = moduleRef.createNestApplication({
      httpsOptions: { ...mtlsHttpsOptions(), maxHeaderSize: 64 * 1024 } as ReturnType<typeof mtlsHttpsOptions>,
      logger,
    });
    app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
    await app.listen(0, '127.0.0.1');
    metrics = new MtlsMetrics(app.get(MtlsEvents), app.get(CredentialsStatus), registry);
  });

  afterAll(async () => {
    metrics?.close();
    await app?.close();
    await new Promise((resolve) => keyServer?.close(resolve));
    meshKeyServer?.server.closeAllConnections();
    await new Promise((resolve) => meshKeyServer?.server.close(resolve));
  });

  const refusal = async (res: { status: number; headers: Record<string, unknown>; json<T>(): T }) => ({
    status: res.status,
    code: res.json<{ code: string }>().code,
    challenge: res.headers['www-authenticate'],
  });

  it('admits a valid token from an admitted peer and hands its claims to the handler', async () => {
    const res = await call(frontend, '/t/user', await issuer.mint({ sub: 'alice', aud: 'orders' }));
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ user: 'alice' });
  });

  it.each([
    ['expired past the tolerance', { sub: 'u', aud: 'orders', exp: Math.floor(Date.now() / 1000) - 31 - 5 }, 'expired'],
    ['nbf in the future', { sub: 'u', aud: 'orders', nbf: Math.floor(Date.now() / 1000) + 120 }, 'not_yet_valid'],
    ['wrong iss', { sub: 'u', aud: 'orders', iss: 'https://evil.test' }, 'issuer'],
    ['wrong aud', { sub: 'u', aud: 'billing' }, 'audience'],
    ['array aud without this service', { sub: 'u', aud: ['billing', 'ledger'] }, 'audience'],
    ['no aud', { sub: 'u' }, 'audience'],
  ])('refuses a token with %s: 401 invalid_token', async (_name, claims, reason) => {
    const before = events.length;
    const res = await call(frontend, '/t/user', await issuer.mint(claims as JWTPayload));
    expect(await refusal(res)).toEqual({
      status: 401,
      code: 'ERR_MTLS_TOKEN_INVALID',
      challenge: 'Bearer error="invalid_token"',
    });
    expect(events.slice(before)).toContainEqual(expect.objectContaining({ type: 'token.rejected', issuer: 'shop', reason }));
  });

  it('accepts a token expired within the clock tolerance, and an array aud naming this service', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await call(frontend, '/t/user', await issuer.mint({ sub: 'u', aud: 'orders', exp: now - 10 }))).status).toBe(201);
    expect((await call(frontend, '/t/user', await issuer.mint({ sub: 'u', aud: ['billing', 'orders'] }))).status).toBe(201);
  });

  it('refuses a token without exp', async () => {
    const res = await call(frontend, '/t/user', await issuer.mint({ sub: 'u', aud: 'orders' }, { expiresInSec: null }));
    expect((await refusal(res)).code).toBe('ERR_MTLS_TOKEN_INVALID');
  });

  it.each([
    ['alg: none', (i: TestTokenIssuer) => Promise.resolve(i.unsigned({ sub: 'u', aud: 'orders' })), 'algorithm'],
    ['HS256 keyed with the public key', (i: TestTokenIssuer) => i.hs256WithPublicKey({ sub: 'u', aud: 'orders' }), 'algorithm'],
    [
      'a key not in the JWKS (same kid)',
      async (i: TestTokenIssuer) =>
        i.mint({ sub: 'u', aud: 'orders' }, { key: { ...(await TestTokenIssuer.newKey('ES256', i.currentKey.kid)) } }),
      'signature',
    ],
    [
      'a key not in the JWKS (its own kid)',
      async (i: TestTokenIssuer) => i.mint({ sub: 'u', aud: 'orders' }, { key: await TestTokenIssuer.newKey() }),
      'unknown_kid',
    ],
  ])('refuses %s', async (_name, mint, reason) => {
    const before = events.length;
    const res = await call(frontend, '/t/user', await mint(issuer));
    expect(await refusal(res)).toEqual({
      status: 401,
      code: 'ERR_MTLS_TOKEN_INVALID',
      challenge: 'Bearer error="invalid_token"',
    });
    expect(events.slice(before)).toContainEqual(expect.objectContaining({ type: 'token.rejected', reason }));
  });

  it.each([
    ['no Authorization header', {}, 'ERR_MTLS_TOKEN_MISSING', 'Bearer'],
    ['another scheme', { authorization: 'Basic YWxpY2U6c2VjcmV0' }, 'ERR_MTLS_TOKEN_MISSING', 'Bearer error="invalid_token"'],
    ['junk', { authorization: 'Bearer not-a-jwt' }, 'ERR_MTLS_TOKEN_INVALID', 'Bearer error="invalid_token"'],
    ['four parts', { authorization: 'Bearer a.b.c.d' }, 'ERR_MTLS_TOKEN_INVALID', 'Bearer error="invalid_token"'],
    [
      'base64url junk in three parts',
      { authorization: 'Bearer aaaa.bbbb.cccc' },
      'ERR_MTLS_TOKEN_INVALID',
      'Bearer error="invalid_token"',
    ],
    [
      'a header over 16 KiB',
      { authorization: `Bearer ${'a'.repeat(17_000)}.b.c` },
      'ERR_MTLS_TOKEN_INVALID',
      'Bearer error="invalid_token"',
    ],
    [
      'non-JSON header part',
      { authorization: `Bearer ${Buffer.from('{"alg":').toString('base64url')}.e30.c2ln` },
      'ERR_MTLS_TOKEN_INVALID',
      'Bearer error="invalid_token"',
    ],
  ])('answers %s with 401, never a 500', async (_name, headers, code, challenge) => {
    const res = await call(frontend, '/t/user', undefined, headers as Record<string, string>);
    expect(await refusal(res)).toEqual({ status: 401, code, challenge });
  });

  it('takes the scheme case-insensitively', async () => {
    const token = await issuer.mint({ sub: 'u', aud: 'orders' });
    sentTokens.push(token);
    expect((await call(frontend, '/t/user', undefined, { authorization: `bEaReR ${token}` })).status).toBe(201);
  });

  it('refuses two Authorization headers even when the first one is valid', async () => {
    const token = await issuer.mint({ sub: 'u', aud: 'orders' });
    sentTokens.push(token);
    // Written by hand on a TLS socket: Node's client cannot send one header twice.
    const { port } = app.getHttpServer().address() as AddressInfo;
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, ca: frontend.caPem, cert: frontend.chainPem, key: frontend.keyPem, servername: 'localhost' },
        () => {
          socket.end(
            `POST /t/user HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer x.y.z\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
          );
        },
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    const res = { status: Number(raw.split(' ')[1]), body: raw.slice(raw.indexOf('\r\n\r\n') + 4) };
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).code).toBe('ERR_MTLS_TOKEN_INVALID');
  });

  it('refuses a denied peer with 403 before reading its valid token', async () => {
    const before = events.length;
    const res = await call(stranger, '/t/user', await issuer.mint({ sub: 'u', aud: 'orders' }));
    expect(res.status).toBe(403);
    expect(res.json<{ code: string }>().code).toBe('ERR_MTLS_PEER_DENIED');
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(events.slice(before).some((event) => event.type === 'token.rejected')).toBe(false);
  });

  describe("bind: 'certificate' (RFC 8705)", () => {
    it('admits a token whose cnf matches the certificate on this connection', async () => {
      const token = await issuer.mint({ sub: 'u', aud: 'orders', cnf: { 'x5t#S256': certificateThumbprint(frontend.certPem) } });
      expect((await call(frontend, '/t/bound', token)).status).toBe(201);
    });

    it.each([
      ['no cnf', () => ({}), 'cnf_missing'],
      ['a mismatched cnf', () => ({ cnf: { 'x5t#S256': certificateThumbprint(stranger.certPem) } }), 'cnf_mismatch'],
      ['a cnf that is not a SHA-256', () => ({ cnf: { 'x5t#S256': 'AAAA' } }), 'cnf_mismatch'],
      [
        'the token replayed with another certificate of the same SPIFFE ID',
        () => ({ cnf: { 'x5t#S256': certificateThumbprint(frontend2.certPem) } }),
        'cnf_mismatch',
      ],
    ])('refuses %s: 401 ERR_MTLS_TOKEN_UNBOUND', async (_name, extra, reason) => {
      const before = events.length;
      const res = await call(frontend, '/t/bound', await issuer.mint({ sub: 'u', aud: 'orders', ...extra() }));
      expect(await refusal(res)).toEqual({
        status: 401,
        code: 'ERR_MTLS_TOKEN_UNBOUND',
        challenge: 'Bearer error="invalid_token"',
      });
      expect(events.slice(before)).toContainEqual(expect.objectContaining({ type: 'token.rejected', reason, sub: '"u"' }));
    });
  });

  describe("bind: 'peer-id' (JWT-SVID from a SPIFFE bundle)", () => {
    it("admits a JWT-SVID whose sub is the peer's SPIFFE ID, signed by a use: jwt-svid key", async () => {
      const token = await svidIssuer.mint({ sub: FRONTEND, aud: [ORDERS] }, { header: { typ: undefined } });
      expect((await call(frontend, '/t/svid', token)).json()).toEqual({ sub: FRONTEND });
    });

    it("refuses a JWT-SVID whose sub is another workload's", async () => {
      const res = await call(
        frontend,
        '/t/svid',
        await svidIssuer.mint({ sub: 'spiffe://shop.test/ns/web/sa/stranger', aud: ORDERS }),
      );
      expect((await refusal(res)).code).toBe('ERR_MTLS_TOKEN_UNBOUND');
    });

    it('refuses a JWT-SVID with another typ', async () => {
      const res = await call(
        frontend,
        '/t/svid',
        await svidIssuer.mint({ sub: FRONTEND, aud: ORDERS }, { header: { typ: 'at+jwt' } }),
      );
      expect((await refusal(res)).code).toBe('ERR_MTLS_TOKEN_INVALID');
    });
  });

  it('answers a token without the route scope with 403 insufficient_scope', async () => {
    const res = await call(frontend, '/t/scoped', await issuer.mint({ sub: 'u', aud: 'orders', scope: 'orders:read' }));
    expect(await refusal(res)).toEqual({
      status: 403,
      code: 'ERR_MTLS_TOKEN_SCOPE',
      challenge: 'Bearer error="insufficient_scope", scope="orders:write"',
    });
    const ok = await call(
      frontend,
      '/t/scoped',
      await issuer.mint({ sub: 'u', aud: 'orders', scope: 'orders:read orders:write' }),
    );
    expect(ok.json()).toEqual({ relayed: true });
  });

  it('follows JWKS rotation: new key accepted, removed key refused, a broken file refused while the old keys serve', async () => {
    const oldKey = issuer.currentKey;
    const newKey = await issuer.rotate();
    await issuer.writeJwks(jwksFile);
    const newToken = await issuer.mint({ sub: 'u', aud: 'orders' });
    await until(async () => (await call(frontend, '/t/user', newToken)).status === 201, 'the new key to be accepted');

    issuer.removeKey(oldKey.kid);
    await issuer.writeJwks(jwksFile);
    const oldToken = await issuer.mint({ sub: 'u', aud: 'orders' }, { key: oldKey });
    await until(async () => (await call(frontend, '/t/user', oldToken)).status === 401, 'the removed key to be refused');

    const before = events.length;
    await writeFile(`${jwksFile}.tmp`, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'shared' }] }));
    const { rename } = await import('node:fs/promises');
    await rename(`${jwksFile}.tmp`, jwksFile);
    await until(async () => events.slice(before).some((event) => event.type === 'jwks.refused'), 'the broken JWKS to be refused');
    expect((await call(frontend, '/t/user', await issuer.mint({ sub: 'u', aud: 'orders' }))).status).toBe(201);
    expect(logger.lines.some((line) => line.includes('JWKS on disk refused') && line.includes('symmetric'))).toBe(true);
    expect(newKey.kid).not.toBe(oldKey.kid);
  });

  it('keeps verifying with the last key set while the key server fails (stale-if-error), with a log line and a metric', async () => {
    const token = await remoteIssuer.mint({ sub: 's', aud: 'orders' });
    expect((await call(frontend, '/t/flaky', token)).status).toBe(201);
    flakyDown = true;
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await call(frontend, '/t/flaky', token)).status).toBe(201);
    expect(events).toContainEqual(expect.objectContaining({ type: 'jwks.stale', issuer: 'flaky' }));
    expect(
      logger.lines.some((line) =>
        /token issuer flaky: serving JWKS fetched \d+ s ago \(stale-if-error\) because fetching .*\/flaky fails: HTTP 503/.test(
          line,
        ),
      ),
    ).toBe(true);
    expect(await registry.metrics()).toMatch(/nestjs_mtls_jwks_stale_served_total\{issuer="flaky"\} [1-9]/);
  });

  it('fetches a JWKS URL inside the mesh through MtlsHttpClient, presenting the service certificate', async () => {
    expect((await call(frontend, '/t/mesh', await meshIssuer.mint({ sub: 'm', aud: 'orders' }))).json()).toEqual({ user: 'm' });
    expect(meshKeyServer.requests.length).toBeGreaterThanOrEqual(1);
    expect(meshKeyServer.requests[0]!.clientSerial).toBeDefined();
  });

  it('fetches a JWKS URL once, and refetches at most once per cooldown for a flood of unknown kids', async () => {
    expect((await call(frontend, '/t/remote', await remoteIssuer.mint({ sub: 'u', aud: 'orders' }))).status).toBe(201);
    const source = (app.get(TokenIssuersService) as TokenIssuers).source('remote') as JwksUrlSource;
    const hitsBefore = keyServerHits;
    const strangers = await Promise.all(Array.from({ length: 20 }, () => TestTokenIssuer.newKey()));
    const results = await Promise.all(
      strangers.map(
        async (key) => (await call(frontend, '/t/remote', await remoteIssuer.mint({ sub: 'u', aud: 'orders' }, { key }))).status,
      ),
    );
    expect(results.every((status) => status === 401)).toBe(true);
    expect(keyServerHits - hitsBefore).toBeLessThanOrEqual(1);
    expect(source.fetches).toBeLessThanOrEqual(2);
  });

  // Last: the guarantee of the issue, over everything the tests above sent. No token, and no part of one, in any
  // log line, event or metric; the refusals themselves were logged and counted by issuer and reason.
  it('wrote no token, nor any part of one, to a log line, an event or a metric', async () => {
    const logs = logger.lines.join('\n');
    const eventText = JSON.stringify(events.map((event) => ({ ...event, error: undefined })));
    const metricText = await registry.metrics();
    expect(logs).toMatch(
      /ERR_MTLS_TOKEN_UNBOUND on TokenController\.bound: peer spiffe:\/\/shop\.test\/ns\/web\/sa\/frontend, issuer shop kid "test-key-\d+" sub "u": cnf_mismatch/,
    );
    expect(metricText).toContain('nestjs_mtls_token_rejections_total{issuer="shop",reason="expired"} 1');
    expect(metricText).toContain('nestjs_mtls_token_rejections_total{issuer="shop",reason="cnf_mismatch"} 3');
    expect(sentTokens.length).toBeGreaterThan(30);
    for (const token of sentTokens) {
      for (const part of token.split('.')) {
        if (part.length < 8) continue;
        expect(logs).not.toContain(part);
        expect(eventText).not.toContain(part);
        expect(metricText).not.toContain(part);
      }
    }
  });
});
