import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { writeFile } from 'node:fs/promises';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AllowAnyPeer,
  AllowCommonNames,
  AllowDnsNames,
  AllowPeers,
  AllowTrustDomain,
  MtlsModule,
  mtlsHttpsOptions,
  Peer,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';
import { callAs, TestPki, writeCredentialFiles, type TestPeer } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';
import { SERVER_CELLS } from '../support/cells.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';
const PEERS = { orders: ORDERS, admin: ADMIN };

@Controller('rules')
@AllowPeers('orders')
class RulesController {
  @Get('class')
  classRule(@Peer() peer: PeerIdentity) {
    return { spiffeId: peer.spiffeId, fingerprint: peer.fingerprint256 };
  }

  @Get('method')
  @AllowPeers('admin')
  methodRule() {
    return 'ok';
  }

  @Get('any')
  @AllowAnyPeer()
  any(@Peer() peer: PeerIdentity) {
    return { subject: peer.subject, spiffeId: peer.spiffeId ?? null };
  }

  @Get('trust-domain')
  @AllowTrustDomain('shop.test')
  trustDomain() {
    return 'ok';
  }

  @Get('pattern')
  @AllowPeers('spiffe://shop.test/ns/shop/sa/*')
  pattern() {
    return 'ok';
  }

  @Get('dns')
  @AllowDnsNames('legacy.shop.test')
  dns() {
    return 'ok';
  }

  @Get('cn')
  @AllowCommonNames('legacy-batch')
  cn() {
    return 'ok';
  }
}

@Controller('open')
class UndecoratedController {
  @Get()
  open() {
    return 'ok';
  }
}

