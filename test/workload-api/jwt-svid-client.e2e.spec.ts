import { Controller, Get, Headers } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, MtlsHttpClient } from '../../lib/index.js';
import { TestPki } from '../../lib/testing/index.js';
import { WorkloadApiTestServer } from '../../lib/testing/workload-api-server.js';
import { WorkloadJwtSource } from '../../lib/workload-api/jwt-source.js';
import { startMtlsApp } from '../support/app.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

/** The verifier side: the JWT bundle of the caller's trust domain, from the same agent, through jose. */
let verifyingJwt: WorkloadJwtSource;

@Controller('whoami')
class TokenController {
  @Get()
  @AllowAnyPeer()
  async who(@Headers('authorization') authorization: string): Promise<{ sub: string | undefined }> {
    const bundle = await verifyingJwt.jwtBundleFor('shop.test');
    const { payload } = await jwtVerify(
      authorization.replace(/^Bearer /, ''),
      createLocalJWKSet(bundle as unknown as JSONWebKeySet),
      {
        audience: INVENTORY,
        algorithms: ['ES256'],
      },
    );
    return { sub: payload.sub };
  }
}

describe('JWT-SVIDs end to end: MtlsHttpClient token from the Workload API, verified with jose against the JWT bundle', () => {
  let agent: WorkloadApiTestServer;
  let inventory: INestApplication;
  let orders: INestApplication;
  let jwt: WorkloadJwtSource;

  beforeAll(async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    agent = await WorkloadApiTestServer.start();
    agent.setSvids([{ peer: await pki.peer({ spiffeId: ORDERS, ipAddresses: ['127.0.0.1'] }) }]);
    agent.addJwtAuthority('shop.test');
    verifyingJwt = await WorkloadJwtSource.connect({ socket: agent.address });
    jwt = await WorkloadJwtSource.connect({ socket: agent.address });
    inventory = await startMtlsApp({ credentials: (await pki.credentials(INVENTORY)).credentials }, [TokenController]);
    orders = await startMtlsApp({ credentials: { workloadApi: { socket: agent.address } } }, []);
  });

  afterAll(async () => {
    await orders?.close();
    await inventory?.close();
    jwt?.close();
    verifyingJwt?.close();
    await agent?.close();
  });

  it('sends a JWT-SVID for the audience, fetched once and cached, that the upstream verifies', async () => {
    const http = orders.get(MtlsHttpClient);
    const url = `https://127.0.0.1:${(inventory.getHttpServer().address() as AddressInfo).port}/whoami`;
    for (let i = 0; i < 3; i++) {
      const res = await http.get(url, { expectPeer: INVENTORY, token: jwt.tokenFor(INVENTORY) });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ sub: ORDERS });
    }
    expect(agent.calls.get('FetchJWTSVID')).toBe(1);
  });
});
