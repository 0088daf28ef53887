import { Module, type DynamicModule } from '@nestjs/common';
import { register } from 'prom-client';
import { MTLS_METRICS_REGISTRY } from './mtls-metrics.constants.js';
import { MtlsMetrics, type MetricsRegistry } from './mtls.metrics.js';

/** Options of {@link MtlsMetricsModule.forRoot}. */
export interface MtlsMetricsModuleOptions {
  /** The registry to register the metrics in. @default prom-client's global `register` */
  registry?: MetricsRegistry;
}

/**
 * Registers the mTLS metrics ({@link MtlsMetrics}) in a prom-client registry for the application's lifetime.
 * Needs `MtlsModule` in the application. Exports `MtlsMetrics` and the registry (token `MTLS_METRICS_REGISTRY`).
 * @example
 * ```ts
 * imports: [MtlsModule.forRoot({ credentials }), MtlsMetricsModule.forRoot({ registry })]
 * ```
 */
@Module({})
export class MtlsMetricsModule {
  /** The module, registering into `options.registry` or the global registry. */
  static forRoot(options: MtlsMetricsModuleOptions = {}): DynamicModule {
    return {
      module: MtlsMetricsModule,
      providers: [{ provide: MTLS_METRICS_REGISTRY, useValue: options.registry ?? register }, MtlsMetrics],
      exports: [MtlsMetrics, MTLS_METRICS_REGISTRY],
    };
  }
}
