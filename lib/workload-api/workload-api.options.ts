import { MtlsConfigError } from '../errors/mtls.errors.js';
import { resolveWorkloadApiEndpoint, type WorkloadApiEndpoint } from './workload-api.endpoint.js';

/** Credentials streamed from the SPIFFE Workload API (a SPIRE agent) instead of files. */
export interface WorkloadApiOptions {
  /** `unix:///path/to/agent.sock` or `tcp://<IP>:<port>`. @default the `SPIFFE_ENDPOINT_SOCKET` environment variable */
  socket?: string;
  /** Which X509-SVID when the agent serves several: its SPIFFE ID (`spiffe://…`) or its hint. @default the first */
  svid?: string;
  /** How long startup waits for the first X509-SVID before failing. @default 30_000 */
  startupTimeoutMs?: number;
}

/** The `credentials` (or `client.credentials`) shape that selects the Workload API. */
export interface WorkloadApiCredentialsOptions {
  workloadApi: WorkloadApiOptions;
}

/** {@link WorkloadApiOptions} checked, with defaults. */
export interface ResolvedWorkloadApiOptions {
  readonly endpoint: WorkloadApiEndpoint;
  readonly svid: string | undefined;
  readonly startupTimeoutMs: number;
}

const KEYS = ['socket', 'svid', 'startupTimeoutMs'];

/** True when a `credentials` option selects the Workload API. */
export function isWorkloadApiCredentials(options: unknown): options is WorkloadApiCredentialsOptions {
  return options !== null && typeof options === 'object' && 'workloadApi' in options;
}

/** Checks a `credentials: { workloadApi }` option. Throws MtlsConfigError naming the option and the fix. */
export function resolveWorkloadApiOptions(
  options: WorkloadApiCredentialsOptions,
  optionName: string,
): ResolvedWorkloadApiOptions {
  const name = `${optionName}.workloadApi`;
  const others = Object.keys(options).filter(
    (key) => key !== 'workloadApi' && (options as unknown as Record<string, unknown>)[key] !== undefined,
  );
  if (others.length > 0) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${optionName}" mixes workloadApi with ${others.map((k) => `"${k}"`).join(', ')}: the Workload API ` +
        'delivers certificate, key, bundle and CRLs itself; use either { workloadApi } or files',
    );
  }
  const value: unknown = options.workloadApi;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${name}" must be an object ({} to use SPIFFE_ENDPOINT_SOCKET)`,
    );
  }
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!KEYS.includes(key)) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "${name}.${key}" is not an option; known options: ${KEYS.join(', ')}`,
      );
    }
  }
  const { socket, svid, startupTimeoutMs } = fields;
  if (socket !== undefined && typeof socket !== 'string') {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `MtlsModule option "${name}.socket" must be a string`);
  }
  if (svid !== undefined && (typeof svid !== 'string' || svid === '')) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${name}.svid" must be a non-empty hint or SPIFFE ID`,
    );
  }
  if (
    startupTimeoutMs !== undefined &&
    !(typeof startupTimeoutMs === 'number' && Number.isInteger(startupTimeoutMs) && startupTimeoutMs >= 1)
  ) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${name}.startupTimeoutMs" is ${JSON.stringify(startupTimeoutMs)}; use a whole number ≥ 1`,
    );
  }
  return {
    endpoint: resolveWorkloadApiEndpoint(socket, name),
    svid,
    startupTimeoutMs: startupTimeoutMs ?? 30_000,
  };
}
