/** What {@link mtlsHttpsOptions} returns: accepted by Nest's `httpsOptions` and by `https.createServer`. */
export interface MtlsHttpsOptions {
  requestCert: true;
  rejectUnauthorized: true;
  minVersion: 'TLSv1.2';
}

/**
 * The one expression `main.ts` needs: it makes Nest create an HTTPS server that requests and verifies client
 * certificates. `MtlsModule` installs the key, certificate, CA bundle, CRLs and TLS policy into that server
 * before it listens, and again on every rotation.
 * @example
 * ```ts
 * const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() });
 * ```
 */
export function mtlsHttpsOptions(): MtlsHttpsOptions {
  return { requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}
