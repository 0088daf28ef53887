import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { AddressInfo, Server } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { isLoopbackAddress } from './proxy-trust.js';

const HOW = "listen on a loopback address only, e.g. app.listen(port, '127.0.0.1') or app.listen(port, '::1')";

/** Why `address` is not a loopback listening address, or undefined when it is. */
export function loopbackListenProblem(address: string | AddressInfo | null): string | undefined {
  if (address === null) return undefined;
  if (typeof address === 'string') return `the application listens on the pipe ${JSON.stringify(address)}`;
  if (isLoopbackAddress(address.address)) return undefined;
  const wildcard = address.address === '::' || address.address === '0.0.0.0';
  return `the application listens on ${address.address}:${address.port}${wildcard ? ' (every interface: no host given to listen?)' : ''}`;
}

/**
 * In proxy mode with `trust: 'loopback'`, the only thing that makes the header trustworthy is that nobody but the
 * sidecar can connect: the application must serve plain HTTP on a loopback address. Checked on the server's
 * `listening` event, before any connection can be accepted (Node emits it on the next tick; accepts come later), so
 * every way of listening is covered: a wrong address closes the server and fails `app.listen()` with
 * `ERR_MTLS_CONFIG_INVALID`.
 */
@Injectable()
export class LoopbackListenerBinding implements OnModuleInit {
  readonly #logger = new Logger('MtlsProxy');

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(MTLS_OPTIONS) private readonly options: ResolvedMtlsOptions,
  ) {}

  onModuleInit(): void {
    if (this.options.proxy?.trust.kind !== 'loopback') return;
    const server: unknown = this.adapterHost.httpAdapter?.getHttpServer();
    if (server instanceof TlsServer) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        "MtlsModule option proxy.trust is 'loopback': the sidecar terminates TLS and the application serves plain HTTP on " +
          'a loopback address. Create the app without httpsOptions, or use proxy.trust { spiffeIds } to keep mTLS to the proxy',
      );
    }
    const net = server as Server | undefined;
    if (net === undefined || typeof net.prependListener !== 'function') {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `proxy.trust 'loopback' needs the HTTP server to check its address: ${HOW}`,
      );
    }
    const check = (): void => {
      const problem = loopbackListenProblem(net.address());
      if (problem === undefined) return;
      const error = new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `${problem}, but MtlsModule option proxy.trust is 'loopback': anyone who reaches that address could forge the ` +
          `identity header. ${HOW}`,
      );
      net.close();
      // app.listen() waits on 'error'; without a listener, log rather than crash the process.
      if (net.listenerCount('error') > 0) net.emit('error', error);
      else this.#logger.error(error.message);
    };
    net.prependListener('listening', check);
    if (net.listening) check();
  }
}
