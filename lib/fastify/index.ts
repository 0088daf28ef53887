import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyServerOptions } from 'fastify';
import { mtlsHttpsOptions } from '../server/mtls-https.options.js';

/** Options of {@link mtlsFastifyAdapter}: Fastify's own, less the server kind and TLS, which the adapter sets. */
export interface MtlsFastifyAdapterOptions extends Omit<FastifyServerOptions, 'http2' | 'https' | 'serverFactory'> {
  /** Serve HTTP/2 and HTTP/1.1 on the same port (ALPN picks one per connection). @default false (HTTP/1.1 only) */
  http2?: boolean;
}

/**
 * The Fastify adapter of an mTLS application: Nest ignores `NestFactory.create`'s `httpsOptions` with Fastify
 * (nestjs/nest#2150), so TLS goes into the adapter. `MtlsModule` installs the credentials and TLS policy into its
 * server(s) before they listen, and again on every rotation.
 * @example
 * ```ts
 * import { mtlsFastifyAdapter } from 'nestjs-mtls/fastify';
 * const app = await NestFactory.create<NestFastifyApplication>(AppModule, mtlsFastifyAdapter({ http2: true }));
 * ```
 */
export function mtlsFastifyAdapter(options: MtlsFastifyAdapterOptions = {}): FastifyAdapter {
  const { http2 = false, ...fastifyOptions } = options;
  if (typeof http2 !== 'boolean') throw new TypeError(`mtlsFastifyAdapter: "http2" must be a boolean, got ${typeof http2}`);
  const rest = fastifyOptions as Record<string, unknown>;
  // Untyped callers could still pass these; silently replacing them would hide a plain-HTTP or key-bearing setup.
  for (const name of ['https', 'serverFactory'] as const) {
    if (rest[name] !== undefined) {
      throw new TypeError(`mtlsFastifyAdapter: "${name}" is set by the adapter; pass credentials to MtlsModule instead`);
    }
  }
  if (http2) {
    return new FastifyAdapter({ ...fastifyOptions, http2: true, https: { ...mtlsHttpsOptions(), allowHTTP1: true } } as never);
  }
  return new FastifyAdapter({ ...fastifyOptions, https: mtlsHttpsOptions() } as never);
}
