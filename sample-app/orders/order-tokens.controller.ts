import { Controller, Param, Post } from '@nestjs/common';
import type { JWTPayload } from 'jose';
import { AllowPeers, Peer, RequireToken, Token, type PeerIdentity } from 'nestjs-mtls';

/** What the order routes answer. */
export interface OrderReceipt {
  sku: string;
  user: string | undefined;
  caller: string | undefined;
}

/**
 * Orders placed by end users through the web frontend: the frontend must be the caller (mTLS) AND relay a user token
 * from the shop's issuer. A refund also needs the token bound to the frontend's certificate (RFC 8705).
 */
@Controller('orders')
@AllowPeers('frontend')
export class OrderTokensController {
  @Post(':sku')
  @RequireToken('users')
  place(@Param('sku') sku: string, @Token() claims: JWTPayload, @Peer() caller: PeerIdentity): OrderReceipt {
    return { sku, user: claims.sub, caller: caller.spiffeId };
  }

  @Post(':sku/refund')
  @RequireToken('users', { bind: 'certificate' })
  refund(@Param('sku') sku: string, @Token() claims: JWTPayload, @Peer() caller: PeerIdentity): OrderReceipt {
    return { sku, user: claims.sub, caller: caller.spiffeId };
  }
}
