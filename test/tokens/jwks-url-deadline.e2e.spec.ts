import 'reflect-metadata';
import { Controller, Post, type INestApplication } from '@nestjs/common';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, MtlsEvents, RequireToken, type MtlsEvent } from '../../lib/index.js';
import { callAs, TestPki, type TestPeer, type TestTokenIssuer } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';

/*
 * A key server outside the mesh (option caFile) that answers, then sends its JWKS one byte at a time, each byte well
 * within the fetch's `timeoutMs` of the previous one: a slow-loris. `timeoutMs` is the deadline of the whole fetch, so
 * neither the application's start (which fetches once) nor a token request may wait on such a server past it.
 */

const FRONTEND = 'spiffe://shop.test/ns/web/sa/frontend';
const TIMEOUT_MS = 400;

@Controller('t')
@AllowPeers(FRONTEND)
class SlowKeysController {
  @Post()
  @RequireToken('slow')
  create() {
    return {};
  }
}

describe('JWKS URL with a CA file: timeoutMs bounds the whole fetch', () => {
  let keyServer: Server;
  let app: INestApplication | undefined;
  let frontend: TestPeer;
  let issuer: TestTokenIssuer;
  let startMs = Number.POSITIVE_INFINITY;
  const trickles = new Set<NodeJS.Timeout>();
  const events: MtlsEvent[] = [];

  beforeAll(async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/orders');
    frontend = await pki.peer({ spiffeId: FRONTEND });
    issuer = await pki.tokenIssuer({ issuer: 'https://slow.issuer.test' });
    const keyCert = await pki.peer({ spiffeId: 'spiffe://shop.test/ns/idp/sa/keys', ipAddresses: ['127.0.0.1'] });
    const document = Buffer.from(JSON.stringify(issuer.jwks()));
    keyServer = createServer({ cert: keyCert.chainPem, key: keyCert.keyPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      // Whitespace before the document (valid JSON), then the document: a byte every 50 ms, for a minute.
      const padding = 1200;
      const timer = setInterval(() => {
        if (sent < padding) res.write(' ');
        else if (sent - padding < document.length) res.write(document.subarray(sent - padding, sent - padding + 1));
        else {
          clearInterval(timer);
          trickles.delete(timer);
          res.end();
        }
        sent++;
      }, 50);
      trickles.add(timer);
      res.on('close', () => {
        clearInterval(timer);
        trickles.delete(timer);
      });
    });
    await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
    const caFile = join(dirname(await issuer.writeJwks()), 'idp-ca.pem');
    await writeFile(caFile, pki.bundlePem);
    const url = `https://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks`;
    const started = Date.now();
    app = await startMtlsApp(
      {
        credentials: server.credentials,
        reload: { enabled: false },
        tokens: {
          issuers: {
            slow: { issuer: 'https://slow.issuer.test', audience: 'orders', jwks: { url, caFile, timeoutMs: TIMEOUT_MS } },
          },
        },
      },
      [SlowKeysController],
    );
    startMs = Date.now() - started;
    app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  }, 120_000);

  afterAll(async () => {
    for (const timer of trickles) clearInterval(timer);
    await app?.close();
    keyServer?.closeAllConnections();
    await new Promise((resolve) => keyServer?.close(resolve));
  });

  it('starts the application without waiting for the trickling key server', () => {
    // Generous: the bound is the deadline of one fetch plus a TLS handshake, not the minute the server would take.
    expect(startMs).toBeLessThan(10_000);
  });

  it('refuses a token request once the deadline passes: 401, the keys are not available', async () => {
    const started = Date.now();
    const res = await callAs(app!, frontend).post('/t', undefined, { token: await issuer.mint({ sub: 'u', aud: 'orders' }) });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(res.status).toBe(401);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'token.rejected', issuer: 'slow', reason: 'jwks_unavailable' }),
    );
  }, 120_000);
});
