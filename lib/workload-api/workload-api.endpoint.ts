import { isIP } from 'node:net';
import { MtlsConfigError } from '../errors/mtls.errors.js';

/** The environment variable the SPIFFE Workload Endpoint standard names for the agent's address. */
export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/** A parsed Workload API address. */
export interface WorkloadApiEndpoint {
  /** As configured, for messages (`unix:///run/spire/agent.sock`). */
  readonly address: string;
  /** The gRPC target (`unix:///…`, `ipv4:…`, `ipv6:[…]:…`). */
  readonly target: string;
}

function invalid(option: string, address: string, problem: string): MtlsConfigError {
  return new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `${option} ${JSON.stringify(address)} ${problem}; use unix:///absolute/path/to/agent.sock or tcp://<IP>:<port> ` +
      '(SPIFFE Workload Endpoint §4)',
  );
}

/**
 * Parses a Workload API address as the SPIFFE Workload Endpoint standard allows it: `unix:` with an absolute path, or
 * `tcp:` with an IP address (never a host name: resolving it would let DNS choose who hands us our identity) and a
 * port; no query, fragment or user info. `option` names where the address came from, for the error.
 */
export function parseWorkloadApiEndpoint(address: string, option: string): WorkloadApiEndpoint {
  if (typeof address !== 'string' || address.trim() === '') throw invalid(option, String(address), 'is empty');
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw invalid(option, address, 'is not a URI');
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw invalid(option, address, 'must not carry a query, fragment or user info');
  }
  if (url.protocol === 'unix:') {
    if (url.host !== '') throw invalid(option, address, 'names a host; a unix address is unix:///absolute/path');
    const path = decodeURIComponent(url.pathname);
    if (!path.startsWith('/') || path === '/' || path.includes('\0')) {
      throw invalid(option, address, 'has no absolute socket path');
    }
    return { address, target: `unix://${path}` };
  }
  if (url.protocol === 'tcp:') {
    if (url.pathname !== '' && url.pathname !== '/') throw invalid(option, address, 'must not have a path');
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const family = isIP(host);
    if (family === 0) throw invalid(option, address, 'must name an IP address, not a host name');
    if (url.port === '') throw invalid(option, address, 'has no port');
    return { address, target: family === 4 ? `ipv4:${host}:${url.port}` : `ipv6:[${host}]:${url.port}` };
  }
  throw invalid(option, address, `has scheme ${JSON.stringify(url.protocol.slice(0, -1))}`);
}

/**
 * The endpoint of a `workloadApi` option: its `socket`, else `SPIFFE_ENDPOINT_SOCKET`. Throws MtlsConfigError naming
 * the option when neither is set or the address is malformed.
 */
export function resolveWorkloadApiEndpoint(
  socket: string | undefined,
  option: string,
  env: NodeJS.ProcessEnv = process.env,
): WorkloadApiEndpoint {
  if (socket !== undefined) return parseWorkloadApiEndpoint(socket, `MtlsModule option "${option}.socket"`);
  const fromEnv = env[SPIFFE_ENDPOINT_SOCKET];
  if (fromEnv === undefined || fromEnv === '') {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${option}" has no socket and ${SPIFFE_ENDPOINT_SOCKET} is not set: set "${option}.socket" ` +
        `(e.g. unix:///run/spire/agent-sockets/spire-agent.sock) or export ${SPIFFE_ENDPOINT_SOCKET}`,
    );
  }
  return parseWorkloadApiEndpoint(fromEnv, `${SPIFFE_ENDPOINT_SOCKET} (for MtlsModule option "${option}")`);
}
