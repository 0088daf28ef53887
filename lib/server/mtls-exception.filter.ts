import { Catch, Inject, Injectable, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { UpstreamError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { RateLimitedLogger } from '../observability/log-rate-limiter.js';
import { toHttpException } from './mtls-http-errors.js';

/**
 * Answers an `UpstreamError` from `MtlsHttpClient` that escapes an HTTP handler with the status and fixed body of
 * {@link toHttpException} (502 for a wrong upstream identity or a failed call, 504 for a timeout), and logs the
 * details (upstream, expected and seen identity) on the server side only. Opt-in, like any Nest filter.
 * @example
 * ```ts
 * @UseFilters(MtlsExceptionFilter)
 * @Controller('orders')
 * export class OrdersController {}
 * ```
 */
@Catch(UpstreamError)
@Injectable()
export class MtlsExceptionFilter implements ExceptionFilter<UpstreamError> {
  readonly #logger = new Logger('MtlsExceptionFilter');
  readonly #failures: RateLimitedLogger;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(MTLS_OPTIONS) options: ResolvedMtlsOptions,
  ) {
    this.#failures = new RateLimitedLogger(this.#logger, options.logRateLimitPerMinute);
  }

  catch(error: UpstreamError, host: ArgumentsHost): void {
    const exception = toHttpException(error);
    this.#failures.warn(() => `${error.code}: ${error.message}`);
    this.adapterHost.httpAdapter.reply(host.switchToHttp().getResponse(), exception.getResponse(), exception.getStatus());
  }
}
