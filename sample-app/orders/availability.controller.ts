import { BadGatewayException, Controller, Get, Inject, Param, UseFilters } from '@nestjs/common';
import { AllowPeers, MtlsExceptionFilter, MtlsHttpClient } from 'nestjs-mtls';

/** What inventory answers on GET /stock/:sku. */
export interface Stock {
  sku: string;
  available: number;
  caller: string | undefined;
}

/** Injection token of inventory's base URL. */
export const INVENTORY_URL = Symbol('INVENTORY_URL');

/** Availability for the web frontend, asked of inventory over mTLS. */
@Controller('orders')
@UseFilters(MtlsExceptionFilter)
export class AvailabilityController {
  constructor(
    private readonly http: MtlsHttpClient,
    @Inject(INVENTORY_URL) private readonly inventoryUrl: string,
  ) {}

  @Get(':sku/availability')
  @AllowPeers('frontend')
  async availability(@Param('sku') sku: string): Promise<Stock> {
    // A server that is not inventory fails the handshake: MtlsExceptionFilter turns the UpstreamError into a 502.
    const response = await this.http.get<Stock>(`${this.inventoryUrl}/stock/${encodeURIComponent(sku)}`, {
      expectPeer: 'inventory',
    });
    if (!response.ok) {
      throw new BadGatewayException({
        statusCode: 502,
        error: 'Bad Gateway',
        code: 'INVENTORY_UNAVAILABLE',
        message: `inventory answered ${response.status}`,
      });
    }
    return response.body;
  }
}
