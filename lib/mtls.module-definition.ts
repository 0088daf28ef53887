import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { MtlsModuleOptions } from './mtls.options.js';

export const {
  ConfigurableModuleClass: MtlsConfigurableModule,
  MODULE_OPTIONS_TOKEN: MTLS_MODULE_OPTIONS,
  OPTIONS_TYPE: MTLS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: MTLS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MtlsModuleOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
