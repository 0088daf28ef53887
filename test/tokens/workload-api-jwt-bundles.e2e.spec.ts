import 'reflect-metadata';
import { Controller, Module, Post, type INestApplication, type LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AllowPeers,
  MtlsEvents,
  MtlsModule,
  mtlsHttpsOptions,
  RequireToken,
  Token,
  type MtlsEvent,
  type MtlsModuleOptions,
} from '../../lib/index.js';
import { callAs, TestPki, TestTokenIssuer, WorkloadApiTestServer, type TestPeer } from '../../lib/testing/index.js';
import type { TestSigningKey } from '../../lib/testing/test-token-issuer.js';
import { WorkloadJwtSource } from '../../lib/workload-api/index.js';

/*
 * JWT-SVIDs on 'peer-id' routes, checked with the JWT bundles a real Workload API server (gRPC on a Unix socket)
 * streams to a real mTLS Nest app: tokens minted by the agent's FetchJWTSVID, and tokens signed by test keys the
 * agent publishes as bundle keys to rotate them, remove them, mark them x509-svid, or drop a trust domain. Every log
 * line is captured: no token, nor any of its parts, may appear in them.
 */

const FRONTEND = 'spiffe://shop.test/ns/web/sa/frontend';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

@Controller('t')
@AllowPeers('frontend')
class SvidController {
  @Post('svid')
  @RequireToken('svid', { bind: 'peer-id' })
  svid(@Token() claims: JWTPayload) {
    return { sub: claims.sub };
  }

  @Post('pinned')
  @RequireToken('pinned', { bind: 'peer-id' })
  pinned(@Token() claims: JWTPayload) {
    return { sub: claims.sub };
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

async function startApp(options: MtlsModuleOptions, logger: LoggerService): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot(options)], controllers: [SvidController] })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger });
  await app.listen(0, '127.0.0.1');
  return app;
}

