import { Server as TlsServer } from 'node:tls';

/** What the binding needs of Nest's HTTP adapter (Express or Fastify): the adapter's type and its instance. */
export interface HttpAdapterLike {
  getType?(): string;
  getInstance?(): unknown;
}

/** The line `main.ts` needs for each adapter, in the error a non-TLS application gets at startup. */
export function notHttpsMessage(adapter: HttpAdapterLike | undefined): string {
  if (adapter?.getType?.() === 'fastify') {
    // Nest ignores NestFactory.create's httpsOptions with Fastify (nestjs/nest#2150): TLS goes into the adapter.
    return (
      'MtlsModule needs the application to be served over HTTPS. With Fastify, TLS goes into the adapter ' +
      '(NestFactory.create ignores httpsOptions there). In main.ts, create the app with:\n' +
      "  import { mtlsFastifyAdapter } from 'nestjs-mtls/fastify';\n" +
      '  const app = await NestFactory.create(AppModule, mtlsFastifyAdapter());'
    );
  }
  return (
    'MtlsModule needs the application to be served over HTTPS. In main.ts, create the app with:\n' +
    "  import { mtlsHttpsOptions } from 'nestjs-mtls';\n" +
    '  const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() });'
  );
}

interface FastifyLike {
  addHook(name: 'onListen', hook: (this: unknown, done: (error?: Error) => void) => void): unknown;
  addresses?(): unknown[];
}

/**
 * Calls `bind` with every server the application listens on besides `getHttpServer()`'s. Fastify, told to listen on
 * a name with several addresses (`localhost` on a dual-stack host), creates one more server per address and keeps
 * them in a private list; they start listening before its `onListen` hooks run, without credentials (their
 * handshakes fail until bound) and are bound there. `onUnbindable` gets a message when such servers exist but
 * cannot be found (a Fastify whose internals changed): the caller must then refuse to serve.
 */
export function watchAdditionalServers(
  adapter: HttpAdapterLike | undefined,
  bind: (server: TlsServer) => void,
  onUnbindable: (message: string) => void,
): void {
  if (adapter?.getType?.() !== 'fastify') return;
  const instance = adapter.getInstance?.() as FastifyLike | undefined;
  if (instance === undefined || typeof instance.addHook !== 'function') return;
  instance.addHook('onListen', function (done) {
    const bindings = serverBindingsOf(instance);
    if (bindings === undefined) {
      const count = instance.addresses?.().length ?? 0;
      if (count > 1) {
        onUnbindable(
          `Fastify listens on ${count} addresses, and MtlsModule cannot reach the servers behind the additional ` +
            'ones to install the credentials: listen on one address (e.g. app.listen(port, "127.0.0.1") or "::1"), not on "localhost"',
        );
      }
      done();
      return;
    }
    for (const server of bindings) {
      if (!(server instanceof TlsServer)) continue;
      try {
        bind(server);
      } catch (error) {
        // Fastify would only log a hook's error: say what is left unbound, and close it rather than serve it unbound.
        onUnbindable(`MtlsModule could not bind a server Fastify added for another address: ${String(error)}; it is closed`);
        server.close();
      }
    }
    done();
  });
}

/** Fastify's list of secondary servers (`Symbol('fastify.serverBindings')`, Fastify 4 and 5). */
export function serverBindingsOf(instance: object): unknown[] | undefined {
  const symbol = Object.getOwnPropertySymbols(instance).find((s) => s.description === 'fastify.serverBindings');
  const value = symbol === undefined ? undefined : (instance as Record<symbol, unknown>)[symbol];
  return Array.isArray(value) ? value : undefined;
}
