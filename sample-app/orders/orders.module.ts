import { Module, type DynamicModule } from '@nestjs/common';
import { MtlsModule, type CredentialsSourceOptions, type MtlsTokensOptions } from 'nestjs-mtls';
import { SPIFFE_IDS } from '../common/sample-config.js';
import { AvailabilityController, INVENTORY_URL } from './availability.controller.js';
import { OrderTokensController } from './order-tokens.controller.js';

/** The orders service: availability for the frontend, read from inventory. */
@Module({})
export class OrdersModule {
  static register(credentials: CredentialsSourceOptions, inventoryUrl: string, tokens?: MtlsTokensOptions): DynamicModule {
    return {
      module: OrdersModule,
      imports: [
        MtlsModule.forRoot({
          credentials,
          peers: { frontend: SPIFFE_IDS.frontend, inventory: SPIFFE_IDS.inventory },
          ...(tokens === undefined ? {} : { tokens }),
        }),
      ],
      controllers: [AvailabilityController, ...(tokens === undefined ? [] : [OrderTokensController])],
      providers: [{ provide: INVENTORY_URL, useValue: inventoryUrl.replace(/\/+$/, '') }],
    };
  }
}
