import 'reflect-metadata';
import { Controller, Get, Req, type INestApplication } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowAnyPeer, AllowPeers, MtlsGuard, MtlsHttpException, Peer, type PeerIdentity } from '../../lib/index.js';
import { callAs, TestPki } from '../../lib/testing/index.js';
import { startMtlsApp } from '../support/app.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';

class BaseController {
  @Get()
  list() {
    return 'ok';
  }
}

@Controller('admin-area')
@AllowPeers('admin')
class AdminAreaController extends BaseController {}

@Controller('public-area')
@AllowAnyPeer()
class PublicAreaController extends BaseController {}

describe('a handler inherited by two controllers', () => {
  let pki: TestPki;
  let app: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await startMtlsApp({ credentials: server.credentials, peers: { admin: ADMIN } }, [
      PublicAreaController,
      AdminAreaController,
    ]);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('gets the rule of the controller that serves it, whichever was seen first', async () => {
    const orders = await pki.peer(ORDERS);
    const admin = await pki.peer(ADMIN);
    expect((await callAs(app, orders).get('/public-area')).status).toBe(200);
    expect((await callAs(app, orders).get('/admin-area')).status).toBe(403);
    expect((await callAs(app, admin).get('/admin-area')).status).toBe(200);
  });
});

describe('contexts other than HTTP', () => {
  let pki: TestPki;
  let deny: INestApplication;
  let allow: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    deny = await startMtlsApp({ credentials: server.credentials }, [PublicAreaController]);
    allow = await startMtlsApp({ credentials: server.credentials, nonHttpContexts: 'allow' }, [PublicAreaController]);
  });

  afterAll(async () => {
    await deny?.close();
    await allow?.close();
  });

  function contextOf(type: string, args: unknown[]): ExecutionContextHost {
    const context = new ExecutionContextHost(args, PublicAreaController, PublicAreaController.prototype.list);
    context.setType(type);
    return context;
  }

  it.each(['rpc', 'ws'])('denies a %s handler by default, even under @AllowAnyPeer', (type) => {
    const guard = deny.get(MtlsGuard);
    expect(() => guard.canActivate(contextOf(type, [{}, {}]))).toThrow(MtlsHttpException);
    expect(allow.get(MtlsGuard).canActivate(contextOf(type, [{}, {}]))).toBe(true);
  });

  it('guards a GraphQL resolver by the socket of its request, and denies one without a TLS socket', () => {
    for (const app of [deny, allow]) {
      const guard = app.get(MtlsGuard);
      const plainSocket = { socket: {} };
      expect(() => guard.canActivate(contextOf('graphql', [{}, {}, { req: plainSocket }, {}]))).toThrow(
        expect.objectContaining({ mtlsCode: 'ERR_MTLS_PEER_UNAUTHENTICATED' }),
      );
      expect(() => guard.canActivate(contextOf('graphql', [{}, {}, {}, {}]))).toThrow(MtlsHttpException);
    }
  });
});

/** What `@Peer()` gives for the request a real TLS call made, read through an HTTP and a GraphQL context. */
@Controller('whoami')
@AllowAnyPeer()
class WhoAmIController {
  @Get()
  whoAmI(@Req() request: object, @Peer() viaHttp: PeerIdentity | undefined) {
    const factory = peerFactory(WhoAmIController, 'whoAmI');
    const graphql = (context: object) => {
      const host = new ExecutionContextHost([{}, {}, context, {}], WhoAmIController, WhoAmIController.prototype.whoAmI);
      host.setType('graphql');
      return factory(undefined, host)?.spiffeId ?? null;
    };
    const rpc = new ExecutionContextHost([request], WhoAmIController, WhoAmIController.prototype.whoAmI);
    rpc.setType('rpc');
    return {
      http: viaHttp?.spiffeId ?? null,
      graphqlReq: graphql({ req: request }),
      graphqlRequest: graphql({ request }),
      graphqlWithoutRequest: graphql({}),
      rpc: factory(undefined, rpc) ?? null,
    };
  }
}

/** The factory Nest calls for the `@Peer()` parameter of `method`: the decorator itself, not a copy of it. */
function peerFactory(
  controller: object,
  method: string,
): (data: unknown, context: ExecutionContextHost) => PeerIdentity | undefined {
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) as Record<string, { factory?: unknown }>;
  const factory = Object.values(args).find((arg) => typeof arg.factory === 'function')?.factory;
  return factory as (data: unknown, context: ExecutionContextHost) => PeerIdentity | undefined;
}

describe('@Peer()', () => {
  let pki: TestPki;
  let app: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials('spiffe://shop.test/ns/shop/sa/inventory');
    app = await startMtlsApp({ credentials: server.credentials }, [WhoAmIController]);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('reads the peer of a GraphQL context (req or request) as the guard does, and nothing from other transports', async () => {
    const response = await callAs(app, await pki.peer(ORDERS)).get('/whoami');

    expect(response.status).toBe(200);
    expect(response.json()).toEqual({
      http: ORDERS,
      graphqlReq: ORDERS,
      graphqlRequest: ORDERS,
      graphqlWithoutRequest: null,
      rpc: null,
    });
  });
});