describe("JWT-SVIDs on 'peer-id' routes, keys from the Workload API's JWT bundles", () => {
  let pki: TestPki;
  let agent: WorkloadApiTestServer;
  let frontendJwt: WorkloadJwtSource;
  let app: INestApplication;
  let frontend: TestPeer;
  let minter: TestTokenIssuer;
  let key1: TestSigningKey;
  let key2: TestSigningKey;
  let partnerKey: TestSigningKey;
  const logger = new CapturingLogger();
  const events: MtlsEvent[] = [];
  const sentTokens: string[] = [];
  const jwtSvidKey = (key: TestSigningKey, use = 'jwt-svid') => ({ ...key.publicJwk, use });

  const call = async (path: string, token: string) => {
    sentTokens.push(token);
    const res = await callAs(app, frontend).post(path, undefined, { token });
    return { status: res.status, body: res.json<{ code?: string; sub?: string }>() };
  };
  /** A JWT-SVID signed by a test key: `sub`, `aud`, no `iss`, the key's `kid` unless the header says otherwise. */
  const svid = (key: TestSigningKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}) =>
    minter.mint({ iss: undefined, sub: FRONTEND, aud: [ORDERS], ...claims }, { key, header });
  const lastRejection = () => events.filter((e) => e.type === 'token.rejected').at(-1) as { reason?: string } | undefined;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    frontend = await pki.peer(FRONTEND);
    agent = await WorkloadApiTestServer.start();
    // The agent serves the frontend workload: its JWT-SVIDs are signed by shop.test's authority.
    agent.setSvids([{ peer: frontend }]);
    agent.addJwtAuthority('shop.test');
    frontendJwt = await WorkloadJwtSource.connect({ socket: agent.address, logger: { log() {}, warn() {}, error() {} } });
    minter = await TestTokenIssuer.create();
    key1 = await TestTokenIssuer.newKey('ES256', 'shop-key-1');
    key2 = await TestTokenIssuer.newKey('ES256', 'shop-key-2');
    partnerKey = await TestTokenIssuer.newKey('ES256', 'partner-key-1');
    agent.setJwtBundle('partner.test', { keys: [jwtSvidKey(partnerKey)] });
    const server = await pki.credentials(ORDERS);
    app = await startApp(
      {
        credentials: server.credentials,
        peers: { frontend: FRONTEND },
        tokens: {
          issuers: {
            svid: { audience: ORDERS, jwks: { workloadApi: { socket: agent.address } } },
            pinned: { audience: ORDERS, jwks: { workloadApi: { socket: agent.address, trustDomain: 'shop.test' } } },
          },
        },
      },
      logger,
    );
    app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  });

  afterAll(async () => {
    await app?.close();
    frontendJwt?.close();
    await agent?.close();
    await pki?.dispose();
  });

  it("admits the peer's own JWT-SVID from the agent (FetchJWTSVID), on both issuers", async () => {
    const token = await frontendJwt.jwtSvid(ORDERS);
    expect(await call('/t/svid', token)).toEqual({ status: 201, body: { sub: FRONTEND } });
    expect(await call('/t/pinned', token)).toEqual({ status: 201, body: { sub: FRONTEND } });
  });

  it('follows key rotation in the bundle: a new key is accepted, a removed key refused', async () => {
    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1)] });
    await expect.poll(async () => (await call('/t/svid', await svid(key1))).status).toBe(201);
    expect(await call('/t/svid', await svid(key2))).toMatchObject({ status: 401, body: { code: 'ERR_MTLS_TOKEN_INVALID' } });
    expect(lastRejection()).toMatchObject({ reason: 'unknown_kid' });

    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1), jwtSvidKey(key2)] });
    await expect.poll(async () => (await call('/t/svid', await svid(key2))).status).toBe(201);
    expect((await call('/t/svid', await svid(key1))).status).toBe(201);

    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key2)] });
    await expect.poll(async () => (await call('/t/svid', await svid(key1))).status).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'unknown_kid' });
    expect(await call('/t/pinned', await svid(key2))).toEqual({ status: 201, body: { sub: FRONTEND } });
  });

  it("refuses a token signed by another trust domain's key, even one the agent has a bundle for", async () => {
    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1)] });
    await expect.poll(async () => (await call('/t/svid', await svid(key1))).status).toBe(201);
    for (const path of ['/t/svid', '/t/pinned']) {
      expect(await call(path, await svid(partnerKey))).toMatchObject({ status: 401, body: { code: 'ERR_MTLS_TOKEN_INVALID' } });
      expect(lastRejection()).toMatchObject({ reason: 'unknown_kid' });
      // Naming a key of ours does not help: the signature is checked with that key.
      expect(await call(path, await svid(partnerKey, {}, { kid: key1.kid }))).toMatchObject({ status: 401 });
      expect(lastRejection()).toMatchObject({ reason: 'signature' });
    }
  });

  it('refuses a sub in another trust domain: 401 ERR_MTLS_TOKEN_UNBOUND (sub_trust_domain) with a trust domain configured', async () => {
    const partnerSub = { sub: 'spiffe://partner.test/ns/web/sa/frontend' };
    expect(await call('/t/pinned', await svid(key1, partnerSub))).toMatchObject({
      status: 401,
      body: { code: 'ERR_MTLS_TOKEN_UNBOUND' },
    });
    expect(lastRejection()).toMatchObject({ reason: 'sub_trust_domain' });
    // Without one, the partner's bundle verifies the partner's token, and sub is not the peer: unbound all the same.
    expect(await call('/t/svid', await svid(partnerKey, partnerSub))).toMatchObject({
      status: 401,
      body: { code: 'ERR_MTLS_TOKEN_UNBOUND' },
    });
    expect(lastRejection()).toMatchObject({ reason: 'sub_mismatch' });
  });

  it('refuses a token without kid', async () => {
    for (const path of ['/t/svid', '/t/pinned']) {
      expect(await call(path, await svid(key1, {}, { kid: undefined }))).toMatchObject({
        status: 401,
        body: { code: 'ERR_MTLS_TOKEN_INVALID' },
      });
      expect(lastRejection()).toMatchObject({ reason: 'kid_missing' });
    }
  });

  it('never verifies with a key marked use: "x509-svid"', async () => {
    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1, 'x509-svid'), jwtSvidKey(key2)] });
    await expect.poll(async () => (await call('/t/svid', await svid(key2))).status).toBe(201);
    expect(await call('/t/svid', await svid(key1))).toMatchObject({ status: 401, body: { code: 'ERR_MTLS_TOKEN_INVALID' } });
    expect(lastRejection()).toMatchObject({ reason: 'unknown_kid' });
  });

  it('refuses tokens while the trust domain has no bundle, or no key, and keeps serving', async () => {
    agent.setJwtBundle('shop.test', null);
    await expect.poll(async () => (await call('/t/svid', await svid(key1))).status).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'no_bundle' });
    agent.setJwtBundle('shop.test', { keys: [] });
    expect((await call('/t/pinned', await svid(key1))).status).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'no_bundle' });
    expect(logger.lines).toContainEqual(expect.stringContaining('tokens of trust domain shop.test are refused'));
    // Back to the agent's own authority: its JWT-SVIDs are admitted again.
    agent.setJwtBundle('shop.test', undefined);
    const token = await frontendJwt.jwtSvid(ORDERS);
    await expect.poll(async () => (await call('/t/svid', token)).status).toBe(201);
  });

  it('a token verified before (reused, not verified again) is refused once its key, or its whole bundle, is gone', async () => {
    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1), jwtSvidKey(key2)] });
    const token = await svid(key1);
    await expect.poll(async () => (await call('/t/svid', token)).status).toBe(201);
    // The same token string again: served from the verified tokens of each issuer.
    expect((await call('/t/svid', token)).status).toBe(201);
    expect((await call('/t/pinned', token)).status).toBe(201);

    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key2)] });
    await expect.poll(async () => (await call('/t/svid', token)).status).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'unknown_kid' });
    expect((await call('/t/pinned', token)).status).toBe(401);

    agent.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1)] });
    await expect.poll(async () => (await call('/t/svid', token)).status).toBe(201);
    agent.setJwtBundle('shop.test', null);
    await expect.poll(async () => (await call('/t/svid', token)).status).toBe(401);
    expect(lastRejection()).toMatchObject({ reason: 'no_bundle' });
    expect((await call('/t/pinned', token)).status).toBe(401);
    agent.setJwtBundle('shop.test', undefined);
  });

  it('starts while the agent is away, refuses tokens, and admits them once it comes back', async () => {
    const away = await WorkloadApiTestServer.start();
    await away.goAway();
    const lines = new CapturingLogger();
    const server = await pki.credentials(ORDERS);
    const started = Date.now();
    const second = await startApp(
      {
        credentials: server.credentials,
        peers: { frontend: FRONTEND },
        tokens: {
          issuers: {
            svid: { audience: ORDERS, jwks: { workloadApi: { socket: away.address } } },
            pinned: { audience: ORDERS, jwks: { workloadApi: { socket: away.address, trustDomain: 'shop.test' } } },
          },
        },
      },
      lines,
    );
    try {
      // A generous bound: startup waits a short while for the bundles, then goes on without them.
      expect(Date.now() - started).toBeLessThan(15_000);
      const token = await svid(key1);
      sentTokens.push(token);
      const before = await callAs(second, frontend).post('/t/svid', undefined, { token });
      expect(before.status).toBe(401);
      expect(before.json<{ code: string }>().code).toBe('ERR_MTLS_TOKEN_INVALID');
      expect(lines.lines).toContainEqual(expect.stringContaining('no JWT bundles from the Workload API'));
      expect(lines.lines).toContainEqual(expect.stringMatching(/ERR_MTLS_TOKEN_INVALID .*jwks_unavailable/));

      await away.comeBack();
      away.setJwtBundle('shop.test', { keys: [jwtSvidKey(key1)] });
      await expect
        .poll(async () => (await callAs(second, frontend).post('/t/svid', undefined, { token })).status, {
          timeout: 20_000,
          interval: 200,
        })
        .toBe(201);
      logger.lines.push(...lines.lines);
    } finally {
      await second.close();
      await away.close();
    }
  });

  it('writes no token, nor any part of one, to the logs', () => {
    const logs = logger.lines.join('\n');
    expect(logs).toContain('token issuer svid');
    expect(sentTokens.length).toBeGreaterThan(20);
    for (const token of sentTokens) {
      for (const part of token.split('.')) {
        if (part.length < 8) continue;
        expect(logs).not.toContain(part);
      }
    }
  });
});
