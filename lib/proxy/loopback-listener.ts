import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { AddressInfo, Server, Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { MtlsConfigError } from '../errors/mtls.errors.js';
import { MTLS_OPTIONS } from '../mtls.constants.js';
import type { ResolvedMtlsOptions } from '../mtls.config.js';
import { serverBindingsOf } from '../server/adapters/http-servers.js';
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

/** The first problem among the addresses an application listens on, or undefined when every one is loopback. */
export function loopbackListenProblems(addresses: readonly (string | AddressInfo | null)[]): string | undefined {
  for (const address of addresses) {
    const problem = loopbackListenProblem(address);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function listenError(problem: string): MtlsConfigError {
  return new MtlsConfigError(
    'ERR_MTLS_CONFIG_INVALID',
    `${problem}, but MtlsModule option proxy.trust is 'loopback': anyone who reaches that address could forge the ` +
      `identity header. ${HOW}`,
  );
}

/** What the binding needs of Nest's HTTP adapter. */
interface ListeningAdapter {
  getType?(): string;
  getInstance?(): unknown;
  getHttpServer(): unknown;
  listen(...args: unknown[]): unknown;
}

/** What the binding needs of the Fastify instance. */
interface FastifyListening {
  addresses?(): (string | AddressInfo | null)[];
  addHook?(name: 'onListen', hook: (done: () => void) => void): unknown;
}

/**
 * In proxy mode with `trust: 'loopback'`, the only thing that makes the header trustworthy is that nobody but the
 * sidecar can connect: the application must serve plain HTTP on a loopback address, on every server it listens with.
 *
 * Express: checked on the server's `listening` event, before any connection can be accepted (Node emits it on the
 * next tick; accepts come later), so every way of listening is covered: a wrong address closes the server and fails
 * `app.listen()` with `ERR_MTLS_CONFIG_INVALID`.
 *
 * Fastify: told to listen on a name with several addresses (`localhost` on a dual-stack host), it adds one server per
 * further address, which `getHttpServer()` does not return, and its own `listening` handler cannot survive the server
 * being closed under it. So the `listening` event only stops the server from serving (each connection it accepts is
 * destroyed at once); the adapter's `listen` callback, which Fastify calls once every server listens (in the same
 * tick as their `listening` events, before any accept), checks every address Fastify listens on, closes all its
 * servers on a problem and fails `app.listen()` with the same error. Listening through the Fastify instance itself
 * (no `app.listen()` to fail), an `onListen` hook makes the same check, closes the additional servers, leaves the
 * main one refusing every connection and logs the error.
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
    const adapter = this.adapterHost.httpAdapter as unknown as ListeningAdapter | undefined;
    const fastify = adapter?.getType?.() === 'fastify';
    const server: unknown = adapter?.getHttpServer();
    if (server instanceof TlsServer) {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        "MtlsModule option proxy.trust is 'loopback': the sidecar terminates TLS and the application serves plain HTTP on " +
          'a loopback address. ' +
          (fastify
            ? 'Create the app with a plain new FastifyAdapter(), not mtlsFastifyAdapter()'
            : 'Create the app without httpsOptions') +
          ', or use proxy.trust { spiffeIds } to keep mTLS to the proxy',
      );
    }
    const net = server as Server | undefined;
    if (adapter === undefined || net === undefined || typeof net.prependListener !== 'function') {
      throw new MtlsConfigError(
        'ERR_MTLS_CONFIG_INVALID',
        `proxy.trust 'loopback' needs the HTTP server to check its address: ${HOW}`,
      );
    }
    if (fastify) this.#guardFastify(adapter, net);
    else this.#guardServer(net);
  }

  #guardServer(net: Server): void {
    const check = (): void => {
      const problem = loopbackListenProblem(net.address());
      if (problem === undefined) return;
      const error = listenError(problem);
      net.close();
      // app.listen() waits on 'error'; without a listener, log rather than crash the process.
      if (net.listenerCount('error') > 0) net.emit('error', error);
      else this.#logger.error(error.message);
    };
    net.prependListener('listening', check);
    if (net.listening) check();
  }

  #guardFastify(adapter: ListeningAdapter, net: Server): void {
    const instance = (adapter.getInstance?.() ?? {}) as FastifyListening & object;
    let refused = false;
    // Destroys what a refused server accepts, until it is closed.
    const gate = (socket: Socket): void => {
      if (refused) socket.destroy();
    };
    net.prependListener('connection', gate);
    let viaAdapter = false;
    const problemOf = (): string | undefined =>
      loopbackListenProblems([net.address(), ...(typeof instance.addresses === 'function' ? instance.addresses() : [])]);
    // Stops every server from serving: the main one through the gate, Fastify's additional ones closed.
    const refuse = (): void => {
      refused = true;
      for (const additional of serverBindingsOf(instance) ?? []) (additional as Server).close();
    };
    net.prependListener('listening', () => {
      if (loopbackListenProblem(net.address()) !== undefined) refused = true;
    });
    // Listening without the adapter (the Fastify instance's own listen()): nothing to fail but the log. Fastify runs
    // onListen hooks once every server listens, in the same tick.
    instance.addHook?.('onListen', (done: () => void) => {
      const problem = viaAdapter ? undefined : problemOf();
      if (problem !== undefined) {
        refuse();
        this.#logger.error(listenError(problem).message);
      }
      done();
    });
    const listen = adapter.listen.bind(adapter);
    adapter.listen = (...args: unknown[]): unknown => {
      const at = args.findLastIndex((arg) => typeof arg === 'function');
      if (at < 0) return listen(...args);
      viaAdapter = true;
      const callback = args[at] as (error: Error | null, address?: unknown) => void;
      args[at] = (error: Error | null, address?: unknown): void => {
        if (error) return callback(error, address);
        const problem = problemOf();
        if (problem === undefined) return callback(error, address);
        refuse();
        net.close();
        callback(listenError(problem));
      };
      return listen(...args);
    };
  }
}
