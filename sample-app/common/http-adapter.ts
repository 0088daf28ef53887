import type { DynamicModule, INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { mtlsHttpsOptions } from 'nestjs-mtls';
import { SampleConfigError } from './sample-config.js';

/** How a sample service serves: `ADAPTER` (`express`, the default, or `fastify`) and `HTTP2=1` (Fastify only). */
export interface SampleServing {
  readonly adapter: 'express' | 'fastify';
  /** HTTP/2 and HTTP/1.1 on the same port; on the client side, HTTP/2 offered to upstreams. */
  readonly http2: boolean;
}

/** `ADAPTER` and `HTTP2` from the environment, checked. */
export function servingFromEnv(env: NodeJS.ProcessEnv = process.env): SampleServing {
  const adapter = env.ADAPTER || 'express';
  if (adapter !== 'express' && adapter !== 'fastify') {
    throw new SampleConfigError(`ADAPTER must be "express" or "fastify", got ${JSON.stringify(env.ADAPTER)}`);
  }
  const http2 = env.HTTP2 || '0';
  if (http2 !== '0' && http2 !== '1') throw new SampleConfigError(`HTTP2 must be "1" or "0", got ${JSON.stringify(env.HTTP2)}`);
  if (http2 === '1' && adapter !== 'fastify') {
    throw new SampleConfigError('HTTP2=1 needs ADAPTER=fastify: the Express adapter serves HTTP/1.1 only');
  }
  return { adapter, http2: http2 === '1' };
}

/**
 * Creates the service's Nest app on the adapter `serving` names, TLS set up for MtlsModule; `plainHttp` behind a
 * loopback sidecar, which terminates mTLS itself.
 */
export async function createSampleApp(
  module: DynamicModule,
  serving: SampleServing,
  plainHttp = false,
): Promise<INestApplication> {
  if (serving.adapter === 'express') {
    return NestFactory.create(module, { ...(plainHttp ? {} : { httpsOptions: mtlsHttpsOptions() }), abortOnError: false });
  }
  // Loaded only when asked for: the Express sample does not need Fastify installed.
  if (plainHttp) {
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    return NestFactory.create(module, new FastifyAdapter(), { abortOnError: false });
  }
  const { mtlsFastifyAdapter } = await import('nestjs-mtls/fastify');
  return NestFactory.create(module, mtlsFastifyAdapter({ http2: serving.http2 }), { abortOnError: false });
}
