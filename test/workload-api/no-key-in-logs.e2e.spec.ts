import 'reflect-metadata';
import { Controller, Get, Logger, Module, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createPrivateKey } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsEvents, MtlsModule, mtlsHttpsOptions, type MtlsEvent } from '../../lib/index.js';
import { TestPki, type TestPeer } from '../../lib/testing/test-pki.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';

const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

@Controller('ping')
class PingController {
  @Get()
  @AllowAnyPeer()
  ping(): string {
    return 'pong';
  }
}

/** Every form a key byte could take in a log line: PEM body lines, DER as base64/hex, and its PKCS#8 DER. */
function keyFingerprints(peer: TestPeer): string[] {
  const der = createPrivateKey(peer.keyPem).export({ type: 'pkcs8', format: 'der' });
  const body = peer.keyPem.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
  return [...body.map((line) => line.slice(0, 24)), der.toString('base64').slice(8, 40), der.toString('hex').slice(16, 64)];
}

describe('no key byte in any log (Workload API lifecycle)', () => {
  const lines: string[] = [];
  const capture: LoggerService = {
    log: (m: unknown) => lines.push(inspect(m)),
    warn: (m: unknown) => lines.push(inspect(m)),
    error: (m: unknown, ...rest: unknown[]) => lines.push(inspect(m), ...rest.map((r) => inspect(r))),
    debug: (m: unknown) => lines.push(inspect(m)),
    verbose: (m: unknown) => lines.push(inspect(m)),
  };
  afterAll(() => Logger.overrideLogger(false));

  it('startup, rotation, a refused SVID, PermissionDenied and an agent restart log no key material', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const agent = await WorkloadApiTestServer.start();
    const peers: TestPeer[] = [];
    const mint = async (spiffeId = INVENTORY): Promise<TestPeer> => {
      const peer = await pki.peer({ spiffeId, ipAddresses: ['127.0.0.1'] });
      peers.push(peer);
      return peer;
    };
    agent.setSvids([{ peer: await mint() }]);
    @Module({
      imports: [MtlsModule.forRoot({ credentials: { workloadApi: { socket: agent.address } } })],
      controllers: [PingController],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions(), logger: capture });
    const events: MtlsEvent[] = [];
    app.get(MtlsEvents).events$.subscribe((event) => events.push(event));
    await app.listen(0, '127.0.0.1');
    try {
      agent.setSvids([{ peer: await mint() }]);
      await expect.poll(() => events.some((e) => e.type === 'credentials.rotated')).toBe(true);
      const liar = await mint('spiffe://shop.test/ns/shop/sa/admin');
      agent.setSvids([{ peer: { ...liar, spiffeId: INVENTORY } }]);
      await expect.poll(() => events.some((e) => e.type === 'credentials.refused')).toBe(true);
      agent.refuse('permission-denied');
      await expect.poll(() => lines.some((l) => l.includes('PERMISSION_DENIED'))).toBe(true);
      agent.refuse(undefined);
      await agent.goAway();
      await agent.comeBack();
      agent.setSvids([{ peer: await mint() }]);
      await expect.poll(() => events.filter((e) => e.type === 'credentials.rotated').length, { timeout: 10_000 }).toBe(2);
    } finally {
      await app.close();
      await agent.close();
    }
    const text = [...lines, ...events.map((e) => inspect(e, { depth: 6 })), ...events.map((e) => JSON.stringify(e))].join('\n');
    expect(lines.some((l) => l.includes('loaded from the Workload API'))).toBe(true);
    expect(lines.some((l) => l.includes('refused'))).toBe(true);
    for (const peer of peers) {
      for (const fingerprint of keyFingerprints(peer)) expect(text).not.toContain(fingerprint);
    }
    expect(text).not.toMatch(/BEGIN (?:EC |RSA )?PRIVATE KEY/);
  });
});
