import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { builtinModules } from 'node:module';
import { mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAs, type CallerCredentials } from '../../lib/testing/index.js';
import { temporaryDir } from '../support/temporary-dirs.js';

/**
 * `npm run test:package` (not part of `npm test`: `npm pack` rebuilds dist/): packs the package as `npm pack` of a
 * clone does, installs the tarball into a fresh folder beside the peer dependencies (linked from this repository's
 * node_modules, so no network), makes certificates with the package's own CLI and starts a minimal Nest app on it.
 */

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackageJson {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, { import?: string; types?: string } | string>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
}

const APP = `
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AllowPeers, MtlsModule, mtlsHttpsOptions } from 'nestjs-mtls';

class StockController {
  get() {
    return { available: 7 };
  }
}
Get(':sku')(StockController.prototype, 'get', Object.getOwnPropertyDescriptor(StockController.prototype, 'get'));
AllowPeers('orders')(StockController.prototype, 'get', Object.getOwnPropertyDescriptor(StockController.prototype, 'get'));
Controller('stock')(StockController);

class AppModule {}
Module({
  imports: [
    MtlsModule.forRoot({
      credentials: { dir: '.dev-certs/inventory' },
      peers: { orders: 'spiffe://shop.test/ns/shop/sa/orders' },
    }),
  ],
  controllers: [StockController],
})(AppModule);

const app = await NestFactory.create(AppModule, { httpsOptions: mtlsHttpsOptions() });
app.enableShutdownHooks();
await app.listen(0, '127.0.0.1');
console.log('app listening on port ' + app.getHttpServer().address().port);
`;

/** Every bare module specifier a built file imports (static and dynamic imports with a string literal). */
function bareImports(source: string): string[] {
  const found = new Set<string>();
  for (const match of source.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) {
    const specifier = match[1]!;
    if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
    const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
    found.add(name);
  }
  return [...found];
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

async function loadPeer(dir: string): Promise<CallerCredentials> {
  const [chainPem, keyPem, caPem] = await Promise.all(
    ['tls.crt', 'tls.key', 'ca.crt'].map((f) => readFile(join(dir, f), 'utf8')),
  );
  return { chainPem: chainPem!, keyPem: keyPem!, caPem: caPem! };
}

describe('the packed tarball in a fresh app', () => {
  let app: string;
  let installed: string;
  let manifest: PackageJson;
  let files: string[];
  let child: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    const packs = await temporaryDir('nestjs-mtls-pack-');
    // As `npm pack` of a fresh clone: "prepack" removes dist/, "prepare" builds it.
    const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', packs], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string }>;
    app = await temporaryDir('nestjs-mtls-app-');
    const modules = join(app, 'node_modules');
    await mkdir(modules);
    await run('tar', ['-xzf', join(packs, packed!.filename), '-C', modules]);
    installed = join(modules, 'nestjs-mtls');
    await rename(join(modules, 'package'), installed);
    manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as PackageJson;
    files = await filesUnder(installed);
    // Its dependencies and the app's peer dependencies, already installed here: linked instead of downloaded.
    for (const entry of await readdir(join(root, 'node_modules'))) {
      if (!entry.startsWith('.')) await symlink(join(root, 'node_modules', entry), join(modules, entry));
    }
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }));
    await writeFile(join(app, 'main.mjs'), APP);
  }, 180_000);

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('holds the built library, its declarations and the CLI, and nothing of the repository', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts']));
    for (const entry of Object.values(manifest.exports)) {
      const targets = typeof entry === 'string' ? [entry] : [entry.import, entry.types];
      for (const target of targets)
        if (target !== undefined && target !== './package.json') expect(files).toContain(target.replace(/^\.\//, ''));
    }
    for (const bin of Object.values(manifest.bin)) expect(files).toContain(bin.replace(/^\.\//, ''));
    expect(files.filter((f) => !f.startsWith('dist/lib/') && !['package.json', 'README.md', 'LICENSE'].includes(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('imports only Node built-ins, its dependencies and its peer dependencies', async () => {
    // Its own name too: a message quotes `import { mtlsHttpsOptions } from 'nestjs-mtls'`, and self-reference resolves.
    const allowed = new Set([
      manifest.name,
      ...builtinModules,
      ...Object.keys(manifest.dependencies),
      ...Object.keys(manifest.peerDependencies),
    ]);
    const undeclared: string[] = [];
    for (const file of files.filter((f) => f.endsWith('.js'))) {
      for (const name of bareImports(await readFile(join(installed, file), 'utf8'))) {
        if (!allowed.has(name)) undeclared.push(`${file}: ${name}`);
      }
    }
    expect(undeclared).toEqual([]);
  });

  it('makes certificates with its CLI, starts a Nest app, and admits only the named peer', async () => {
    const cli = join(installed, manifest.bin['nestjs-mtls']!);
    expect((await readFile(cli, 'utf8')).startsWith('#!/usr/bin/env node')).toBe(true);
    const issue = (name: string, id: string) =>
      run(process.execPath, [cli, 'dev-ca', 'issue', name, '--spiffe-id', id, '--ip', '127.0.0.1'], { cwd: app });
    await run(process.execPath, [cli, 'dev-ca', 'init', '--trust-domain', 'shop.test'], { cwd: app });
    await issue('inventory', 'spiffe://shop.test/ns/shop/sa/inventory');
    await issue('orders', 'spiffe://shop.test/ns/shop/sa/orders');
    await issue('payments', 'spiffe://shop.test/ns/shop/sa/payments');

    child = spawn(process.execPath, ['main.mjs'], {
      cwd: app,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the app did not start within 30 s:\n${output}`)), 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const match = /app listening on port (\d+)/.exec(output);
        if (match !== null) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      };
      child!.stdout!.on('data', onData);
      child!.stderr!.on('data', onData);
      child!.once('exit', (code) => reject(new Error(`the app exited with ${code}:\n${output}`)));
    });
    const base = `https://127.0.0.1:${port}`;
    const orders = await loadPeer(join(app, '.dev-certs', 'orders'));
    expect(await callAs(base, orders).get('/stock/42')).toMatchObject({ status: 200, body: '{"available":7}' });
    expect((await callAs(base, await loadPeer(join(app, '.dev-certs', 'payments'))).get('/stock/42')).status).toBe(403);
    expect(output).toMatch(/GET \/stock\/:sku\s+StockController\.get\s+@AllowPeers\(orders\)/);
  }, 60_000);

  it('resolves every subpath export from the app', async () => {
    const script =
      "for (const s of ['nestjs-mtls', 'nestjs-mtls/testing', 'nestjs-mtls/terminus', 'nestjs-mtls/prometheus']) await import(s);";
    await expect(run(process.execPath, ['--input-type=module', '-e', script], { cwd: app })).resolves.toBeDefined();
  }, 30_000);
});
