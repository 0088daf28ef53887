import type { RawCredentials } from './credentials.interfaces.js';

// RawCredentials has no slot for the origin of each CRL; the reader records it here so errors can name the file.
const sources = new WeakMap<RawCredentials, readonly string[]>();

/** Records, for a set built by the reader, the file each entry of `crlPems` came from. */
export function recordCrlSources(raw: RawCredentials, files: readonly string[]): void {
  sources.set(raw, files);
}

/** The file that CRL `index` of `raw` came from, when the reader recorded it. */
export function crlSourceFile(raw: RawCredentials, index: number): string | undefined {
  return sources.get(raw)?.[index];
}
