import type { Authorizer } from './authorization/authorizer.js';
import { compileNamedPeers } from './authorization/peer-rule.js';
import { resolveCredentialFiles } from './credentials/credentials-loader.js';
import type { CredentialFiles, CredentialUsage } from './credentials/credentials.interfaces.js';
import { MtlsConfigError } from './errors/mtls.errors.js';
import { parseSpiffeId } from './identity/spiffe-id.js';
import type { MtlsModuleOptions, TlsPolicyOptions, UpstreamOptions } from './mtls.options.js';
import { upstreamUrl } from './client/upstream-registry.js';
import {
  isWorkloadApiCredentials,
  resolveWorkloadApiOptions,
  type ResolvedWorkloadApiOptions,
} from './workload-api/workload-api.options.js';
import { resolveWorkloadApiEndpoint } from './workload-api/workload-api.endpoint.js';
import { workloadApiLabels } from './workload-api/x509-svid-response.js';
import { resolveTokenOptions, type ResolvedTokenOptions } from './tokens/token-config.js';
import type { MtlsProxyOptions, ResolvedProxyOptions } from './proxy/proxy.options.js';

/** Resolves the address of each `jwks: { workloadApi }` issuer: its `socket`, else `SPIFFE_ENDPOINT_SOCKET`. */
function withJwtBundleEndpoints(tokens: ResolvedTokenOptions): ResolvedTokenOptions {
  const issuers = new Map(tokens.issuers);
  for (const [name, issuer] of issuers) {
    if (issuer.jwks.kind !== 'workloadApi') continue;
    const { address } = resolveWorkloadApiEndpoint(issuer.jwks.socket, `tokens.issuers.${name}.jwks.workloadApi`);
    issuers.set(name, { ...issuer, jwks: { ...issuer.jwks, socket: address } });
  }
  return { issuers };
}

/** Module options with every default applied and every value checked, computed once at startup. */
export interface ResolvedMtlsOptions {
  readonly credentialFiles: CredentialFiles;
  /** A separate client credential set, or undefined to reuse the identity set. */
  readonly clientCredentialFiles: CredentialFiles | undefined;
  /** The identity set streams from the Workload API (then `credentialFiles` holds labels, not paths). */
  readonly workloadApi: ResolvedWorkloadApiOptions | undefined;
  /** The separate client set streams from the Workload API. */
  readonly clientWorkloadApi: ResolvedWorkloadApiOptions | undefined;
  readonly namedPeers: ReadonlyMap<string, string>;
  readonly defaultPolicy: 'deny' | 'any-peer';
  readonly mode: 'strict' | 'permissive';
  readonly nonHttpContexts: 'deny' | 'allow';
  /** The connection-level rule, applied right after each handshake. */
  readonly connectionAuthorizer: Authorizer | undefined;
  readonly tls: Readonly<TlsPolicyOptions> & { readonly minVersion: 'TLSv1.2' | 'TLSv1.3' };
  readonly expiryWarningMs: number | undefined;
  readonly logRateLimitPerMinute: number;
  readonly client: {
    readonly upstreams: ReadonlyMap<string, UpstreamOptions>;
    readonly connectionsPerOrigin: number;
    readonly timeoutMs: number;
    /** Largest response body a call accepts, in bytes. */
    readonly maxResponseBytes: number;
    /** Offer HTTP/2 (ALPN) to upstreams. */
    readonly http2: boolean;
  };
  readonly reload: {
    readonly enabled: boolean;
    readonly debounceMs: number;
    readonly pollIntervalMs: number;
    readonly maxRetryDelayMs: number;
  };
  /** Bearer token issuers (empty without option `tokens`). */
  readonly tokens: ResolvedTokenOptions;
  /** Identities from a trusted proxy's header; undefined: from the TLS connection. */
  readonly proxy: ResolvedProxyOptions | undefined;
}

/**
 * What each credential set's leaf must be allowed to do: without a separate client set, the identity certificate
 * also authenticates outbound calls.
 */
export function credentialUsages(set: 'identity' | 'client', options: ResolvedMtlsOptions): readonly CredentialUsage[] {
  if (set === 'client') return ['clientAuth'];
  return options.clientCredentialFiles === undefined ? ['serverAuth', 'clientAuth'] : ['serverAuth'];
}

const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `MtlsModule option "${option}" is ${JSON.stringify(value)}; use one of ${allowed.map((a) => `'${a}'`).join(', ')}`,
  );
}

function wholeNumber(option: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min) return value;
  throw new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `MtlsModule option "${option}" is ${JSON.stringify(value)}; use a whole number ≥ ${min}`,
  );
}

function bool(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  throw new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `MtlsModule option "${option}" is ${JSON.stringify(value)}; use true or false`,
  );
}

