import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { WorkloadX509Source } from './x509-source.js';

/** The module's running Workload API sources (one per credential set that uses it); stopped before shutdown. */
@Injectable()
export class WorkloadApiSources implements BeforeApplicationShutdown {
  readonly #sources = new Set<WorkloadX509Source>();

  /** Registers a source to stop at shutdown. */
  add(source: WorkloadX509Source): void {
    this.#sources.add(source);
  }

  /** The sources, identity first. */
  get sources(): readonly WorkloadX509Source[] {
    return [...this.#sources];
  }

  async beforeApplicationShutdown(): Promise<void> {
    const sources = [...this.#sources];
    this.#sources.clear();
    await Promise.all(sources.map((source) => source.stop()));
  }
}
