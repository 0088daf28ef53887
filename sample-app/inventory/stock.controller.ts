import { Controller, Get, Param } from '@nestjs/common';
import { AllowPeers, Peer, type PeerIdentity } from 'nestjs-mtls';

const STOCK: Readonly<Record<string, number>> = { '42': 7, '7': 0, '1001': 125 };

/** Stock levels, for the orders service only. */
@Controller('stock')
@AllowPeers('orders')
export class StockController {
  @Get(':sku')
  get(@Param('sku') sku: string, @Peer() caller: PeerIdentity): { sku: string; available: number; caller: string | undefined } {
    return { sku, available: STOCK[sku] ?? 0, caller: caller.spiffeId };
  }
}
