import { Module, type DynamicModule } from '@nestjs/common';
import { MtlsModule, type MtlsModuleOptions, type MtlsProxyOptions, type MtlsTokensOptions } from 'nestjs-mtls';
import { SPIFFE_IDS } from '../common/sample-config.js';
import { AvailabilityController, INVENTORY_URL } from './availability.controller.js';
import { OrderTokensController } from './order-tokens.controller.js';

/** The orders service: availability for the frontend, read from inventory. */
@Module({})
export class OrdersModule {
  /** `proxy`: identities from a trusted proxy's header (`MTLS_PROXY`); `http2`: offer HTTP/2 to inventory (`HTTP2=1`). */
  static register(
    credentials: MtlsModuleOptions['credentials'],
    inventoryUrl: string,
    tokens?: MtlsTokensOptions,
    proxy?: MtlsProxyOptions,
    http2 = false,
  ): DynamicModule {
    return {
      module: OrdersModule,
      imports: [
        MtlsModule.forRoot({
          credentials,
          peers: { frontend: SPIFFE_IDS.frontend, inventory: SPIFFE_IDS.inventory },
          ...(tokens === undefined ? {} : { tokens }),
          ...(proxy === undefined ? {} : { proxy }),
          ...(http2 ? { client: { http2 } } : {}),
        }),
      ],
      controllers: [AvailabilityController, ...(tokens === undefined ? [] : [OrderTokensController])],
      providers: [{ provide: INVENTORY_URL, useValue: inventoryUrl.replace(/\/+$/, '') }],
    };
  }
}
