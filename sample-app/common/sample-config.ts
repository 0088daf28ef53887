import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MtlsModuleOptions, MtlsProxyOptions, MtlsTokensOptions } from 'nestjs-mtls';

/** The sample's trust domain and the SPIFFE IDs its services and callers use. */
export const TRUST_DOMAIN = 'shop.test';
export const SPIFFE_IDS = {
  inventory: 'spiffe://shop.test/ns/shop/sa/inventory',
  orders: 'spiffe://shop.test/ns/shop/sa/orders',
  admin: 'spiffe://shop.test/ns/ops/sa/admin',
  frontend: 'spiffe://shop.test/ns/web/sa/frontend',
  stranger: 'spiffe://elsewhere.test/ns/shop/sa/orders',
} as const;

/** Repository root, whether running from sources or from `dist/`. */
export function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (no package.json above the sample)');
    dir = parent;
  }
  return dir;
}

/** Where `npm run sample` keeps the dev CA and the services' dev certificates (git-ignored). */
export function devCertificatesDir(): string {
  return join(repositoryRoot(), '.dev-certs');
}

/** A configuration mistake in the environment; the sample prints it and exits 1. */
export class SampleConfigError extends Error {}

/**
 * Credentials from the environment: `SPIFFE_ENDPOINT_SOCKET` (the SPIFFE Workload API, e.g. a SPIRE agent), or
 * `MTLS_DIR` (Kubernetes Secret layout), or `MTLS_CERT_FILE` + `MTLS_KEY_FILE` + `MTLS_CA_FILE`; `MTLS_CRL_FILE`
 * optional. With none of them, the service's dev certificates.
 */
export function credentialsFromEnv(service: string, env: NodeJS.ProcessEnv = process.env): MtlsModuleOptions['credentials'] {
  if (env.SPIFFE_ENDPOINT_SOCKET) {
    const files = Object.keys(env).filter((name) => name.startsWith('MTLS_') && env[name]);
    if (files.length > 0) {
      throw new SampleConfigError(`set either SPIFFE_ENDPOINT_SOCKET or ${files.join(', ')}, not both`);
    }
    // The socket comes from SPIFFE_ENDPOINT_SOCKET itself; the agent picks this workload's SVID by attesting it.
    return { workloadApi: {} };
  }
  const crl = env.MTLS_CRL_FILE ? [resolve(env.MTLS_CRL_FILE)] : undefined;
  if (env.MTLS_DIR && (env.MTLS_CERT_FILE || env.MTLS_KEY_FILE || env.MTLS_CA_FILE)) {
    throw new SampleConfigError('set either MTLS_DIR or MTLS_CERT_FILE/MTLS_KEY_FILE/MTLS_CA_FILE, not both');
  }
  if (env.MTLS_DIR) {
    return { dir: resolve(env.MTLS_DIR), ...(crl ? { crlFiles: crl } : {}) };
  }
  const files = { MTLS_CERT_FILE: env.MTLS_CERT_FILE, MTLS_KEY_FILE: env.MTLS_KEY_FILE, MTLS_CA_FILE: env.MTLS_CA_FILE };
  const given = Object.entries(files).filter(([, value]) => value);
  if (given.length > 0) {
    const missing = Object.entries(files)
      .filter(([, value]) => !value)
      .map(([name]) => name);
    if (missing.length > 0) {
      throw new SampleConfigError(
        `${missing.join(', ')} not set: set all of MTLS_CERT_FILE, MTLS_KEY_FILE and MTLS_CA_FILE, or MTLS_DIR alone`,
      );
    }
    return {
      certFile: resolve(files.MTLS_CERT_FILE!),
      keyFile: resolve(files.MTLS_KEY_FILE!),
      caFile: resolve(files.MTLS_CA_FILE!),
      ...(crl ? { crlFile: crl } : {}),
    };
  }
  if (crl) throw new SampleConfigError('MTLS_CRL_FILE is set but neither MTLS_DIR nor MTLS_CERT_FILE is');
  const dir = join(devCertificatesDir(), service);
  if (!existsSync(join(dir, 'tls.crt'))) {
    throw new SampleConfigError(
      `no MTLS_* variable is set and the dev certificates are missing (${dir}): run "npm run sample" once to create them, or set MTLS_DIR`,
    );
  }
  return { dir };
}

