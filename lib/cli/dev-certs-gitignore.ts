import { appendFile, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** What {@link ignoreDevCertificates} found or did. */
export interface DevCertificatesIgnore {
  readonly status: 'added' | 'present' | 'no-gitignore';
  /** The `.gitignore` beside the folder (whether or not it exists). */
  readonly gitignore: string;
  /** The line that ignores the folder, e.g. `/.dev-certs/`. */
  readonly entry: string;
}

/** Whether a `.gitignore` line already ignores the folder `name` at its own level. */
function ignores(line: string, name: string): boolean {
  const pattern = line.trim();
  return [name, `${name}/`, `/${name}`, `/${name}/`, `${name}/*`, `/${name}/*`, `${name}/**`, `/${name}/**`].includes(pattern);
}

/**
 * The dev CA folder holds a CA private key: adds it to the `.gitignore` beside it when one exists there and does not
 * ignore it yet. Never creates a `.gitignore` (the folder may not be a repository's root).
 */
export async function ignoreDevCertificates(dir: string): Promise<DevCertificatesIgnore> {
  const folder = resolve(dir);
  const name = basename(folder);
  const gitignore = join(dirname(folder), '.gitignore');
  const entry = `/${name}/`;
  let text: string;
  try {
    text = await readFile(gitignore, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'no-gitignore', gitignore, entry };
    throw error;
  }
  if (text.split(/\r?\n/).some((line) => ignores(line, name))) return { status: 'present', gitignore, entry };
  const separator = text === '' || text.endsWith('\n') ? '' : '\n';
  await appendFile(gitignore, `${separator}# nestjs-mtls dev CA: holds a CA private key\n${entry}\n`);
  return { status: 'added', gitignore, entry };
}

/** One line telling the user that the folder holds a CA key, and whether it is git-ignored. */
export function describeDevCertificatesIgnore(result: DevCertificatesIgnore, shownDir: string, shownGitignore: string): string {
  const holds = `${shownDir} holds the dev CA's private key`;
  switch (result.status) {
    case 'added':
      return `${holds}: added "${result.entry}" to ${shownGitignore} so that it is never committed`;
    case 'present':
      return `${holds}; ${shownGitignore} already keeps it out of git`;
    case 'no-gitignore':
      return `${holds}: keep it out of version control (add "${result.entry}" to your .gitignore)`;
  }
}
