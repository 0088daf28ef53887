import type { WorkloadApiEndpoint } from './workload-api.endpoint.js';

/** gRPC status codes the watcher acts on (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  UNAVAILABLE: 14,
} as const;

/** How a call ended. */
export interface CallEnd {
  /** The gRPC status code (0 when a stream simply ended). */
  readonly code: number;
  /** The status details, as the server or gRPC put them (no message payload bytes). */
  readonly details: string;
}

/** Handlers of one server-streaming call. */
export interface StreamHandlers {
  onMessage(message: Buffer): void;
  /** Called once, when the call is over for any reason (including `cancel()`). */
  onEnd(end: CallEnd): void;
}

/** A running server-streaming call. */
export interface StreamCall {
  cancel(): void;
}

/** The gRPC channel to one Workload API endpoint: raw messages in and out, the codec is the caller's. */
export interface WorkloadApiTransport {
  readonly endpoint: WorkloadApiEndpoint;
  stream(method: string, request: Buffer, handlers: StreamHandlers): StreamCall;
  unary(method: string, request: Buffer, timeoutMs: number): Promise<Buffer>;
  close(): void;
}

/** The metadata every Workload API request must carry; the agent refuses calls without it (SSRF protection). */
export const WORKLOAD_API_METADATA = { key: 'workload.spiffe.io', value: 'true' } as const;

const identity = (buffer: Buffer): Buffer => buffer;

/**
 * Opens a channel to `endpoint`. `@grpc/grpc-js` is imported here, on first use, so that an application that never
 * configures `workloadApi` never loads it.
 */
export async function openWorkloadApiTransport(endpoint: WorkloadApiEndpoint): Promise<WorkloadApiTransport> {
  const grpc = await import('@grpc/grpc-js');
  const client = new grpc.Client(endpoint.target, grpc.credentials.createInsecure(), {
    // A unix socket has no authority; gRPC needs one for the :authority header.
    'grpc.default_authority': 'localhost',
    // Agent restarts are handled by the watcher's own backoff; keep the channel's reconnect delays short.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
  });
  const metadata = (): InstanceType<typeof grpc.Metadata> => {
    const m = new grpc.Metadata();
    m.set(WORKLOAD_API_METADATA.key, WORKLOAD_API_METADATA.value);
    return m;
  };
  return {
    endpoint,
    stream(method, request, handlers) {
      const call = client.makeServerStreamRequest(method, identity, identity, request, metadata(), {});
      let ended = false;
      const end = (code: number, details: string): void => {
        if (ended) return;
        ended = true;
        call.removeAllListeners('data');
        handlers.onEnd({ code, details });
      };
      call.on('data', (message: Buffer) => {
        if (!ended) handlers.onMessage(message);
      });
      call.on('status', (status: { code: number; details: string }) => end(status.code, status.details));
      // 'error' always comes with a status; listening keeps it from being thrown as an unhandled event.
      call.on('error', (error: Error & { code?: number; details?: string }) =>
        end(typeof error.code === 'number' ? error.code : GrpcStatus.UNKNOWN, error.details ?? error.message),
      );
      return { cancel: () => call.cancel() };
    },
    unary(method, request, timeoutMs) {
      return new Promise<Buffer>((resolve, reject) => {
        client.makeUnaryRequest(
          method,
          identity,
          identity,
          request,
          metadata(),
          { deadline: Date.now() + timeoutMs },
          (error: (Error & { code?: number; details?: string }) | null, response?: Buffer) => {
            if (error !== null || response === undefined) {
              reject(
                Object.assign(new Error(error?.details ?? error?.message ?? 'no response'), {
                  grpcCode: error?.code ?? GrpcStatus.UNKNOWN,
                }),
              );
            } else {
              resolve(response);
            }
          },
        );
      });
    },
    close() {
      client.close();
    },
  };
}
