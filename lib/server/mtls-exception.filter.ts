import { Catch, Injectable, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { MtlsError } from '../errors/mtls.errors.js';
import { LogRateLimiter } from '../observability/log-rate-limiter.js';
import { toHttpException } from './mtls-http-errors.js';

/**
 * Answers an {@link MtlsError} that escapes a handler — typically an `UpstreamError` from `MtlsHttpClient` — with the
 * status and fixed body of {@link toHttpException} (502 for a wrong upstream identity, 504 for a timeout), and logs
 * the details (upstream, expected and seen identity) on the server side only. Registered globally by `MtlsModule`.
 */
@Catch(MtlsError)
@Injectable()
export class MtlsExceptionFilter implements ExceptionFilter<MtlsError> {
  readonly #logger = new Logger('MtlsExceptionFilter');
  readonly #limiter = new LogRateLimiter(60);

  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(error: MtlsError, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw error;
    const exception = toHttpException(error);
    if (this.#limiter.admit() !== undefined) this.#logger.warn(`${error.code}: ${error.message}`);
    this.adapterHost.httpAdapter.reply(host.switchToHttp().getResponse(), exception.getResponse(), exception.getStatus());
  }
}
