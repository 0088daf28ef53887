import { isAbsolute, resolve } from 'node:path';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import type { MtlsTokensOptions, TokenAlgorithm } from './tokens.options.js';

/** Every algorithm a token issuer may be pinned to: asymmetric signatures only. */
export const ASYMMETRIC_ALGORITHMS: readonly TokenAlgorithm[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]);

/** Where an issuer's keys come from, checked. */
export type ResolvedJwksSource =
  | { readonly kind: 'file'; readonly file: string }
  | {
      readonly kind: 'url';
      readonly url: URL;
      readonly caFile: string | undefined;
      readonly expectPeer: string | { readonly hostname: string } | undefined;
      readonly refreshMs: number;
      readonly cooldownMs: number;
      readonly staleIfErrorMs: number;
      readonly timeoutMs: number;
    }
  | {
      readonly kind: 'workloadApi';
      /** Trust domain name; undefined: the trust domain of each token's `sub`. */
      readonly trustDomain: string | undefined;
      /** As configured; undefined: `SPIFFE_ENDPOINT_SOCKET` (the module resolves and checks it). */
      readonly socket: string | undefined;
    };

/** One issuer with every default applied. */
export interface ResolvedTokenIssuer {
  /** The configured name (`@RequireToken('<name>')`), used in logs and metric labels. */
  readonly name: string;
  /** The required `iss`; undefined only with a `workloadApi` key source (then `iss` is not checked). */
  readonly issuer: string | undefined;
  readonly audience: readonly string[];
  readonly jwks: ResolvedJwksSource;
  /** Pinned algorithms; undefined: every asymmetric algorithm the keys allow. */
  readonly algorithms: readonly TokenAlgorithm[] | undefined;
  readonly clockToleranceSec: number;
  readonly maxTokenAgeSec: number | undefined;
  readonly typ: string | undefined;
}

/** The resolved `tokens` option: issuers by name (empty when the option is absent). */
export interface ResolvedTokenOptions {
  readonly issuers: ReadonlyMap<string, ResolvedTokenIssuer>;
}

const ISSUER_KEYS = ['issuer', 'audience', 'jwks', 'algorithms', 'clockToleranceSec', 'maxTokenAgeSec', 'typ'];
const URL_KEYS = ['url', 'caFile', 'expectPeer', 'refreshMs', 'cooldownMs', 'staleIfErrorMs', 'timeoutMs'];
const WORKLOAD_API_KEYS = ['trustDomain', 'socket'];
const MAX_CLOCK_TOLERANCE_SEC = 300;

function fail(option: string, problem: string): never {
  throw new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', `MtlsModule option "${option}" ${problem}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function known(option: string, value: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) fail(`${option}.${key}`, `is not an option; known options of "${option}": ${keys.join(', ')}`);
  }
}

function nonEmptyString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') fail(option, `must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function wholeMs(option: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min) return value;
  return fail(option, `is ${JSON.stringify(value)}; use a whole number of ms ≥ ${min}`);
}

