import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { mtlsHttpsOptions } from 'nestjs-mtls';
import { startMetricsServer } from '../common/metrics-server.js';
import { credentialsFromEnv, listenAddressFromEnv } from '../common/sample-config.js';
import { runService } from '../common/run-service.js';
import { InventoryModule } from './inventory.module.js';

await runService('inventory', async () => {
  const { host, port } = listenAddressFromEnv(8443);
  const app = await NestFactory.create(InventoryModule.register(credentialsFromEnv('inventory')), {
    httpsOptions: mtlsHttpsOptions(),
    abortOnError: false,
  });
  app.enableShutdownHooks();
  await startMetricsServer('inventory', app);
  await app.listen(port, host);
  return { app, host };
});
