import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { temporaryDir } from '../support/temporary-dirs.js';
import { extractSnippets, type Snippet } from './readme-snippets.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** Like a fresh app's node_modules: links to the repository's packages, beside a real folder for nestjs-mtls. */
async function linkNodeModules(project: string): Promise<void> {
  const modules = join(project, 'node_modules');
  await mkdir(modules, { recursive: true });
  for (const entry of await readdir(join(root, 'node_modules'))) {
    if (entry.startsWith('.')) continue;
    await symlink(join(root, 'node_modules', entry), join(modules, entry));
  }
}

/** Runs tsc; resolves with its exit status and output (tsc exits 2 on type errors). */
async function typecheck(project: string): Promise<{ status: number; output: string }> {
  try {
    const { stdout } = await run(process.execPath, [tsc, '-p', join(project, 'tsconfig.json')], { cwd: project });
    return { status: 0, output: stdout };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { status: e.code ?? 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** tsc's `src/main.ts(3,5): error …` as `README.md:142:5 (src/main.ts): error …`. */
function inReadme(output: string, snippets: readonly Snippet[]): string {
  return output.replace(/^(\S+?)\((\d+),(\d+)\)/gm, (whole, file: string, line: string, column: string) => {
    const snippet = snippets.find((s) => s.file === file);
    return snippet === undefined ? whole : `README.md:${snippet.line + Number(line) - 1}:${column} (${file})`;
  });
}

describe('README code blocks', () => {
  let snippets: Snippet[];
  let fragments: number;
  let project: string;

  beforeAll(async () => {
    ({ snippets, fragments } = extractSnippets(await readFile(join(root, 'README.md'), 'utf8')));
    // The package as users get it, inside the app's node_modules (its own imports resolve from there, as installed):
    // package.json (its "exports") and the declarations the build emits.
    project = await temporaryDir('nestjs-mtls-readme-app-');
    await linkNodeModules(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'readme-app', private: true, type: 'module' }));
    const pkg = join(project, 'node_modules', 'nestjs-mtls');
    await mkdir(pkg);
    await writeFile(join(pkg, 'package.json'), await readFile(join(root, 'package.json')));
    await writeFile(
      join(pkg, 'tsconfig.json'),
      JSON.stringify({
        extends: join(root, 'tsconfig.build.json'),
        compilerOptions: {
          rootDir: root,
          outDir: join(pkg, 'dist'),
          emitDeclarationOnly: true,
          declaration: true,
          sourceMap: false,
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        include: [join(root, 'lib')],
      }),
    );
    const built = await typecheck(pkg);
    if (built.status !== 0) throw new Error(`building the declarations failed:\n${built.output}`);

    // A Nest 12 app's compiler settings.
    await writeFile(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'ES2023',
          strict: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          skipLibCheck: true,
          noEmit: true,
          types: ['node'],
        },
        include: ['**/*.ts'],
        exclude: ['node_modules'],
      }),
    );
    for (const snippet of snippets) {
      await mkdir(dirname(join(project, snippet.file)), { recursive: true });
      await writeFile(join(project, snippet.file), `${snippet.code}\n`);
    }
  }, 180_000);

  it('finds the blocks meant to compile, and the marked fragments', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(12);
    expect(fragments).toBeGreaterThanOrEqual(1);
    expect(new Set(snippets.map((s) => s.file)).size).toBe(snippets.length);
    expect(snippets.map((s) => s.file)).toEqual(
      expect.arrayContaining(['src/main.ts', 'src/inventory.module.ts', 'src/orders.module.ts']),
    );
  });

  it('typecheck against the built package, and a wrong one would fail', async () => {
    // A canary: proves that a block using an API the package does not have is reported, against the built types.
    await writeFile(join(project, 'canary.ts'), "import { AllowPeers } from 'nestjs-mtls';\nAllowPeers(42);\n");
    const { status, output } = await typecheck(project);
    const errors = inReadme(output, snippets)
      .split('\n')
      .filter((line) => line.trim() !== '');
    expect(errors.filter((line) => !line.startsWith('canary.ts'))).toEqual([]);
    expect(errors.join('\n')).toMatch(
      /^canary\.ts\(2,12\): error TS2345: Argument of type 'number' is not assignable to parameter of type 'string'/,
    );
    expect(status).not.toBe(0);
  }, 180_000);
});
