import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { mtlsHttpsOptions } from 'nestjs-mtls';
import { startMetricsServer } from '../common/metrics-server.js';
import { credentialsFromEnv, listenAddressFromEnv, proxyFromEnv, servesPlainHttp } from '../common/sample-config.js';
import { runService } from '../common/run-service.js';
import { InventoryModule } from './inventory.module.js';

await runService('inventory', async () => {
  const { host, port } = listenAddressFromEnv(8443);
  const proxy = proxyFromEnv();
  const app = await NestFactory.create(InventoryModule.register(credentialsFromEnv('inventory'), proxy), {
    // Behind a loopback sidecar the service speaks plain HTTP; the sidecar terminates mTLS.
    ...(servesPlainHttp(proxy) ? {} : { httpsOptions: mtlsHttpsOptions() }),
    abortOnError: false,
  });
  app.enableShutdownHooks();
  await startMetricsServer('inventory', app);
  await app.listen(port, host);
  return { app, host, scheme: servesPlainHttp(proxy) ? 'http' : 'https' };
});
