import 'reflect-metadata';
import { startMetricsServer } from '../common/metrics-server.js';
import { createSampleApp, servingFromEnv } from '../common/http-adapter.js';
import { credentialsFromEnv, listenAddressFromEnv, proxyFromEnv, servesPlainHttp } from '../common/sample-config.js';
import { runService } from '../common/run-service.js';
import { InventoryModule } from './inventory.module.js';

await runService('inventory', async () => {
  const { host, port } = listenAddressFromEnv(8443);
  const proxy = proxyFromEnv();
  const app = await createSampleApp(
    InventoryModule.register(credentialsFromEnv('inventory'), proxy),
    servingFromEnv(),
    servesPlainHttp(proxy),
  );
  app.enableShutdownHooks();
  await startMetricsServer('inventory', app);
  await app.listen(port, host);
  return { app, host, scheme: servesPlainHttp(proxy) ? 'http' : 'https' };
});
