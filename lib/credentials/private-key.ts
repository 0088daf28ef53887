import { inspect } from 'node:util';

const REDACTED = '[private key redacted]';

/**
 * Holds private key bytes so that they cannot leak by accident: `String()`, `JSON.stringify`,
 * `util.inspect` and Nest's Logger all print a placeholder. Only `pem()` gives the bytes, for TLS.
 */
export class PrivateKeyMaterial {
  readonly #pem: Buffer;

  constructor(pem: Buffer) {
    this.#pem = pem;
  }

  /** The PEM bytes, for `tls.createSecureContext` and key checks only. */
  pem(): Buffer {
    return this.#pem;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
