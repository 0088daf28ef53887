import type { INestApplication, LoggerService } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { mtlsFastifyAdapter } from '../../lib/fastify/index.js';
import { mtlsHttpsOptions } from '../../lib/index.js';

/** One way to serve an mTLS app: an HTTP adapter and the protocol clients speak to it. */
export interface ServerCell {
  readonly name: string;
  readonly adapter: 'express' | 'fastify';
  /** Clients speak HTTP/2 (the server also accepts HTTP/1.1 on the same port). */
  readonly http2: boolean;
}

/** Every cell the e2e and lifecycle suites run on: a new adapter or protocol is one line here. */
export const SERVER_CELLS: readonly ServerCell[] = [
  { name: 'Express h1', adapter: 'express', http2: false },
  { name: 'Fastify h1', adapter: 'fastify', http2: false },
  { name: 'Fastify h2', adapter: 'fastify', http2: true },
];

/** The default cell of suites that are not about the adapter. */
export const EXPRESS_H1 = SERVER_CELLS[0]!;

/**
 * Creates the Nest app of `moduleRef` on `cell`'s adapter. `https: false` gives a plain HTTP server: the one a user
 * would get by mistake, or the one behind a loopback sidecar (cleartext HTTP/2, h2c, on an HTTP/2 cell).
 */
export function createCellApp(
  moduleRef: TestingModule,
  cell: ServerCell,
  { https = true, logger = false }: { https?: boolean; logger?: LoggerService | false } = {},
): INestApplication {
  if (cell.adapter === 'express') {
    return moduleRef.createNestApplication({ ...(https ? { httpsOptions: mtlsHttpsOptions() } : {}), logger });
  }
  const adapter = https ? mtlsFastifyAdapter({ http2: cell.http2 }) : new FastifyAdapter(cell.http2 ? { http2: true } : {});
  return moduleRef.createNestApplication(adapter, { logger });
}
