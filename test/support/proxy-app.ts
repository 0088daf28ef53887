import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  AllowDnsNames,
  AllowPeers,
  forwardedCertificateDer,
  MtlsModule,
  mtlsHttpsOptions,
  Peer,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';

export const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
export const ADMIN = 'spiffe://shop.test/ns/ops/sa/admin';
export const PROXY = 'spiffe://shop.test/ns/edge/sa/envoy';

function describePeer(peer: PeerIdentity): Record<string, unknown> {
  const der = forwardedCertificateDer(peer);
  return { spiffeId: peer.spiffeId ?? null, source: peer.source, dnsNames: peer.dnsNames, forwardedDer: der?.length ?? 0 };
}

/** Routes of the proxy e2e suites: one per rule kind the proxy identity must satisfy. */
@Controller()
export class ProxyTestController {
  @Get('orders-only')
  @AllowPeers('orders')
  orders(@Peer() peer: PeerIdentity): Record<string, unknown> {
    return describePeer(peer);
  }

  @Get('admin-only')
  @AllowPeers(ADMIN)
  admin(@Peer() peer: PeerIdentity): Record<string, unknown> {
    return describePeer(peer);
  }

  @Get('legacy')
  @AllowDnsNames('legacy.example')
  legacy(@Peer() peer: PeerIdentity): Record<string, unknown> {
    return describePeer(peer);
  }
}

/** The HTTP adapters a proxy suite runs on; Fastify joins when the package supports it (`describe.each(ADAPTERS)`). */
export const ADAPTERS = ['express'] as const;
/** One of {@link ADAPTERS}. */
export type Adapter = (typeof ADAPTERS)[number];

/**
 * A real Nest app in proxy mode on `adapter`: plain HTTP on 127.0.0.1 for `trust: 'loopback'`, the package's mTLS
 * server otherwise. The app factory of every proxy e2e suite, so each can be parameterised over adapters.
 */
export async function startProxyApp(
  _adapter: Adapter,
  options: MtlsModuleOptions,
  controllers: Type[] = [ProxyTestController],
): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot({ peers: { orders: ORDERS }, ...options })], controllers })
  class ProxyAppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [ProxyAppModule] }).compile();
  const tls = options.proxy?.trust !== 'loopback';
  const app = moduleRef.createNestApplication({ ...(tls ? { httpsOptions: mtlsHttpsOptions() } : {}), logger: false });
  await app.listen(0, '127.0.0.1');
  return app;
}
