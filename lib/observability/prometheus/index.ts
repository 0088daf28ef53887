export { MtlsMetrics, MAX_ROUTE_LABELS } from './mtls.metrics.js';
export type { MetricsRegistry } from './mtls.metrics.js';
export { MtlsMetricsModule } from './mtls-metrics.module.js';
export type { MtlsMetricsModuleOptions } from './mtls-metrics.module.js';
export { MTLS_METRIC_NAMES, MTLS_METRICS_REGISTRY } from './mtls-metrics.constants.js';
export { BoundedLabel, deniedReasonLabel, handshakeReasonLabel, OTHER_LABEL } from './metric-labels.js';
