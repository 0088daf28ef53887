import { Controller, HttpCode, Post } from '@nestjs/common';
import { AllowPeers, Peer, type PeerIdentity } from 'nestjs-mtls';

/** Operations, for the admin identity only. */
@Controller('admin')
@AllowPeers('admin')
export class AdminController {
  @Post('reindex')
  @HttpCode(202)
  reindex(@Peer() caller: PeerIdentity): { status: 'reindexing'; requestedBy: string | undefined } {
    return { status: 'reindexing', requestedBy: caller.spiffeId };
  }
}
