import 'reflect-metadata';
import { Controller, Get, Module, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialsError, MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import {
  AllowAnyPeer,
  AllowPeers,
  AllowTrustDomain,
  MtlsEvents,
  MtlsModule,
  mtlsHttpsOptions,
  type MtlsEvent,
  type MtlsModuleOptions,
} from '../../lib/index.js';
import { describeRejectedPeer } from '../../lib/server/rejected-peer.js';
import { callAs, TestPki } from '../../lib/testing/index.js';
import { CapturingLogger } from '../observability/fixtures.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';

@Controller('stock')
@AllowPeers('orders')
class StockController {
  @Get(':sku')
  get() {
    return 'ok';
  }

  @Post('reindex')
  @AllowPeers('admin', 'spiffe://shop.test/ns/ops/sa/*')
  reindex() {
    return 'ok';
  }
}

@Controller()
class HealthController {
  @Get('healthz')
  @AllowTrustDomain('shop.test')
  health() {
    return 'ok';
  }

  @Get(['open', 'also-open'])
  open() {
    return 'ok';
  }

  @Get('any')
  @AllowAnyPeer()
  any() {
    return 'ok';
  }
}

async function start(options: MtlsModuleOptions, logger: CapturingLogger, events: MtlsEvent[]): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot(options)], controllers: [StockController, HealthController] })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
    .setLogger(logger)
    .compile();
  const app = moduleRef.createNestApplication({ httpsOptions: mtlsHttpsOptions(), logger });
  app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
  await app.listen(0, '127.0.0.1');
  return app;
}

describe('diagnostics of a running app', () => {
  let pki: TestPki;
  let app: INestApplication;
  const logger = new CapturingLogger();
  const events: MtlsEvent[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await start({ credentials: server.credentials, peers: { orders: ORDERS, admin: ADMIN } }, logger, events);
  });

  afterAll(async () => {
    await app?.close();
    await pki.dispose();
  });

  it('logs one table of every route with its rule as written, the mode and the default policy', () => {
    const table = logger.messages('log').find((line) => line.startsWith('mTLS routes'));
    expect(table).toBeDefined();
    const lines = table!.split('\n');
    expect(lines[0]).toBe("mTLS routes (mode 'strict', defaultPolicy 'deny'):");
    const row = (route: string) =>
      lines
        .find((line) => line.trimStart().startsWith(`${route} `))
        ?.replace(/\s+/g, ' ')
        .trim();
    expect(row('GET /stock/:sku')).toBe('GET /stock/:sku StockController.get @AllowPeers(orders)');
    expect(row('POST /stock/reindex')).toBe(
      'POST /stock/reindex StockController.reindex @AllowPeers(admin, spiffe://shop.test/ns/ops/sa/*)',
    );
    expect(row('GET /healthz')).toBe('GET /healthz HealthController.health @AllowTrustDomain(shop.test)');
    expect(row('GET /open')).toBe("GET /open HealthController.open defaultPolicy 'deny'");
    expect(row('GET /also-open')).toBe("GET /also-open HealthController.open defaultPolicy 'deny'");
    expect(row('GET /any')).toBe('GET /any HealthController.any @AllowAnyPeer()');
    expect(table).toContain(`named peers:\n  orders = ${ORDERS}\n  admin = ${ADMIN}`);
  });

  it('names the rule in a denial the way the table does', async () => {
    const stranger = await pki.peer('spiffe://shop.test/ns/shop/sa/payments');
    expect((await callAs(app, stranger).get('/stock/42')).status).toBe(403);
    const denial = logger.messages('warn').find((line) => line.startsWith('ERR_MTLS_PEER_DENIED on StockController.get'));
    expect(denial).toBe(
      'ERR_MTLS_PEER_DENIED on StockController.get: peer spiffe://shop.test/ns/shop/sa/payments: ' +
        `unexpected ID "spiffe://shop.test/ns/shop/sa/payments"; rule: @AllowPeers(orders)`,
    );
  });

  it('clips and escapes a long subject in a denial line', async () => {
    const legacy = await pki.peer({ commonName: ['legacy', 'x'.repeat(600)] });
    expect((await callAs(app, legacy).get('/stock/42')).status).toBe(403);
    const denial = logger
      .messages('warn')
      .find((line) => line.startsWith('ERR_MTLS_PEER_DENIED on StockController.get: peer CN='));
    expect(denial).toMatch(/^ERR_MTLS_PEER_DENIED on StockController\.get: peer CN=.{1,256}… \(\d+ characters\): /);
    expect(denial!.length).toBeLessThan(600);
  });

  it('logs a rejected handshake with the address and port the peer came from', async () => {
    const foreign = await pki.foreignPeer(ORDERS);
    const before = logger.messages('warn').length;
    await expect(callAs(app, foreign).get('/stock/42')).rejects.toThrow();
    await expect.poll(() => logger.messages('warn').length, { timeout: 5_000 }).toBeGreaterThan(before);
    const line = logger
      .messages('warn')
      .slice(before)
      .find((l) => l.startsWith('TLS handshake rejected'));
    expect(line).toMatch(
      /^TLS handshake rejected from 127\.0\.0\.1:\d+: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/,
    );
    expect(line).not.toContain('unknown address');
    expect(line).not.toContain('BEGIN');
    const rejected = events.filter((event) => event.type === 'handshake.rejected');
    expect(rejected.at(-1)).toMatchObject({ remoteAddress: '127.0.0.1' });
  });
});

