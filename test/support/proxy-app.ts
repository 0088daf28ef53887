import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  AllowDnsNames,
  AllowPeers,
  forwardedCertificateDer,
  MtlsModule,
  Peer,
  type MtlsModuleOptions,
  type PeerIdentity,
} from '../../lib/index.js';
import { createCellApp, SERVER_CELLS, type ServerCell } from './cells.js';

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

/**
 * The cells of `trust: 'loopback'`: the application serves plain HTTP on 127.0.0.1 behind its sidecar, cleartext
 * HTTP/2 (h2c, `new FastifyAdapter({ http2: true })`) on the HTTP/2 cell.
 */
export const LOOPBACK_CELLS = SERVER_CELLS;
/** The cells of proxy trust by SPIFFE ID: the package's mTLS server, every cell. */
export const SPIFFE_CELLS = SERVER_CELLS;

/**
 * A real Nest app in proxy mode on `cell`: plain HTTP on 127.0.0.1 for `trust: 'loopback'` (a plain `FastifyAdapter`
 * on Fastify), the package's mTLS server otherwise. The app factory of every proxy e2e suite.
 */
export async function startProxyApp(
  cell: ServerCell,
  options: MtlsModuleOptions,
  controllers: Type[] = [ProxyTestController],
): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot({ peers: { orders: ORDERS }, ...options })], controllers })
  class ProxyAppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [ProxyAppModule] }).compile();
  const app = createCellApp(moduleRef, cell, { https: options.proxy?.trust !== 'loopback' });
  await app.listen(0, '127.0.0.1');
  return app;
}
