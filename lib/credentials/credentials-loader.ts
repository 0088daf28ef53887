// CONTRACT STUB — implemented by the credentials helper. Keep these signatures.
import type { CredentialFiles, CredentialsSourceOptions, Credentials, CredentialUsage, RawCredentials } from './credentials.interfaces.js';

/** Resolves options to absolute file paths. Throws MtlsConfigError('ERR_MTLS_CONFIG_INVALID') on malformed options. */
export function resolveCredentialFiles(options: CredentialsSourceOptions): CredentialFiles {
  throw new Error(`not implemented ${JSON.stringify(options)}`);
}

/**
 * Reads one consistent set: for a Secret directory, resolves `..data` once, reads every file through that target and
 * re-checks the link afterwards (retrying when it moved). Throws CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE').
 */
export async function readCredentials(files: CredentialFiles): Promise<RawCredentials> {
  throw new Error(`not implemented ${files.cert}`);
}

export interface ValidateOptions {
  /** Usages the leaf must carry in its EKU. @default ['serverAuth', 'clientAuth'] */
  usages?: readonly CredentialUsage[];
  /** @default new Date() */
  now?: Date;
  /** Warn when less than this remains before NotAfter. @default a third of the certificate's lifetime */
  expiryWarningMs?: number;
}

/** Validates a raw set (PEM, key match, validity, chain to bundle, EKU, X509-SVID rules). Throws CredentialsError. */
export function validateCredentials(raw: RawCredentials, options?: ValidateOptions): Credentials {
  throw new Error(`not implemented ${raw.files.cert} ${String(options)}`);
}

/** `readCredentials` then `validateCredentials`. */
export async function loadCredentials(files: CredentialFiles, options?: ValidateOptions): Promise<Credentials> {
  return validateCredentials(await readCredentials(files), options);
}