describe.each(SERVER_CELLS)('MtlsModule guard and decorators ($name)', (cell) => {
  let pki: TestPki;
  let app: INestApplication;
  let peers: Record<string, TestPeer>;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await startMtlsApp({ credentials: server.credentials, peers: PEERS }, [RulesController, UndecoratedController], {
      cell,
    });
    peers = {
      orders: await pki.peer(ORDERS),
      admin: await pki.peer(ADMIN),
      payments: await pki.peer('spiffe://shop.test/ns/shop/sa/payments'),
      nested: await pki.peer('spiffe://shop.test/ns/shop/sa/payments/v2'),
      frontend: await pki.peer('spiffe://shop.test/ns/web/sa/frontend'),
      legacyDns: await pki.peer({ dnsNames: ['legacy.shop.test'] }),
      legacyDnsUpper: await pki.peer({ dnsNames: ['LEGACY.shop.test'] }),
      legacyCn: await pki.peer({ commonName: 'legacy-batch' }),
      cnWithSans: await pki.peer({ commonName: 'legacy-batch', dnsNames: ['batch.shop.test'] }),
      twoCns: await pki.peer({ commonName: ['legacy-batch', 'legacy-batch'] }),
    };
  });

  afterAll(async () => {
    await app?.close();
  });

  const table: Array<[route: string, peer: string, status: number]> = [
    ['/rules/class', 'orders', 200],
    ['/rules/class', 'admin', 403],
    ['/rules/method', 'admin', 200],
    ['/rules/method', 'orders', 403], // the method's rule replaces the controller's
    ['/rules/any', 'legacyDns', 200],
    ['/rules/trust-domain', 'frontend', 200],
    ['/rules/trust-domain', 'legacyDns', 403],
    ['/rules/pattern', 'payments', 200],
    ['/rules/pattern', 'orders', 200],
    ['/rules/pattern', 'nested', 403],
    ['/rules/pattern', 'frontend', 403],
    ['/rules/dns', 'legacyDns', 200],
    ['/rules/dns', 'legacyDnsUpper', 200],
    ['/rules/dns', 'orders', 403],
    ['/rules/cn', 'legacyCn', 200],
    ['/rules/cn', 'twoCns', 403],
    ['/rules/cn', 'cnWithSans', 403], // a certificate with SANs is identified by them, never by its CN
    ['/open', 'orders', 403], // no rule: the default policy denies
  ];

  it.each(table)('GET %s as %s → %i', async (route, peer, status) => {
    const res = await callAs(app, peers[peer], { http2: cell.http2 }).get(route);
    expect(res.status).toBe(status);
  });

  it('hands the handler the identity read from the certificate', async () => {
    const res = await callAs(app, peers.orders, { http2: cell.http2 }).get('/rules/class');
    expect(res.json()).toEqual({ spiffeId: ORDERS, fingerprint: peers.orders!.fingerprint256 });
  });

  it('admits any peer on undecorated routes when defaultPolicy is any-peer', async () => {
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    const open = await startMtlsApp({ credentials: server.credentials, defaultPolicy: 'any-peer' }, [UndecoratedController], {
      cell,
    });
    try {
      expect((await callAs(open, peers.legacyDns, { http2: cell.http2 }).get('/open')).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('startup', () => {
  let pki: TestPki;
  let good: MtlsModuleOptions['credentials'];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    good = (await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory')).credentials;
  });

  it('fails when a route names an undeclared peer, naming the route and the peer', async () => {
    @Controller('bad')
    class BadController {
      @Get()
      @AllowPeers('ordres')
      typo() {
        return 'ok';
      }
    }
    await expect(startMtlsApp({ credentials: good, peers: PEERS }, [BadController])).rejects.toMatchObject({
      code: 'ERR_MTLS_UNKNOWN_PEER',
      message: expect.stringMatching(/BadController\.typo.*"ordres"/),
    });
  });

  const mainTsLine = {
    express: 'NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() })',
    fastify: 'NestFactory.create(AppModule, mtlsFastifyAdapter())',
  };

  it.each(SERVER_CELLS)('fails on a plain HTTP app and shows the line to add to main.ts ($name)', async (cell) => {
    await expect(startMtlsApp({ credentials: good }, [UndecoratedController], { https: false, cell })).rejects.toMatchObject({
      code: 'ERR_MTLS_NOT_HTTPS',
      message: expect.stringContaining(mainTsLine[cell.adapter]),
    });
  });

  it('refuses TLS settings in httpsOptions that setSecureContext would silently replace', async () => {
    @Module({ imports: [MtlsModule.forRoot({ credentials: good })], controllers: [UndecoratedController] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, {
      httpsOptions: { ...mtlsHttpsOptions(), ciphers: 'AES256-GCM-SHA384', maxVersion: 'TLSv1.2' } as never,
      logger: false,
    });
    try {
      await expect(app.init()).rejects.toMatchObject({
        code: 'ERR_MTLS_CONFIG_INVALID',
        message: expect.stringMatching(/"ciphers", "maxVersion".*module option "credentials".*"tls"/),
      });
    } finally {
      await app.close().catch(() => undefined);
    }
  });

  it.each(SERVER_CELLS)('leaves no key material on the server object ($name)', async (cell) => {
    const app = await startMtlsApp({ credentials: good }, [UndecoratedController], { cell });
    try {
      const server = app.getHttpServer() as Record<string, unknown>;
      expect(server.key).toBeUndefined();
      for (const value of Object.values(server)) {
        if (typeof value === 'string' || Buffer.isBuffer(value)) expect(value.toString()).not.toContain('PRIVATE KEY');
      }
    } finally {
      await app.close();
    }
  });

  it('fails on invalid options, naming the option', async () => {
    await expect(startMtlsApp({ credentials: good, mode: 'lenient' as never }, [UndecoratedController])).rejects.toMatchObject({
      code: 'ERR_MTLS_CONFIG_INVALID',
      message: expect.stringContaining('"mode"'),
    });
  });

  describe('refuses bad credentials, naming the file and the reason', () => {
    async function filesFor(peer: TestPeer, patch: Partial<Record<'cert' | 'key' | 'ca', string>> = {}) {
      const dir = await temporaryDir('nestjs-mtls-startup-');
      const files = (await writeCredentialFiles(dir, peer)) as { certFile: string; keyFile: string; caFile: string };
      if (patch.cert !== undefined) await writeFile(files.certFile, patch.cert);
      if (patch.key !== undefined) await writeFile(files.keyFile, patch.key);
      if (patch.ca !== undefined) await writeFile(files.caFile, patch.ca);
      return files;
    }

    const ID = 'spiffe://shop.test/ns/shop/sa/inventory';
    const cases: Array<
      [string, () => Promise<{ files: Record<string, string>; file: 'certFile' | 'keyFile' | 'caFile' }>, string, RegExp]
    > = [
      [
        'a missing key file',
        async () => {
          const files = await filesFor(await pki.peer(ID));
          return { files: { ...files, keyFile: `${files.keyFile}.missing` }, file: 'keyFile' };
        },
        'ERR_MTLS_CREDENTIALS_UNREADABLE',
        /missing/,
      ],
      [
        'a certificate file that is not PEM',
        async () => ({ files: await filesFor(await pki.peer(ID), { cert: 'hello' }), file: 'certFile' }),
        'ERR_MTLS_CREDENTIALS_NOT_PEM',
        /no PEM block found/,
      ],
      [
        'a key of another certificate',
        async () => ({ files: await filesFor(await pki.peer(ID), { key: (await pki.peer(ID)).keyPem }), file: 'keyFile' }),
        'ERR_MTLS_KEY_MISMATCH',
        /match/,
      ],
      [
        'an expired certificate',
        async () => ({ files: await filesFor(await pki.expiredPeer(ID)), file: 'certFile' }),
        'ERR_MTLS_CERT_EXPIRED',
        /expired/,
      ],
      [
        'a not yet valid certificate',
        async () => ({ files: await filesFor(await pki.notYetValidPeer(ID)), file: 'certFile' }),
        'ERR_MTLS_CERT_NOT_YET_VALID',
        /valid/,
      ],
      [
        'a certificate from another CA',
        async () => ({ files: await filesFor(await pki.foreignPeer(ID)), file: 'caFile' }),
        'ERR_MTLS_CHAIN_UNTRUSTED',
        /does not chain to the trust bundle/,
      ],
      [
        'no clientAuth usage',
        async () => ({ files: await filesFor(await pki.peer({ spiffeId: ID, extKeyUsage: ['serverAuth'] })), file: 'certFile' }),
        'ERR_MTLS_EKU_MISSING',
        /clientAuth/,
      ],
      [
        'no serverAuth usage',
        async () => ({ files: await filesFor(await pki.peer({ spiffeId: ID, extKeyUsage: ['clientAuth'] })), file: 'certFile' }),
        'ERR_MTLS_EKU_MISSING',
        /serverAuth/,
      ],
      [
        'two URI SANs',
        async () => ({
          files: await filesFor(await pki.peer({ spiffeId: ID, uris: ['spiffe://shop.test/x'] })),
          file: 'certFile',
        }),
        'ERR_MTLS_SVID_INVALID',
        /more than one URI SAN/,
      ],
      [
        'a SPIFFE ID with no path',
        async () => ({ files: await filesFor(await pki.peer({ spiffeId: 'spiffe://shop.test' })), file: 'certFile' }),
        'ERR_MTLS_SVID_INVALID',
        /non-root path/,
      ],
    ];

    it.each(cases)('%s', async (_name, make, code, reason) => {
      const { files, file } = await make();
      const logs: string[] = [];
      const capture: LoggerService = {
        log: (m: unknown) => void logs.push(String(m)),
        warn: (m: unknown) => void logs.push(String(m)),
        error: (m: unknown) => void logs.push(String(m)),
      };
      @Module({ imports: [MtlsModule.forRoot({ credentials: files as never })] })
      class AppModule {}
      const failure = await Test.createTestingModule({ imports: [AppModule] })
        .setLogger(capture)
        .compile()
        .then(
          () => undefined,
          (error: unknown) => error as Error & { code: string; file: string },
        );
      expect(failure, 'startup should have failed').toBeDefined();
      expect(failure!.code).toBe(code);
      expect(failure!.message).toContain(files[file]);
      expect(failure!.message).toMatch(reason);
      expect(failure!.message).toMatch(/Fix: /);
      for (const text of [failure!.message, String(failure), ...logs])
        expect(text).not.toMatch(/PRIVATE KEY|MIG[0-9A-Za-z+/]{20}/);
    });
  });

  it('logs the identity and SHA-256 fingerprint, never the key', async () => {
    const logs: string[] = [];
    const capture: LoggerService = {
      log: (m: unknown) => void logs.push(String(m)),
      warn: (m: unknown) => void logs.push(String(m)),
      error: (m: unknown) => void logs.push(String(m)),
      debug: (m: unknown) => void logs.push(String(m)),
      verbose: (m: unknown) => void logs.push(String(m)),
    };
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    @Module({ imports: [MtlsModule.forRoot({ credentials: server.credentials })] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions(), logger: capture });
    await app.init();
    await app.close();
    const text = logs.join('\n');
    expect(text).toContain(server.peer.fingerprint256);
    expect(text).toContain('spiffe://shop.test/ns/shop/sa/inventory');
    const keyBody = server.peer.keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
    for (const line of keyBody) expect(text).not.toContain(line);
    expect(text).not.toContain('PRIVATE KEY');
  });
});

describe.each(SERVER_CELLS)('permissive mode ($name)', (cell) => {
  let pki: TestPki;
  let app: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await startMtlsApp({ credentials: server.credentials, peers: PEERS, mode: 'permissive' }, [RulesController], { cell });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('completes the handshake without a certificate and answers 401', async () => {
    const res = await callAs(app, undefined, { ca: pki.bundlePem, http2: cell.http2 }).get('/rules/class');
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
  });

  it('answers 401 before middleware and routing: unknown routes are not reachable either', async () => {
    const res = await callAs(app, undefined, { ca: pki.bundlePem, http2: cell.http2 }).get('/no/such/route');
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ code: 'ERR_MTLS_PEER_UNAUTHENTICATED' });
    expect((await callAs(app, await pki.peer(ORDERS), { http2: cell.http2 }).get('/no/such/route')).status).toBe(404);
  });

  it('answers 401 to an untrusted certificate and 200 to a good one', async () => {
    expect((await callAs(app, await pki.foreignPeer(ORDERS), { http2: cell.http2 }).get('/rules/class')).status).toBe(401);
    expect((await callAs(app, await pki.expiredPeer(ORDERS), { http2: cell.http2 }).get('/rules/class')).status).toBe(401);
    expect((await callAs(app, await pki.peer(ORDERS), { http2: cell.http2 }).get('/rules/class')).status).toBe(200);
  });

  it('does not authorize a resumed TLS 1.3 session that carried no certificate (nodejs/node#35317)', async () => {
    const port = (app.getHttpServer().address() as { port: number }).port;
    const get = (session?: Buffer) =>
      new Promise<{ status: number; resumed: boolean; session: Buffer | undefined }>((resolve, reject) => {
        let ticket: Buffer | undefined;
        let resumed = false;
        const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca: pki.bundlePem, minVersion: 'TLSv1.3', session });
        socket.on('session', (s: Buffer) => (ticket = s));
        let data = '';
        socket.on('secureConnect', () => {
          resumed = socket.isSessionReused();
          socket.write('GET /rules/any HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        });
        socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
        socket.on('error', reject);
        socket.on('close', () => resolve({ status: Number(data.split(' ')[1]), resumed, session: ticket }));
      });
    const first = await get();
    expect(first.status).toBe(401);
    expect(first.session).toBeDefined();
    const second = await get(first.session);
    expect(second.resumed).toBe(true);
    expect(second.status).toBe(401);
  });
});