function optionalString(option: string, value: unknown): string | undefined {
  if (value === undefined || (typeof value === 'string' && value !== '')) return value;
  throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `MtlsModule option "${option}" must be a non-empty string`);
}

/** An authorizer made by the authorize… functions (a function carrying its rule's description), or undefined. */
function authorizerOption(option: string, value: unknown): Authorizer | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'function' && typeof (value as { description?: unknown }).description === 'string') {
    return value as Authorizer;
  }
  throw new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `MtlsModule option "${option}" must be an authorizer made by the authorize… functions, e.g. authorizeMemberOf('shop.test'); ` +
      `got ${value === null ? 'null' : typeof value}`,
  );
}

/** Refuses keys the options object does not define: a misspelt option must not be silently ignored. */
function knownKeys(option: string, value: unknown, keys: readonly string[]): void {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `MtlsModule option "${option}" must be an object`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      const path = option === '' ? key : `${option}.${key}`;
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "${path}" is not an option; known options${option === '' ? '' : ` of "${option}"`}: ${keys.join(', ')}`,
      );
    }
  }
}

const MODULE_KEYS = [
  'credentials',
  'peers',
  'defaultPolicy',
  'mode',
  'tls',
  'connectionAuthorizer',
  'nonHttpContexts',
  'expiryWarningMs',
  'logRateLimitPerMinute',
  'client',
  'reload',
  'tokens',
  'proxy',
] as const;
const TLS_KEYS = ['minVersion', 'maxVersion', 'ciphers', 'ecdhCurve'] as const;
const CLIENT_KEYS = ['credentials', 'upstreams', 'connectionsPerOrigin', 'timeoutMs', 'maxResponseBytes', 'http2'] as const;
const RELOAD_KEYS = ['enabled', 'debounceMs', 'pollIntervalMs', 'maxRetryDelayMs'] as const;
const PROXY_KEYS = ['header', 'trust', 'element', 'verifyChain', 'requireCertificate', 'maxHeaderBytes'] as const;

function proxyTrust(trust: unknown): ResolvedProxyOptions['trust'] {
  if (trust === 'loopback') return { kind: 'loopback' };
  const spiffeIds = (trust as { spiffeIds?: unknown } | null)?.spiffeIds;
  if (typeof trust !== 'object' || !Array.isArray(spiffeIds) || spiffeIds.length === 0) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "proxy.trust" is ${JSON.stringify(trust)}; use 'loopback' (a sidecar on this host) or ` +
        "{ spiffeIds: ['spiffe://…'] } (the proxy's own SPIFFE IDs, checked on its mTLS connection)",
    );
  }
  knownKeys('proxy.trust', trust, ['spiffeIds']);
  for (const [index, id] of spiffeIds.entries()) {
    try {
      if (typeof id !== 'string' || parseSpiffeId(id).path === '') throw new Error('not a workload SPIFFE ID');
    } catch (error) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "proxy.trust.spiffeIds[${index}]" is ${JSON.stringify(id)}: ${(error as Error).message}; ` +
          "use the proxy's SPIFFE ID, e.g. 'spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account'",
      );
    }
  }
  return { kind: 'spiffe-ids', spiffeIds: new Set(spiffeIds as string[]) };
}

function resolveProxy(proxy: MtlsProxyOptions | undefined, mode: unknown): ResolvedProxyOptions | undefined {
  if (proxy === undefined) return undefined;
  knownKeys('proxy', proxy, PROXY_KEYS);
  if (proxy.header === undefined) {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `MtlsModule option "proxy.header" is missing; use 'xfcc' or 'rfc9440'`);
  }
  const trust = proxyTrust(proxy.trust);
  if (trust.kind === 'loopback' && mode !== undefined && mode !== 'strict') {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "mode" is ${JSON.stringify(mode)}, but with proxy.trust 'loopback' the application serves plain HTTP ` +
        'and has no TLS handshake to relax: remove "mode"',
    );
  }
  const header = oneOf('proxy.header', proxy.header, ['xfcc', 'rfc9440'], 'xfcc');
  for (const option of ['element', 'requireCertificate'] as const) {
    if (header === 'rfc9440' && proxy[option] !== undefined) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "proxy.${option}" applies to proxy.header 'xfcc' only (RFC 9440 forwards one certificate): remove it`,
      );
    }
  }
  return {
    header,
    trust,
    element: oneOf('proxy.element', proxy.element, ['last', 'first'], 'last'),
    verifyChain: bool('proxy.verifyChain', proxy.verifyChain, true),
    requireCertificate: bool('proxy.requireCertificate', proxy.requireCertificate, false),
    maxHeaderBytes: wholeNumber('proxy.maxHeaderBytes', proxy.maxHeaderBytes, 65_536, 1024),
  };
}

/** Checks module options and applies defaults. Throws {@link MtlsConfigError} naming the option and the fix. */
export function resolveMtlsOptions(options: MtlsModuleOptions): ResolvedMtlsOptions {
  if (options === null || typeof options !== 'object') {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'MtlsModule options are missing: pass { credentials: { dir } }');
  }
  if (options.credentials === undefined) {
    throw new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      'MtlsModule option "credentials" is missing: pass { dir } (Kubernetes Secret layout) or { certFile, keyFile, caFile }',
    );
  }
  knownKeys('', options, MODULE_KEYS);
  knownKeys('tls', options.tls, TLS_KEYS);
  knownKeys('client', options.client, CLIENT_KEYS);
  knownKeys('reload', options.reload, RELOAD_KEYS);
  const tls = options.tls ?? {};
  const ciphers = optionalString('tls.ciphers', tls.ciphers);
  const ecdhCurve = optionalString('tls.ecdhCurve', tls.ecdhCurve);
  const minVersion = oneOf('tls.minVersion', tls.minVersion, TLS_VERSIONS, 'TLSv1.2');
  const maxVersion = oneOf('tls.maxVersion', tls.maxVersion, TLS_VERSIONS, 'TLSv1.3');
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', 'MtlsModule option "tls.maxVersion" is below "tls.minVersion"');
  }
  const upstreams = new Map<string, UpstreamOptions>();
  for (const [name, upstream] of Object.entries(options.client?.upstreams ?? {})) {
    upstreamUrl(name, upstream?.url);
    if (upstream.expectPeer === undefined) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `MtlsModule option "client.upstreams.${name}.expectPeer" is missing: name the peer or SPIFFE ID the server must present`,
      );
    }
    upstreams.set(name, upstream);
  }
  const workloadApi = isWorkloadApiCredentials(options.credentials)
    ? resolveWorkloadApiOptions(options.credentials, 'credentials')
    : undefined;
  const clientCredentials = options.client?.credentials;
  const clientWorkloadApi = isWorkloadApiCredentials(clientCredentials)
    ? resolveWorkloadApiOptions(clientCredentials, 'client.credentials')
    : undefined;
  return {
    credentialFiles: isWorkloadApiCredentials(options.credentials)
      ? workloadApiLabels(workloadApi!.endpoint.address)
      : resolveCredentialFiles(options.credentials),
    clientCredentialFiles:
      clientCredentials === undefined
        ? undefined
        : isWorkloadApiCredentials(clientCredentials)
          ? workloadApiLabels(clientWorkloadApi!.endpoint.address)
          : resolveCredentialFiles(clientCredentials, 'client.credentials'),
    workloadApi,
    clientWorkloadApi,
    namedPeers: compileNamedPeers(options.peers),
    defaultPolicy: oneOf('defaultPolicy', options.defaultPolicy, ['deny', 'any-peer'], 'deny'),
    mode: oneOf('mode', options.mode, ['strict', 'permissive'], 'strict'),
    connectionAuthorizer: authorizerOption('connectionAuthorizer', options.connectionAuthorizer),
    nonHttpContexts: oneOf('nonHttpContexts', options.nonHttpContexts, ['deny', 'allow'], 'deny'),
    tls: {
      minVersion,
      maxVersion,
      ...(ciphers === undefined ? {} : { ciphers }),
      ...(ecdhCurve === undefined ? {} : { ecdhCurve }),
    },
    expiryWarningMs:
      options.expiryWarningMs === undefined ? undefined : wholeNumber('expiryWarningMs', options.expiryWarningMs, 0, 0),
    logRateLimitPerMinute: wholeNumber('logRateLimitPerMinute', options.logRateLimitPerMinute, 60, 1),
    client: {
      upstreams,
      connectionsPerOrigin: wholeNumber('client.connectionsPerOrigin', options.client?.connectionsPerOrigin, 16, 1),
      timeoutMs: wholeNumber('client.timeoutMs', options.client?.timeoutMs, 10_000, 1),
      maxResponseBytes: wholeNumber('client.maxResponseBytes', options.client?.maxResponseBytes, 10 * 1024 * 1024, 0),
      http2: bool('client.http2', options.client?.http2, false),
    },
    reload: {
      enabled: bool('reload.enabled', options.reload?.enabled, true),
      debounceMs: wholeNumber('reload.debounceMs', options.reload?.debounceMs, 250, 0),
      pollIntervalMs: wholeNumber('reload.pollIntervalMs', options.reload?.pollIntervalMs, 60_000, 0),
      maxRetryDelayMs: wholeNumber('reload.maxRetryDelayMs', options.reload?.maxRetryDelayMs, 5_000, 10),
    },
    tokens: withJwtBundleEndpoints(resolveTokenOptions(options.tokens)),
    proxy: resolveProxy(options.proxy, options.mode),
  };
}
