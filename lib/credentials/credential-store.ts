import { MtlsError } from '../errors/mtls.errors.js';
import type { Credentials } from './credentials.interfaces.js';

/** Listener of credential changes; called synchronously, in registration order, after the swap. */
export type CredentialsListener = (current: Credentials, previous: Credentials) => void;

/**
 * Holds the current validated credentials of one set and a version that increases on every swap.
 * Consumers (the HTTPS server, the client, health, metrics) read `current` or subscribe to swaps.
 * Only validated credentials ever get in: the reloader validates before calling `replace`.
 */
export class CredentialStore {
  #current: Credentials;
  #version = 1;
  readonly #listeners = new Set<CredentialsListener>();

  constructor(initial: Credentials) {
    this.#current = initial;
  }

  get current(): Credentials {
    return this.#current;
  }

  /** 1 for the credentials loaded at startup, +1 for every successful rotation. */
  get version(): number {
    return this.#version;
  }

  /**
   * Installs a new validated set and notifies listeners. A listener that throws does not stop the others. Once every
   * listener has moved to `next`, the previous set's private key is zero-filled: consumers keep SecureContexts (OpenSSL
   * holds its own copy of the key), never the PEM bytes, so nothing still needs them.
   */
  replace(next: Credentials): void {
    if (next.key.disposed) {
      throw new MtlsError(
        'ERR_MTLS_KEY_DISPOSED',
        'cannot install a credential set whose private key was already zero-filled (a set once replaced)',
      );
    }
    const previous = this.#current;
    this.#current = next;
    this.#version++;
    const errors: unknown[] = [];
    for (const listener of this.#listeners) {
      try {
        listener(next, previous);
      } catch (error) {
        errors.push(error);
      }
    }
    // A copy of the set made with spread shares its key: erase it only when the new set holds another.
    if (previous.key !== next.key) previous.key.dispose();
    if (errors.length > 0) {
      throw new AggregateError(errors, 'a credentials listener failed');
    }
  }

  /** Registers a listener; returns the function that removes it. */
  subscribe(listener: CredentialsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
