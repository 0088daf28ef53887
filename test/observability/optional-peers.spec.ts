import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { TestPki } from '../../lib/testing/index.js';
import { INVENTORY } from './fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const OPTIONAL_PEERS = /^(?:@nestjs\/terminus|prom-client|@nestjs\/platform-fastify|fastify)(?:\/|$)/;

/** Every module reachable from `entry` by static and dynamic imports and re-exports: package specifiers by importer. */
function importGraph(entry: string): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const pending = [entry];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const { fileName: specifier } of importedFiles) {
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
        if (!existsSync(target)) throw new Error(`${file}: cannot resolve ${specifier}`);
        pending.push(target);
      } else {
        packages.set(file, [...(packages.get(file) ?? []), specifier]);
      }
    }
  }
  return packages;
}

function optionalPeerImports(entry: string): string[] {
  return [...importGraph(resolve(root, entry))].flatMap(([file, specifiers]) =>
    specifiers.filter((specifier) => OPTIONAL_PEERS.test(specifier)).map((specifier) => `${file}: ${specifier}`),
  );
}

describe('optional peer dependencies (@nestjs/terminus, prom-client, @nestjs/platform-fastify, fastify)', () => {
  it('are imported by nothing reachable from the main entry', () => {
    expect(optionalPeerImports('lib/index.ts')).toEqual([]);
  });

  it.each([
    ['lib/observability/terminus/index.ts', '@nestjs/terminus'],
    ['lib/observability/prometheus/index.ts', 'prom-client'],
    ['lib/fastify/index.ts', '@nestjs/platform-fastify'],
  ])('are imported by their own subpath entry: %s → %s', (entry, peer) => {
    expect(optionalPeerImports(entry).some((line) => line.endsWith(`: ${peer}`))).toBe(true);
  });

  describe('with all uninstalled (a child Node process that cannot resolve them)', () => {
    const hooks = pathToFileURL(resolve(root, 'test/observability/fixtures/without-optional-peers.hooks.mjs')).href;
    const url = (path: string): string => JSON.stringify(pathToFileURL(resolve(root, path)).href);
    let result: {
      exports: string[];
      spiffeId: string;
      subpaths: Record<string, { loaded: true } | { code: string; message: string }>;
    };

    // One child process for every check: starting Node with the TypeScript hooks is the slow part.
    beforeAll(async () => {
      const pki = await TestPki.create({ trustDomain: 'shop.test' });
      const { dir } = await pki.credentials(INVENTORY);
      const script = `
        import 'reflect-metadata';
        import { NestFactory } from '@nestjs/core';
        const mtls = await import(${url('lib/index.ts')});
        const root = mtls.MtlsModule.forRoot({ credentials: { dir: process.env.CREDENTIALS_DIR } });
        const app = await NestFactory.create(root, { httpsOptions: mtls.mtlsHttpsOptions(), logger: false });
        await app.listen(0, '127.0.0.1');
        const status = app.get(mtls.CredentialsStatus).status();
        await app.close();
        const subpaths = {};
        const entries = {
          terminus: ${url('lib/observability/terminus/index.ts')},
          prometheus: ${url('lib/observability/prometheus/index.ts')},
          fastify: ${url('lib/fastify/index.ts')},
        };
        for (const [name, entry] of Object.entries(entries)) {
          try {
            await import(entry);
            subpaths[name] = { loaded: true };
          } catch (error) {
            subpaths[name] = { code: error.code, message: error.message };
          }
        }
        console.log(JSON.stringify({ exports: Object.keys(mtls), spiffeId: status.current.spiffeId, subpaths }));
      `;
      const register = `data:text/javascript,import{register}from'node:module';register(${JSON.stringify(hooks)});`;
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', register, '--input-type=module', '--eval', script],
        { cwd: root, env: { ...process.env, CREDENTIALS_DIR: dir }, timeout: 60_000 },
      );
      result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    }, 60_000);

    it('the main entry loads, and an mTLS app starts, listens and closes', () => {
      expect(result.spiffeId).toBe(INVENTORY);
      expect(result.exports).toEqual(
        expect.arrayContaining(['MtlsModule', 'MtlsEvents', 'CredentialsStatus', 'mtlsHttpsOptions']),
      );
    });

    it.each([
      ['terminus', '@nestjs/terminus'],
      ['prometheus', 'prom-client'],
      ['fastify', '@nestjs/platform-fastify'],
    ])('the %s subpath entry fails to load, naming %s', (subpath, peer) => {
      expect(result.subpaths[subpath]).toEqual({
        code: 'ERR_MODULE_NOT_FOUND',
        message: expect.stringMatching(new RegExp(`^Cannot find package '${peer}' imported from file://`)),
      });
    });
  });
});