describe('a connection refused by admission after its handshake', () => {
  let pki: TestPki;
  let app: INestApplication;
  const logger = new CapturingLogger();
  const events: MtlsEvent[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await start({ credentials: server.credentials, peers: { orders: ORDERS, admin: ADMIN } }, logger, events);
  });

  afterAll(async () => {
    await app?.close();
    await pki.dispose();
  });

  it('is logged with the address and the certificate: subject, SANs, issuer and fingerprint, never its body', async () => {
    // Chains to the trusted CA, so Node completes the handshake; two URI SANs make it no X509-SVID, so admission refuses.
    const twoIds = await pki.peer({ spiffeId: ORDERS, uris: ['spiffe://shop.test/ns/shop/sa/payments'], commonName: 'two-ids' });
    await expect(callAs(app, twoIds).get('/stock/42')).rejects.toThrow();
    await expect
      .poll(() => logger.messages('warn').some((l) => l.startsWith('TLS connection from')), { timeout: 5_000 })
      .toBe(true);
    const line = logger.messages('warn').find((l) => l.startsWith('TLS connection from'))!;
    expect(line).toMatch(
      new RegExp(
        `^TLS connection from 127\\.0\\.0\\.1:\\d+ \\(subject "CN=two-ids", SANs URI:"${ORDERS}", URI:"spiffe://shop\\.test/ns/shop/sa/payments", ` +
          `issuer "CN=shop\\.test test root CA", SHA-256 ${twoIds.fingerprint256}\\) closed after its handshake: ERR_MTLS_PEER_INVALID: `,
      ),
    );
    expect(line).not.toMatch(/BEGIN|PRIVATE/);
    expect(events.filter((e) => e.type === 'handshake.rejected').at(-1)).toMatchObject({ remoteAddress: '127.0.0.1' });
  });
});

describe('describeRejectedPeer', () => {
  let pki: TestPki;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });

  it('names address and port, and no certificate when none could be read', () => {
    expect(describeRejectedPeer({ address: '127.0.0.1', port: 5000 })).toBe('127.0.0.1:5000');
    expect(describeRejectedPeer({ address: '::1', port: 5000 })).toBe('[::1]:5000');
    expect(describeRejectedPeer({ address: undefined, port: undefined })).toBe('unknown address');
  });

  it('names subject, SPIFFE ID, issuer and fingerprint of a certificate, and nothing more', async () => {
    const peer = await pki.peer({ spiffeId: ORDERS, commonName: 'orders' });
    const der = new Uint8Array(Buffer.from(peer.chainPem.split('-----')[2]!.replace(/\s/g, ''), 'base64'));
    const text = describeRejectedPeer({ address: '10.0.0.7', port: 443, certificateDer: der });
    expect(text).toBe(
      `10.0.0.7:443 (subject "CN=orders", SPIFFE ID "${ORDERS}", issuer "CN=shop.test test root CA", SHA-256 ${peer.fingerprint256})`,
    );
    expect(text).not.toMatch(/BEGIN|PRIVATE/);
  });

  it('lists a few SANs of a certificate without a SPIFFE ID, escaped so they cannot forge a log line', async () => {
    const names = ['a.shop.test', 'b.shop.test', 'c.shop.test', 'd.shop.test', 'e.shop.test'];
    const peer = await pki.peer({ dnsNames: names });
    const der = new Uint8Array(Buffer.from(peer.chainPem.split('-----')[2]!.replace(/\s/g, ''), 'base64'));
    const text = describeRejectedPeer({ address: '10.0.0.7', port: 443, certificateDer: der });
    expect(text).toContain('SANs DNS:"a.shop.test", DNS:"b.shop.test", DNS:"c.shop.test", DNS:"d.shop.test", … (5 in all)');
    expect(text).not.toContain('\n');
  });

  it('says so when the certificate does not parse', () => {
    expect(describeRejectedPeer({ address: '10.0.0.7', port: 1, certificateDer: new Uint8Array([0x30, 0x03, 1, 2]) })).toBe(
      '10.0.0.7:1 (a certificate that does not parse)',
    );
  });
});

describe('startup errors', () => {
  it('print as one paragraph through util.inspect (Nest logger, Node uncaught report of a logged error)', () => {
    const config = new MtlsConfigError(
      'ERR_MTLS_UNKNOWN_PEER',
      'StockController.get: unknown peer "ordres": did you mean "orders"?',
    );
    expect(inspect(config)).toBe(
      'MtlsConfigError [ERR_MTLS_UNKNOWN_PEER]: StockController.get: unknown peer "ordres": did you mean "orders"?',
    );
    const credentials = new CredentialsError('ERR_MTLS_CERT_EXPIRED', 'the certificate expired', {
      file: '/tls/tls.crt',
      field: 'certificate',
      fix: 'renew it',
    });
    expect(inspect(credentials)).toBe(
      'CredentialsError [ERR_MTLS_CERT_EXPIRED]: /tls/tls.crt (certificate): the certificate expired. Fix: renew it',
    );
    expect(config.stack).toContain('at '); // the trace is still there for whoever asks for it
  });

  it('fail on a misspelt peer name in a decorator, with the declared name it is closest to', async () => {
    @Controller('typo')
    class TypoController {
      @Get()
      @AllowPeers('ordres')
      get() {
        return 'ok';
      }
    }
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    @Module({
      imports: [MtlsModule.forRoot({ credentials: server.credentials, peers: { orders: ORDERS } })],
      controllers: [TypoController],
    })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({
      httpsOptions: mtlsHttpsOptions(),
      logger: false,
    });
    try {
      await expect(app.init()).rejects.toMatchObject({
        code: 'ERR_MTLS_UNKNOWN_PEER',
        message:
          'TypoController.get: unknown peer "ordres": did you mean "orders"? declare it in MtlsModule options `peers` ' +
          '(declared: orders), or use a SPIFFE ID',
      });
    } finally {
      await app.close().catch(() => undefined);
      await pki.dispose();
    }
  });
});
