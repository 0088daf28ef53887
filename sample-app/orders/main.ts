import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { mtlsHttpsOptions } from 'nestjs-mtls';
import { credentialsFromEnv, listenAddressFromEnv, SampleConfigError, tokensFromEnv } from '../common/sample-config.js';
import { startMetricsServer } from '../common/metrics-server.js';
import { runService } from '../common/run-service.js';
import { OrdersModule } from './orders.module.js';

await runService('orders', async () => {
  const { host, port } = listenAddressFromEnv(8444);
  const inventoryUrl = process.env.INVENTORY_URL || 'https://127.0.0.1:8443';
  if (!inventoryUrl.startsWith('https://')) {
    throw new SampleConfigError(`INVENTORY_URL must be an https:// URL, got ${JSON.stringify(inventoryUrl)}`);
  }
  const app = await NestFactory.create(OrdersModule.register(credentialsFromEnv('orders'), inventoryUrl, tokensFromEnv()), {
    httpsOptions: mtlsHttpsOptions(),
    abortOnError: false,
  });
  app.enableShutdownHooks();
  await startMetricsServer('orders', app);
  await app.listen(port, host);
  return { app, host };
});
