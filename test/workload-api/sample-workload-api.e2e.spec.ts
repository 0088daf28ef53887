import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { describe, expect, it } from 'vitest';
import { mtlsHttpsOptions } from '../../lib/index.js';
import { callAs, TestPki, WorkloadApiTestServer } from '../../lib/testing/index.js';
import { credentialsFromEnv, SampleConfigError, SPIFFE_IDS } from '../../sample-app/common/sample-config.js';
import { InventoryModule } from '../../sample-app/inventory/inventory.module.js';

describe('sample services with SPIFFE_ENDPOINT_SOCKET', () => {
  it('take their credentials from the Workload API instead of MTLS_* files', () => {
    expect(credentialsFromEnv('inventory', { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/agent.sock' })).toEqual({ workloadApi: {} });
    expect(() => credentialsFromEnv('inventory', { SPIFFE_ENDPOINT_SOCKET: 'unix:///run/agent.sock', MTLS_DIR: '/tls' })).toThrow(
      new SampleConfigError('set either SPIFFE_ENDPOINT_SOCKET or MTLS_DIR, not both'),
    );
  });

  it('inventory serves the SVID its agent hands it and admits orders on GET /stock/:sku', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const agent = await WorkloadApiTestServer.start();
    const svid = await pki.peer({ spiffeId: SPIFFE_IDS.inventory, ipAddresses: ['127.0.0.1'] });
    agent.setSvids([{ peer: svid }]);
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    process.env.SPIFFE_ENDPOINT_SOCKET = agent.address;
    try {
      const app = await NestFactory.create(
        InventoryModule.register(credentialsFromEnv('inventory', { SPIFFE_ENDPOINT_SOCKET: agent.address })),
        {
          httpsOptions: mtlsHttpsOptions(),
          logger: false,
        },
      );
      await app.listen(0, '127.0.0.1');
      try {
        const res = await callAs(app, await pki.peer(SPIFFE_IDS.orders)).get('/stock/42');
        expect(res.status).toBe(200);
        expect(agent.calls.get('FetchX509SVID')).toBe(1);
      } finally {
        await app.close();
      }
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
      await agent.close();
    }
  });
});
