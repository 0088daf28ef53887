import 'reflect-metadata';
import { startMetricsServer } from '../common/metrics-server.js';
import { createSampleApp, servingFromEnv } from '../common/http-adapter.js';
import { credentialsFromEnv, listenAddressFromEnv } from '../common/sample-config.js';
import { runService } from '../common/run-service.js';
import { InventoryModule } from './inventory.module.js';

await runService('inventory', async () => {
  const { host, port } = listenAddressFromEnv(8443);
  const app = await createSampleApp(InventoryModule.register(credentialsFromEnv('inventory')), servingFromEnv());
  app.enableShutdownHooks();
  await startMetricsServer('inventory', app);
  await app.listen(port, host);
  return { app, host };
});
