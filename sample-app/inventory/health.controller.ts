import { Controller, Get } from '@nestjs/common';
import { AllowTrustDomain } from 'nestjs-mtls';

/** Liveness, for any workload of the trust domain. */
@Controller()
export class HealthController {
  @Get('healthz')
  @AllowTrustDomain('shop.test')
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
