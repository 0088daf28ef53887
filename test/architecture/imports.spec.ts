import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Arrows point down: the layers of lib/ as the README's layout table describes them, checked on the import graph.
const lib = fileURLToPath(new URL('../../lib/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/g;

/** Every relative import of each file under lib/, as paths relative to lib/ (`x509/der.ts`). */
const graph = new Map<string, string[]>(
  sources(lib).map((file) => {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(IMPORT)].map((m) => relative(lib, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
    return [relative(lib, file), [...new Set(targets)]];
  }),
);

/** The syntax of names (SPIFFE IDs, DNS names, IP addresses) sits below x509/, as go-spiffe's spiffeid does. */
const NAMES: ReadonlySet<string> = new Set(['identity/spiffe-id.ts', 'identity/dns-name.ts', 'identity/ip-address.ts']);

const folderOf = (path: string): string =>
  NAMES.has(path) ? 'names' : path.includes('/') ? path.slice(0, path.indexOf('/')) : '.';

/** Folders a folder must never import from (besides itself). */
const FORBIDDEN: Readonly<Record<string, readonly string[]>> = {
  names: [
    'x509',
    'identity',
    'authorization',
    'credentials',
    'server',
    'client',
    'observability',
    'cli',
    'testing',
    '.',
    'tokens',
    'proxy',
    'workload-api',
    'fastify',
  ],
  errors: [
    'x509',
    'identity',
    'authorization',
    'credentials',
    'server',
    'client',
    'observability',
    'cli',
    'testing',
    '.',
    'tokens',
    'proxy',
    'workload-api',
    'fastify',
  ],
  x509: [
    'identity',
    'authorization',
    'credentials',
    'server',
    'client',
    'observability',
    'cli',
    'testing',
    '.',
    'tokens',
    'proxy',
    'workload-api',
    'fastify',
  ],
  identity: [
    'authorization',
    'credentials',
    'server',
    'client',
    'observability',
    'cli',
    'testing',
    '.',
    'tokens',
    'proxy',
    'workload-api',
    'fastify',
  ],
  authorization: [
    'credentials',
    'server',
    'client',
    'observability',
    'cli',
    'testing',
    '.',
    'tokens',
    'proxy',
    'workload-api',
    'fastify',
  ],
  credentials: ['server', 'client', 'observability', 'cli', 'testing', 'tokens', 'proxy', 'workload-api', 'fastify'],
  observability: ['server', 'client', 'cli', 'testing', 'tokens', 'proxy', 'workload-api', 'fastify'],
  cli: ['testing', 'server', 'client', 'observability', 'tokens', 'proxy', 'workload-api', 'fastify'],

  // A credentials source (SPIFFE Workload API) over credentials/: the module and the servers consume what it installs.
  'workload-api': ['server', 'client', 'observability', 'cli', 'testing', 'tokens', 'proxy', 'fastify', '.'],
  // Nest features over server/ and client/: tokens bound to the peer, identities from a proxy, the Fastify adapter.
  tokens: ['cli', 'testing', 'proxy', 'workload-api', 'fastify'],
  proxy: ['client', 'cli', 'testing', 'tokens', 'workload-api', 'fastify'],
  fastify: ['client', 'cli', 'testing', 'tokens', 'proxy', 'workload-api', '.'],
};

describe('the import graph of lib/', () => {
  it('finds the files it checks', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('x509/certificate.ts')).toContain('x509/der.ts');
  });

  it.each(Object.entries(FORBIDDEN))('%s/ imports nothing from the layers above it', (folder, above) => {
    const upward = [...graph]
      .filter(([file]) => folderOf(file) === folder)
      .flatMap(([file, targets]) => targets.filter((t) => above.includes(folderOf(t))).map((t) => `${file} -> ${t}`));
    expect(upward).toEqual([]);
  });

  it('has no cycles between files', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, stack: string[]): void => {
      state.set(file, 'open');
      for (const target of graph.get(file) ?? []) {
        if (state.get(target) === 'open') cycles.push([...stack.slice(stack.indexOf(target)), target].join(' -> '));
        else if (!state.has(target)) visit(target, [...stack, target]);
      }
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file, [file]);
    expect(cycles).toEqual([]);
  });

  // The root holds the module's options, tokens and wiring: every folder reads the first two, the module wires them all.
  it('has no two folders importing each other', () => {
    const edges = new Set(
      [...graph].flatMap(([file, targets]) =>
        targets
          .map((t) => [folderOf(file), folderOf(t)] as const)
          .filter(([from, to]) => from !== to && from !== '.' && to !== '.')
          .map(([from, to]) => `${from} ${to}`),
      ),
    );
    const mutual = [...edges].filter((edge) => edges.has(edge.split(' ').reverse().join(' '))).sort();
    expect(mutual).toEqual([]);
  });
});
