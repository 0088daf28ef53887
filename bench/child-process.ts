import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { LoadReport, ServerReport } from './protocol.js';

/** Whether the server and the load generator run on separate CPUs. */
export interface Pinning {
  readonly applied: boolean;
  /** `taskset -c` list of the servers. */
  readonly serverCpus: string | undefined;
  /** `taskset -c` list of the load generators. */
  readonly loadCpus: string | undefined;
  /** Why pinning is off. */
  readonly reason: string | undefined;
}

/** Pins servers to CPU 0 and load generators to CPU 1 when `taskset` works and there are two CPUs or more. */
export function detectPinning(disabled: boolean): Pinning {
  const off = (reason: string): Pinning => ({ applied: false, serverCpus: undefined, loadCpus: undefined, reason });
  if (disabled) return off('disabled with --no-pin');
  if (availableParallelism() < 2) return off(`only ${availableParallelism()} CPU available`);
  const probe = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
  if (probe.error !== undefined) return off(`taskset unavailable (${probe.error.message}); install util-linux`);
  if (probe.status !== 0) return off(`taskset -c 1 exited with ${String(probe.status)} (affinity not permitted here)`);
  return { applied: true, serverCpus: '0', loadCpus: '1', reason: undefined };
}

/** `getconf CLK_TCK`, the unit of utime/stime in `/proc/<pid>/stat`; Linux has used 100 for decades. */
export function clockTicksPerSecond(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const value = Number.parseInt(result.stdout ?? '', 10);
  return Number.isInteger(value) && value > 0 ? value : 100;
}

/** utime + stime of every thread of `pid`, in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`). */
export function processCpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // The command name (field 2) may contain spaces and parentheses: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The compiled sibling module `name` (`.js` next to this file). */
export function siblingScript(name: string): string {
  return fileURLToPath(new URL(`./${name}.js`, import.meta.url));
}

/** Starts `node <script> <json>` with an IPC channel, under `taskset -c <cpus>` when given (its threads inherit it). */
export function startChild(
  script: string,
  config: unknown,
  options: { cpus?: string | undefined; execArgv?: readonly string[] } = {},
): ChildProcess {
  const nodeArgs = [...(options.execArgv ?? []), script, JSON.stringify(config)];
  const stdio: ['ignore', 'inherit', 'inherit', 'ipc'] = ['ignore', 'inherit', 'inherit', 'ipc'];
  // taskset execs node in place: the child's pid is node's, so /proc/<pid>/stat is the server's own.
  return options.cpus === undefined
    ? spawn(process.execPath, nodeArgs, { stdio })
    : spawn('taskset', ['-c', options.cpus, process.execPath, ...nodeArgs], { stdio });
}

/** The child's next IPC message of the given type; rejects on a `failed` report, on exit or after `timeoutMs`. */
export function nextMessage<T extends { type: string }>(child: ChildProcess, type: T['type'], timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    const onMessage = (message: { type?: unknown; message?: unknown }): void => {
      if (message.type === type) {
        cleanup();
        resolve(message as T);
      } else if (message.type === 'failed') {
        cleanup();
        reject(new Error(`child ${child.pid ?? '?'} failed: ${String(message.message)}`));
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      const how = signal ?? `code ${String(code)}`;
      reject(new Error(`child ${child.pid ?? '?'} exited (${how}) before sending "${type}"`));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`child ${child.pid ?? '?'} sent no "${type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Asks a child to stop over IPC, then kills it if it has not exited within `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send({ type: 'stop' });
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

/** Sends a report to the parent over IPC and waits until it is written. */
export function report(message: ServerReport | LoadReport): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.send === undefined) {
      reject(new Error('this benchmark process must be started by bench/run.js (no IPC channel)'));
      return;
    }
    process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}
