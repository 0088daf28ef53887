export { MtlsHealthIndicator } from './mtls.health.js';
export type { MtlsHealthCheckOptions, MtlsHealthDetails, MtlsHealthSetDetails } from './mtls.health.js';