function algorithmsOf(option: string, value: unknown): readonly TokenAlgorithm[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) fail(option, 'must be a non-empty array of asymmetric JWS algorithms');
  for (const alg of value as unknown[]) {
    if (typeof alg === 'string' && (/^HS/i.test(alg) || alg.toLowerCase() === 'none')) {
      fail(
        option,
        `names ${JSON.stringify(alg)}: shared-secret and unsigned tokens are never accepted; use ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
      );
    }
    if (!(ASYMMETRIC_ALGORITHMS as readonly unknown[]).includes(alg)) {
      fail(option, `names ${JSON.stringify(alg)}; use ${ASYMMETRIC_ALGORITHMS.join(', ')}`);
    }
  }
  return Object.freeze([...new Set(value as TokenAlgorithm[])]);
}

function jwksOf(option: string, value: unknown): ResolvedJwksSource {
  if (typeof value === 'string') {
    if (value.startsWith('https://')) return jwksOf(option, { url: value });
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) fail(option, `is ${JSON.stringify(value)}; use an https:// URL or a file path`);
    return { kind: 'file', file: resolve(nonEmptyString(option, value)) };
  }
  if (!isRecord(value))
    return fail(option, 'is missing: give a JWKS file path, an https:// URL, { file }, { url } or { workloadApi }');
  if ('file' in value) {
    known(option, value, ['file']);
    return { kind: 'file', file: resolve(nonEmptyString(`${option}.file`, value.file)) };
  }
  if ('workloadApi' in value) {
    known(option, value, ['workloadApi']);
    return workloadApiOf(`${option}.workloadApi`, value.workloadApi);
  }
  known(option, value, URL_KEYS);
  const text = nonEmptyString(`${option}.url`, value.url);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`${option}.url`, `is not a URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'https:') fail(`${option}.url`, `must be an https:// URL, got ${JSON.stringify(text)}`);
  if (url.username !== '' || url.password !== '') fail(`${option}.url`, 'must not carry credentials');
  const caFile = value.caFile === undefined ? undefined : nonEmptyString(`${option}.caFile`, value.caFile);
  const expectPeer = value.expectPeer as string | { hostname: string } | undefined;
  if (
    expectPeer !== undefined &&
    typeof expectPeer !== 'string' &&
    !(isRecord(expectPeer) && typeof expectPeer.hostname === 'string')
  ) {
    fail(`${option}.expectPeer`, 'must be a peer name, a SPIFFE ID or { hostname }');
  }
  if (caFile !== undefined && expectPeer !== undefined) {
    fail(`${option}.expectPeer`, 'applies to fetches through MtlsHttpClient; with caFile the server is checked by its host name');
  }
  return {
    kind: 'url',
    url,
    caFile: caFile === undefined ? undefined : isAbsolute(caFile) ? caFile : resolve(caFile),
    expectPeer,
    refreshMs: wholeMs(`${option}.refreshMs`, value.refreshMs, 300_000, 1_000),
    cooldownMs: wholeMs(`${option}.cooldownMs`, value.cooldownMs, 30_000, 0),
    staleIfErrorMs: wholeMs(`${option}.staleIfErrorMs`, value.staleIfErrorMs, 3_600_000, 0),
    timeoutMs: wholeMs(`${option}.timeoutMs`, value.timeoutMs, 5_000, 1),
  };
}

function workloadApiOf(option: string, value: unknown): ResolvedJwksSource {
  if (!isRecord(value))
    return fail(option, 'must be an object ({} for the trust domain of each token\'s "sub" and SPIFFE_ENDPOINT_SOCKET)');
  known(option, value, WORKLOAD_API_KEYS);
  let trustDomain: string | undefined;
  if (value.trustDomain !== undefined) {
    const text = nonEmptyString(`${option}.trustDomain`, value.trustDomain);
    try {
      trustDomain = parseTrustDomain(text);
    } catch (error) {
      fail(`${option}.trustDomain`, `is not a trust domain (${(error as Error).message}): use e.g. "shop.test"`);
    }
  }
  const socket = value.socket === undefined ? undefined : nonEmptyString(`${option}.socket`, value.socket);
  return { kind: 'workloadApi', trustDomain, socket };
}

/** Checks one issuer; each problem names its option and what to use instead. */
function resolveIssuer(name: string, value: unknown): ResolvedTokenIssuer {
  const option = `tokens.issuers.${name}`;
  if (!isRecord(value)) return fail(option, 'must be an object { issuer, audience, jwks }');
  known(option, value, ISSUER_KEYS);
  const jwks = jwksOf(`${option}.jwks`, value.jwks);
  // JWT-SVIDs are checked by their trust domain's keys and `sub`; their `iss` is often absent or not meaningful.
  if (value.issuer === undefined && jwks.kind !== 'workloadApi')
    fail(`${option}.issuer`, 'is missing: give the exact "iss" its tokens carry (optional only with jwks: { workloadApi })');
  const issuer = value.issuer === undefined ? undefined : nonEmptyString(`${option}.issuer`, value.issuer);
  const audiences = typeof value.audience === 'string' ? [value.audience] : value.audience;
  if (!Array.isArray(audiences) || audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a.trim() === '')) {
    fail(
      `${option}.audience`,
      'must name this service: a non-empty string or a non-empty array of them ("aud" is always required)',
    );
  }
  const tolerance = value.clockToleranceSec ?? 30;
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_SEC) {
    fail(
      `${option}.clockToleranceSec`,
      `is ${JSON.stringify(value.clockToleranceSec)}; use a number of seconds from 0 to ${MAX_CLOCK_TOLERANCE_SEC}`,
    );
  }
  const maxAge = value.maxTokenAgeSec;
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    fail(`${option}.maxTokenAgeSec`, `is ${JSON.stringify(maxAge)}; use a positive number of seconds`);
  }
  return {
    name,
    issuer,
    audience: Object.freeze([...(audiences as string[])]),
    jwks,
    algorithms: algorithmsOf(`${option}.algorithms`, value.algorithms),
    clockToleranceSec: tolerance as number,
    maxTokenAgeSec: maxAge as number | undefined,
    typ: value.typ === undefined ? undefined : nonEmptyString(`${option}.typ`, value.typ),
  };
}

/** Checks the module option `tokens` and applies defaults. Throws MtlsConfigError naming the option and the fix. */
export function resolveTokenOptions(value: MtlsTokensOptions | undefined): ResolvedTokenOptions {
  const issuers = new Map<string, ResolvedTokenIssuer>();
  if (value === undefined) return { issuers };
  if (!isRecord(value)) fail('tokens', 'must be an object { issuers: { <name>: { issuer, audience, jwks } } }');
  known('tokens', value, ['issuers']);
  if (!isRecord(value.issuers) || Object.keys(value.issuers).length === 0) {
    fail('tokens.issuers', 'must name at least one issuer: { <name>: { issuer, audience, jwks } }');
  }
  for (const [name, issuer] of Object.entries(value.issuers)) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) fail(`tokens.issuers.${name}`, 'has a name that is not 1-64 of A-Z a-z 0-9 _ . -');
    issuers.set(name, resolveIssuer(name, issuer));
  }
  return { issuers };
}
