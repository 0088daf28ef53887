import { Module, type DynamicModule } from '@nestjs/common';
import { MtlsModule, type MtlsModuleOptions, type MtlsProxyOptions } from 'nestjs-mtls';
import { SPIFFE_IDS } from '../common/sample-config.js';
import { AdminController } from './admin.controller.js';
import { HealthController } from './health.controller.js';
import { StockController } from './stock.controller.js';

/** The inventory service: stock for orders, reindex for admin, health for the trust domain. */
@Module({})
export class InventoryModule {
  static register(credentials: MtlsModuleOptions['credentials'], proxy?: MtlsProxyOptions): DynamicModule {
    return {
      module: InventoryModule,
      imports: [
        MtlsModule.forRoot({
          credentials,
          peers: { orders: SPIFFE_IDS.orders, admin: SPIFFE_IDS.admin },
          ...(proxy === undefined ? {} : { proxy }),
        }),
      ],
      controllers: [StockController, AdminController, HealthController],
    };
  }
}
