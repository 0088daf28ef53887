import 'reflect-metadata';
import type { INestApplication, Type } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MtlsModule, mtlsHttpsOptions, type MtlsModuleOptions } from '../../lib/index.js';

/** Builds a real Nest app with MtlsModule and the given controllers, listening on 127.0.0.1 with an ephemeral port. */
export async function startMtlsApp(
  options: MtlsModuleOptions,
  controllers: Type[],
  { https = true }: { https?: boolean } = {},
): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot(options)], controllers })
  class TestAppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [TestAppModule] }).compile();
  const app = moduleRef.createNestApplication({ ...(https ? { httpsOptions: mtlsHttpsOptions() } : {}), logger: false });
  await app.listen(0, '127.0.0.1');
  return app;
}