/** `HOST` (default 127.0.0.1) and `PORT` (the service's default), checked. */
export function listenAddressFromEnv(defaultPort: number, env: NodeJS.ProcessEnv = process.env): { host: string; port: number } {
  const host = env.HOST || '127.0.0.1';
  const port = env.PORT === undefined || env.PORT === '' ? defaultPort : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new SampleConfigError(`PORT must be a port number (0-65535), got ${JSON.stringify(env.PORT)}`);
  }
  return { host, port };
}

/** Default `JWT_ISSUER`: the `iss` of the dev issuer `npm run sample` creates. */
export const DEFAULT_JWT_ISSUER = 'https://issuer.shop.test';

/** The dev token issuer's JWKS, created by `npm run sample` (or `nestjs-mtls dev-ca issuer init`). */
export function devJwksFile(): string {
  return join(devCertificatesDir(), 'issuer', 'jwks.json');
}

/**
 * The orders service's user-token issuer: `JWT_ISSUER` (default https://issuer.shop.test), audience `orders`, keys
 * from `JWT_JWKS_FILE` (default the dev issuer's jwks.json). Without that file, the token routes are left out.
 */
export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): MtlsTokensOptions | undefined {
  const jwks = env.JWT_JWKS_FILE ? resolve(env.JWT_JWKS_FILE) : devJwksFile();
  if (!env.JWT_JWKS_FILE && !existsSync(jwks)) return undefined;
  return { issuers: { users: { issuer: env.JWT_ISSUER || DEFAULT_JWT_ISSUER, audience: 'orders', jwks } } };
}

/**
 * `MTLS_PROXY` (`xfcc` or `rfc9440`; unset: the service is the mTLS server itself) and `MTLS_PROXY_TRUST` (`loopback`,
 * the default: a sidecar on this host, plain HTTP on a loopback `HOST`; or the proxy's `spiffe://…` ID: the service
 * keeps its mTLS server). In loopback mode a forwarded certificate must chain to the bundle of `MTLS_DIR` /
 * `MTLS_CA_FILE` when one is set; with the dev certificates the proxy's word is taken.
 */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): MtlsProxyOptions | undefined {
  const header = env.MTLS_PROXY;
  if (header === undefined || header === '') {
    if (env.MTLS_PROXY_TRUST)
      throw new SampleConfigError('MTLS_PROXY_TRUST is set but MTLS_PROXY is not: set MTLS_PROXY=xfcc or MTLS_PROXY=rfc9440');
    return undefined;
  }
  if (header !== 'xfcc' && header !== 'rfc9440') {
    throw new SampleConfigError(`MTLS_PROXY must be xfcc or rfc9440, got ${JSON.stringify(header)}`);
  }
  const trust = env.MTLS_PROXY_TRUST || 'loopback';
  // A HOST that is not loopback is refused by MtlsModule when the service starts listening (ERR_MTLS_CONFIG_INVALID).
  if (trust === 'loopback') {
    return { header, trust: 'loopback', verifyChain: Boolean(env.MTLS_DIR || env.MTLS_CA_FILE) };
  }
  if (!trust.startsWith('spiffe://')) {
    throw new SampleConfigError(`MTLS_PROXY_TRUST must be loopback or the proxy's spiffe:// ID, got ${JSON.stringify(trust)}`);
  }
  return { header, trust: { spiffeIds: [trust] } };
}

/** True when the service serves plain HTTP to a loopback sidecar instead of being an mTLS server. */
export function servesPlainHttp(proxy: MtlsProxyOptions | undefined): boolean {
  return proxy?.trust === 'loopback';
}
