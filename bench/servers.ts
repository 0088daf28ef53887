import type { ChildProcess } from 'node:child_process';
import type { Pinning } from './child-process.js';
import { nextMessage, siblingScript, startChild, stopChild } from './child-process.js';
import { CALLER_SPIFFE_ID, SERVER_SPIFFE_ID, type BenchFixtures } from './fixtures.js';
import type { ServerConfig, ServerReport, ServerVariant } from './protocol.js';

/** A server child that reported ready. */
export interface RunningServer {
  readonly variant: ServerVariant;
  readonly child: ChildProcess;
  readonly port: number;
  readonly pid: number;
}

/** When a server served, on the `process.hrtime()` clock (µs): its profile without startup and shutdown. */
export interface ServingWindow {
  readonly fromUs: number;
  toUs: number;
}

/** Starts each server variant once, on demand, and stops them. */
export class Servers {
  readonly #running = new Map<ServerVariant, Promise<RunningServer>>();
  readonly #served = new Map<ServerVariant, ServingWindow>();

  constructor(
    private readonly fixtures: BenchFixtures,
    private readonly pinning: Pinning,
    /** Where `--cpu-prof` writes, or undefined not to profile. */
    private readonly profileDir: string | undefined,
  ) {}

  /** Every server that became ready, with its serving window. */
  get served(): ReadonlyMap<ServerVariant, Readonly<ServingWindow>> {
    return this.#served;
  }

  /** The running server of a variant, started on first use. */
  get(variant: ServerVariant): Promise<RunningServer> {
    let server = this.#running.get(variant);
    if (server === undefined) {
      server = this.#start(variant);
      this.#running.set(variant, server);
    }
    return server;
  }

  /** Stops a variant's server if it runs; exiting normally lets `--cpu-prof` write its profile. */
  async stop(variant: ServerVariant): Promise<void> {
    const server = this.#running.get(variant);
    this.#running.delete(variant);
    if (server === undefined) return;
    const { child } = await server;
    const window = this.#served.get(variant);
    // process.hrtime() reads CLOCK_MONOTONIC, the same clock in every process and in the profiles.
    if (window !== undefined) window.toUs = Number(process.hrtime.bigint() / 1000n);
    await stopChild(child);
  }

  /** Stops every server; a server that failed to start is skipped. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((variant) => this.stop(variant).catch(() => undefined)));
  }

  async #start(variant: ServerVariant): Promise<RunningServer> {
    const execArgv = [
      ...(variant === 'rotation' ? ['--expose-gc'] : []),
      ...(this.profileDir === undefined
        ? []
        : [
            '--cpu-prof',
            `--cpu-prof-dir=${this.profileDir}`,
            `--cpu-prof-name=server-${variant}.cpuprofile`,
            // 4 samples per ms: a function worth 1 % of the CPU still gets hundreds of samples per case.
            '--cpu-prof-interval=250',
          ]),
    ];
    const config: ServerConfig = {
      variant,
      credentialsDir: variant === 'rotation' ? this.fixtures.rotationDir : this.fixtures.serverDir,
      callerSpiffeId: CALLER_SPIFFE_ID,
      serverSpiffeId: SERVER_SPIFFE_ID,
      ...(variant === 'mtls-token' ? { jwksFile: this.fixtures.jwksFile } : {}),
    };
    const child = startChild(siblingScript('bench-server'), config, { cpus: this.pinning.serverCpus, execArgv });
    try {
      const ready = await nextMessage<Extract<ServerReport, { type: 'ready' }>>(child, 'ready', 60_000);
      this.#served.set(variant, { fromUs: ready.readyAtUs, toUs: Number.POSITIVE_INFINITY });
      return { variant, child, port: ready.port, pid: ready.pid };
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`server ${variant} did not start: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  }
}
