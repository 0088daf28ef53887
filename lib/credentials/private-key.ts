import { inspect } from 'node:util';
import { MtlsError } from '../errors/mtls.errors.js';

const REDACTED = '[private key redacted]';

/**
 * Holds private key bytes so that they cannot leak by accident: `String()`, `JSON.stringify`,
 * `util.inspect` and Nest's Logger all print a placeholder. Only `pem()` gives the bytes, for TLS.
 * The bytes live in memory of their own, never in Node's shared Buffer pool (whose 8 KiB slab travels whole with any
 * small Buffer that is serialised: `structuredClone`, `v8.serialize`, a worker message), and are zero-filled by
 * {@link dispose} when the credential set holding them is replaced.
 */
export class PrivateKeyMaterial {
  readonly #pem: Buffer;
  #disposed = false;

  /**
   * Takes ownership of the bytes of `pem`: they are copied into memory of their own and `pem` is zero-filled, so that
   * the only copy is the one {@link dispose} erases, and no two materials (or a caller's buffer) share it.
   */
  constructor(pem: Buffer) {
    // allocUnsafeSlow never uses the pool; the copy overwrites every byte.
    this.#pem = Buffer.allocUnsafeSlow(pem.byteLength);
    pem.copy(this.#pem);
    pem.fill(0);
  }

  /** The PEM bytes, for `tls.createSecureContext` and key checks only. Throws once disposed. */
  pem(): Buffer {
    if (this.#disposed) {
      throw new MtlsError(
        'ERR_MTLS_KEY_DISPOSED',
        'this private key was zero-filled when its credential set was replaced; read the current set from its CredentialStore',
      );
    }
    return this.#pem;
  }

  /** True once {@link dispose} ran. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Zero-fills the key bytes. Called when the set is dropped: replaced in its store, or read from disk and never
   * installed. SecureContexts already built keep working (OpenSSL holds its own copy). Idempotent.
   */
  dispose(): void {
    this.#disposed = true;
    this.#pem.fill(0);
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
