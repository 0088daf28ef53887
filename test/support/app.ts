import 'reflect-metadata';
import type { INestApplication, Type } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MtlsModule, type MtlsModuleOptions } from '../../lib/index.js';
import { createCellApp, EXPRESS_H1, type ServerCell } from './cells.js';

/** Builds a real Nest app with MtlsModule and the given controllers, listening on 127.0.0.1 with an ephemeral port. */
export async function startMtlsApp(
  options: MtlsModuleOptions,
  controllers: Type[],
  { https = true, cell = EXPRESS_H1 }: { https?: boolean; cell?: ServerCell } = {},
): Promise<INestApplication> {
  @Module({ imports: [MtlsModule.forRoot(options)], controllers })
  class TestAppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [TestAppModule] }).compile();
  const app = createCellApp(moduleRef, cell, { https });
  await app.listen(0, '127.0.0.1');
  return app;
}
