import { Logger } from '@nestjs/common';
import { DerError, DerReader, Tag } from '../x509/der.js';
import type { InstallLogger } from '../credentials/credentials-installer.js';
import { WorkloadApiError } from '../errors/mtls.errors.js';
import { parseCertificateDer, type CertificateInfo } from '../x509/certificate.js';
import { parseTrustDomain } from '../identity/spiffe-id.js';
import { bundleTrustDomainProblem } from '../identity/trust-anchors.js';
import type { BackoffOptions } from './workload-api.backoff.js';
import { decodeX509BundlesResponse, encodeEmpty, WORKLOAD_API_METHODS } from './workload-api.codec.js';
import { resolveWorkloadApiEndpoint } from './workload-api.endpoint.js';
import { openWorkloadApiTransport, type WorkloadApiTransport } from './workload-api.transport.js';
import { StreamWatcher } from './workload-api.watcher.js';
import { describeCallEnd } from './x509-source.js';

/** Options of {@link WorkloadX509BundleSource.connect}. */
export interface WorkloadX509BundleSourceOptions {
  /** @default `SPIFFE_ENDPOINT_SOCKET` */
  readonly socket?: string;
  /** How long `bundleFor` waits for the first message. @default 10_000 */
  readonly timeoutMs?: number;
  readonly backoff?: BackoffOptions;
  readonly logger?: InstallLogger;
}

/**
 * X.509 bundles of every trust domain the workload trusts (`FetchX509Bundles`), for a process that verifies X509-SVIDs
 * without holding one (e.g. a proxy or an auditor). Every message is the full state: a trust domain missing from it is
 * no longer trusted. A message that does not parse, or holds a bundle with the CA of another trust domain than its
 * own, is refused and the previous state kept. Services that hold an SVID get the same bundles with it through
 * `credentials: { workloadApi }`.
 */
export class WorkloadX509BundleSource {
  readonly #transport: WorkloadApiTransport;
  readonly #watcher: StreamWatcher;
  readonly #logger: InstallLogger;
  readonly #timeoutMs: number;
  #bundles: ReadonlyMap<string, readonly CertificateInfo[]> | undefined;
  #problem: string | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(transport: WorkloadApiTransport, options: WorkloadX509BundleSourceOptions) {
    this.#transport = transport;
    this.#logger = options.logger ?? new Logger('MtlsWorkloadApi');
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#watcher = new StreamWatcher({
      transport,
      method: WORKLOAD_API_METHODS.fetchX509Bundles,
      request: encodeEmpty(),
      onMessage: (message) => this.#onMessage(message),
      onRetry: (end) => {
        this.#problem = describeCallEnd(end);
      },
      onFatal: (end) => {
        this.#problem = describeCallEnd(end);
        this.#wake();
      },
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    });
  }

  /** Opens a channel (loading `@grpc/grpc-js` on first use) and starts the stream. */
  static async connect(options: WorkloadX509BundleSourceOptions = {}): Promise<WorkloadX509BundleSource> {
    const endpoint = resolveWorkloadApiEndpoint(options.socket, 'WorkloadX509BundleSource');
    const source = new WorkloadX509BundleSource(await openWorkloadApiTransport(endpoint), options);
    source.#watcher.start();
    return source;
  }

  /** The endpoint, as configured. */
  get endpoint(): string {
    return this.#transport.endpoint.address;
  }

  /** The CA certificates of `trustDomain` (a name or `spiffe://name`), or undefined when it is not trusted. */
  async bundleFor(trustDomain: string): Promise<readonly CertificateInfo[] | undefined> {
    const name = parseTrustDomain(trustDomain);
    if (this.#bundles === undefined) await this.#waitForFirst();
    return this.#bundles?.get(name);
  }

  /** The trust domains trusted now. */
  async trustDomains(): Promise<readonly string[]> {
    if (this.#bundles === undefined) await this.#waitForFirst();
    return [...(this.#bundles?.keys() ?? [])];
  }

  /** Stops the stream and closes the channel. */
  close(): void {
    this.#watcher.stop();
    this.#transport.close();
    this.#wake();
  }

  #onMessage(message: Buffer): void {
    const bundles = new Map<string, readonly CertificateInfo[]>();
    try {
      for (const [key, der] of decodeX509BundlesResponse(message).bundles) {
        const trustDomain = parseTrustDomain(key);
        const reader = DerReader.of(der);
        const certificates: CertificateInfo[] = [];
        while (!reader.done) certificates.push(parseCertificateDer(reader.readEncoded(Tag.SEQUENCE, `bundle of ${trustDomain}`)));
        if (certificates.length === 0) throw new Error(`the bundle of ${trustDomain} is empty`);
        if (certificates.some((certificate) => !certificate.isCa))
          throw new Error(`the bundle of ${trustDomain} holds a certificate that is not a CA`);
        const problem = bundleTrustDomainProblem(trustDomain, certificates);
        if (problem !== undefined) throw new Error(problem);
        bundles.set(trustDomain, Object.freeze(certificates));
      }
    } catch (error) {
      const reason = error instanceof DerError || error instanceof Error ? error.message : String(error);
      this.#problem = `X.509 bundles refused: ${reason}`;
      this.#logger.warn(`X.509 bundles from the Workload API ${this.endpoint} refused, keeping the previous ones: ${reason}`);
      return;
    }
    this.#bundles = bundles;
    this.#problem = undefined;
    this.#wake();
  }

  #waitForFirst(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(
          new WorkloadApiError(
            'ERR_MTLS_WORKLOAD_API_TIMEOUT',
            `no X.509 bundles from the Workload API ${this.endpoint} within ${this.#timeoutMs} ms${this.#problem === undefined ? '' : ` (last: ${this.#problem})`}`,
            this.endpoint,
          ),
        );
      }, this.#timeoutMs).unref();
      const wake = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        if (this.#bundles !== undefined) resolve();
        else
          reject(
            new WorkloadApiError(
              'ERR_MTLS_WORKLOAD_API_CLOSED',
              `X.509 bundles unavailable from ${this.endpoint}: ${this.#problem ?? 'closed'}`,
              this.endpoint,
            ),
          );
      };
      this.#waiters.add(wake);
    });
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}
