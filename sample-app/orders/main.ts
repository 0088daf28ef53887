import 'reflect-metadata';
import { createSampleApp, servingFromEnv } from '../common/http-adapter.js';
import {
  credentialsFromEnv,
  listenAddressFromEnv,
  proxyFromEnv,
  SampleConfigError,
  servesPlainHttp,
  tokensFromEnv,
} from '../common/sample-config.js';
import { startMetricsServer } from '../common/metrics-server.js';
import { runService } from '../common/run-service.js';
import { OrdersModule } from './orders.module.js';

await runService('orders', async () => {
  const { host, port } = listenAddressFromEnv(8444);
  const proxy = proxyFromEnv();
  const inventoryUrl = process.env.INVENTORY_URL || 'https://127.0.0.1:8443';
  if (!inventoryUrl.startsWith('https://')) {
    throw new SampleConfigError(`INVENTORY_URL must be an https:// URL, got ${JSON.stringify(inventoryUrl)}`);
  }
  const serving = servingFromEnv();
  const app = await createSampleApp(
    OrdersModule.register(credentialsFromEnv('orders'), inventoryUrl, tokensFromEnv(), proxy, serving.http2),
    serving,
    servesPlainHttp(proxy),
  );
  app.enableShutdownHooks();
  await startMetricsServer('orders', app);
  await app.listen(port, host);
  return { app, host, scheme: servesPlainHttp(proxy) ? 'http' : 'https' };
});
