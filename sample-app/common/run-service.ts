import type { INestApplication } from '@nestjs/common';
import { MtlsError } from 'nestjs-mtls';
import { SampleConfigError } from './sample-config.js';

/**
 * Starts a sample service and prints `<name> listening on https://HOST:PORT` (`http://` behind a loopback sidecar)
 * once it accepts connections.
 * A configuration or credentials error is printed as one clear line and the process exits 1.
 */
export async function runService(
  name: string,
  start: () => Promise<{ app: INestApplication; host: string; scheme?: 'https' | 'http' }>,
): Promise<void> {
  try {
    const { app, host, scheme = 'https' } = await start();
    const address = app.getHttpServer().address() as { port: number };
    console.log(`${name} listening on ${scheme}://${host}:${address.port}`);
  } catch (error) {
    if (error instanceof MtlsError || error instanceof SampleConfigError) {
      const code = error instanceof MtlsError ? ` [${error.code}]` : '';
      console.error(`${name} failed to start${code}: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}
