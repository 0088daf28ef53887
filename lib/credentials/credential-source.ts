import type { CredentialStore } from './credential-store.js';

/** What a streaming credentials source (the Workload API) reports about itself, for health and status pages. */
export interface CredentialSourceStatus {
  readonly kind: 'workload-api';
  /** The endpoint, as configured. */
  readonly endpoint: string;
  /** `streaming`: updates arrive; `reconnecting`: the agent is away, the last good set serves; `failed`: gave up. */
  readonly state: 'streaming' | 'reconnecting' | 'failed';
  /** Why the stream is not streaming, while it is not. */
  readonly problem: string | undefined;
  /** When the state last changed. */
  readonly since: Date;
}

const sources = new WeakMap<CredentialStore, () => CredentialSourceStatus>();

/** Ties a store to the source that feeds it (file sources register nothing: their refusals are reload outcomes). */
export function registerCredentialSource(store: CredentialStore, status: () => CredentialSourceStatus): void {
  sources.set(store, status);
}

/** The status of the source feeding `store`, if it registered one. */
export function credentialSourceStatus(store: CredentialStore): CredentialSourceStatus | undefined {
  return sources.get(store)?.();
}
