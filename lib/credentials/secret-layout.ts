import { chmod, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';

/** The `..data` symlink kubelet renames to publish a new Secret payload atomically. */
export const SECRET_DATA_LINK = '..data';

function timestampedName(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${stamp}.${randomInt(0, 2 ** 32 - 1)}`;
}

/**
 * Writes files into `dir` exactly as kubelet's AtomicWriter updates a mounted Secret: a new timestamped directory,
 * a `..data_tmp` symlink renamed over `..data` (the single commit point), visible `name -> ..data/name` links created
 * once, then the old directory removed. No event ever names the visible files on an update.
 * Steps follow kubernetes/pkg/volume/util/atomic_writer.go (`Write`); files get `options.mode` (default 0600).
 */
export async function writeKubernetesSecret(
  dir: string,
  files: Readonly<Record<string, string | Buffer>>,
  options: { mode?: number } = {},
): Promise<void> {
  // Like a Secret volume with defaultMode 0600: test keys in a shared temp dir stay private.
  const mode = options.mode ?? 0o600;
  await mkdir(dir, { recursive: true });
  let oldTarget: string | undefined;
  try {
    oldTarget = await readlink(join(dir, SECRET_DATA_LINK));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const tsName = timestampedName(new Date());
  const tsDir = join(dir, tsName);
  await mkdir(tsDir, { mode: 0o700 });
  await chmod(tsDir, 0o755);
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(tsDir, name), content, { flag: 'w', mode });
    await chmod(join(tsDir, name), mode);
  }
  await symlink(tsName, join(dir, `${SECRET_DATA_LINK}_tmp`));
  await rename(join(dir, `${SECRET_DATA_LINK}_tmp`), join(dir, SECRET_DATA_LINK));
  for (const name of Object.keys(files)) {
    try {
      await readlink(join(dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await symlink(join(SECRET_DATA_LINK, name), join(dir, name));
    }
  }
  if (oldTarget !== undefined && oldTarget !== tsName) {
    await rm(join(dir, oldTarget), { recursive: true, force: true });
  }
}
