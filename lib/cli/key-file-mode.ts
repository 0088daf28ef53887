import { stat } from 'node:fs/promises';

/**
 * A warning when the private key `file` can be read by group or others (any of mode 0077), else undefined; rejects
 * as `stat` does when the file is missing. POSIX modes only: on Windows, where Node reports no meaningful mode,
 * nothing is said.
 */
export async function keyReadableByOthersWarning(file: string): Promise<string | undefined> {
  const mode = (await stat(file)).mode & 0o777;
  if (process.platform === 'win32' || (mode & 0o077) === 0) return undefined;
  return `${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`;
}
