import { Module, type DynamicModule } from '@nestjs/common';
import { MtlsModule, type MtlsModuleOptions } from 'nestjs-mtls';
import { SPIFFE_IDS } from '../common/sample-config.js';
import { AvailabilityController, INVENTORY_URL } from './availability.controller.js';

/** The orders service: availability for the frontend, read from inventory. */
@Module({})
export class OrdersModule {
  static register(credentials: MtlsModuleOptions['credentials'], inventoryUrl: string): DynamicModule {
    return {
      module: OrdersModule,
      imports: [
        MtlsModule.forRoot({
          credentials,
          peers: { frontend: SPIFFE_IDS.frontend, inventory: SPIFFE_IDS.inventory },
        }),
      ],
      controllers: [AvailabilityController],
      providers: [{ provide: INVENTORY_URL, useValue: inventoryUrl.replace(/\/+$/, '') }],
    };
  }
}
