import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Package specifiers loaded by static (value) imports and re-exports reachable from `entry`, by importing file. */
function staticImports(entry: string): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const pending = [resolve(root, entry)];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    for (const statement of source.statements) {
      let specifier: string | undefined;
      if (ts.isImportDeclaration(statement) && !statement.importClause?.isTypeOnly) {
        specifier = (statement.moduleSpecifier as ts.StringLiteral).text;
      } else if (ts.isExportDeclaration(statement) && !statement.isTypeOnly && statement.moduleSpecifier !== undefined) {
        specifier = (statement.moduleSpecifier as ts.StringLiteral).text;
      }
      if (specifier === undefined) continue;
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

function grpcImporters(entry: string): string[] {
  return [...staticImports(entry)].flatMap(([file, specifiers]) =>
    specifiers.filter((s) => s.startsWith('@grpc/')).map((s) => `${file.slice(root.length + 1)}: ${s}`),
  );
}

describe('@grpc/grpc-js stays out of the load path unless the Workload API is used', () => {
  it.each(['lib/index.ts', 'lib/workload-api/index.ts', 'lib/testing/index.ts'])('no static import of it from %s', (entry) => {
    expect(grpcImporters(entry)).toEqual([]);
  });

  it('is loaded by a dynamic import in the transport (and the test server) only', () => {
    const transport = readFileSync(resolve(root, 'lib/workload-api/workload-api.transport.ts'), 'utf8');
    expect(transport).toContain("await import('@grpc/grpc-js')");
  });
});
