import { createLocalJWKSet, jwtVerify } from 'jose';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_OK, EXIT_USAGE, run } from '../../lib/cli/main.js';
import { certificateThumbprint, TestPki } from '../../lib/testing/index.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nestjs-mtls-issuer-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await run(argv, { log: (m) => out.push(m), error: (m) => err.push(m) });
  return { status, out: out.join('\n'), err: err.join('\n') };
}

describe('nestjs-mtls dev-ca issuer / token', () => {
  it('creates an issuer (key 0600, jwks.json), keeps it on a second run, and prints tokens that verify against it', async () => {
    const dir = join(root, 'a');
    const created = await cli('dev-ca', 'issuer', 'init', '--dir', dir);
    expect(created).toMatchObject({ status: EXIT_OK, err: '' });
    expect(created.out).toMatch(
      /^dev token issuer created: iss https:\/\/issuer\.shop\.test, kid \S+, keys .*issuer\/jwks\.json/,
    );
    expect((await stat(join(dir, 'issuer', 'issuer.key'))).mode & 0o777).toBe(0o600);
    expect((await cli('dev-ca', 'issuer', 'init', '--dir', dir)).out).toMatch(/^dev token issuer already present/);

    const pki = await TestPki.create();
    const peer = await pki.peer('spiffe://shop.test/ns/web/sa/frontend');
    const certFile = join(root, 'frontend.crt');
    await import('node:fs/promises').then(({ writeFile }) => writeFile(certFile, peer.chainPem));
    const printed = await cli(
      'dev-ca',
      'token',
      '--dir',
      dir,
      '--sub',
      'alice',
      '--aud',
      'orders',
      '--ttl',
      '10m',
      '--bind-cert',
      certFile,
    );
    expect(printed.status).toBe(EXIT_OK);
    const jwks = createLocalJWKSet(JSON.parse(await readFile(join(dir, 'issuer', 'jwks.json'), 'utf8')));
    const { payload, protectedHeader } = await jwtVerify(printed.out, jwks, {
      issuer: 'https://issuer.shop.test',
      audience: 'orders',
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'alice', aud: 'orders', cnf: { 'x5t#S256': certificateThumbprint(peer.certPem) } });
    expect(payload.exp! - payload.iat!).toBe(600);
    // The private key never appears in any output.
    const key = await readFile(join(dir, 'issuer', 'issuer.key'), 'utf8');
    expect(created.out + printed.out).not.toContain(key.split('\n')[1]);
  });

  it.skipIf(process.platform === 'win32')(
    'warns on stderr, and only there, when the issuer key it reuses is readable by other users',
    async () => {
      const dir = join(root, 'loose-key');
      expect((await cli('dev-ca', 'issuer', 'init', '--dir', dir)).err).toBe('');
      const keyFile = join(dir, 'issuer', 'issuer.key');
      await chmod(keyFile, 0o644);
      const warning = `warning: ${keyFile} is readable by other users (mode 0644); run chmod 600 on it`;
      const reused = await cli('dev-ca', 'issuer', 'init', '--dir', dir);
      expect(reused).toMatchObject({ status: EXIT_OK, err: warning });
      const printed = await cli('dev-ca', 'token', '--dir', dir, '--sub', 'alice', '--aud', 'orders');
      expect(printed).toMatchObject({ status: EXIT_OK, err: warning });
      expect(printed.out).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      await chmod(keyFile, 0o600);
      expect((await cli('dev-ca', 'token', '--dir', dir, '--sub', 'alice', '--aud', 'orders')).err).toBe('');
    },
  );

  it('writes its files through no planted temporary path: a symlink there neither receives the key nor becomes issuer.key', async () => {
    const dir = join(root, 'planted');
    const folder = join(dir, 'issuer');
    await mkdir(folder, { recursive: true, mode: 0o700 });
    // Another local user's file, and links at the temporary names the writer would use in this process.
    const victim = join(root, 'victim.txt');
    await writeFile(victim, 'not a key\n', { mode: 0o644 });
    for (const name of ['issuer.key', 'jwks.json', 'issuer.json']) {
      await symlink(victim, join(folder, `${name}.${process.pid}.tmp`));
    }
    expect(await cli('dev-ca', 'issuer', 'init', '--dir', dir)).toMatchObject({ status: EXIT_OK, err: '' });
    expect(await readFile(victim, 'utf8')).toBe('not a key\n');
    const key = await lstat(join(folder, 'issuer.key'));
    expect(key.isFile()).toBe(true);
    expect(key.mode & 0o777).toBe(0o600);
    for (const name of ['jwks.json', 'issuer.json']) expect((await lstat(join(folder, name))).isFile()).toBe(true);
  });

  it.each([
    [['dev-ca', 'token', '--aud', 'orders'], '"dev-ca token" needs --sub'],
    [['dev-ca', 'token', '--sub', 'alice'], '"dev-ca token" needs --aud'],
    [['dev-ca', 'token', '--sub', 'a', '--aud', 'o', '--ttl', '10'], '--ttl "10" is not a duration'],
    [['dev-ca', 'issuer'], '"dev-ca issuer" needs a subcommand: init'],
  ])('refuses %j with a usage error', async (argv, message) => {
    const result = await cli(...argv, '--dir', join(root, 'b'));
    expect(result.status).toBe(EXIT_USAGE);
    expect(result.err).toContain(message);
  });
});
