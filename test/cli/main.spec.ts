import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, run } from '../../lib/cli/main.js';
import { loadCredentials, resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nestjs-mtls-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function freshDir(): string {
  counter += 1;
  return join(root, `d${counter}`);
}

/** Runs the command line in-process and captures what it writes. */
async function cli(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await run(argv, { log: (line) => out.push(line), error: (line) => err.push(line) });
  return { status, out: out.join('\n'), err: err.join('\n') };
}

function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----|\s/g, '');
}

describe('nestjs-mtls --help', () => {
  it.each([['--help'], ['-h'], ['help']])('%s prints the usage on stdout and exits 0', async (flag) => {
    const { status, out, err } = await cli(flag);
    expect(status).toBe(EXIT_OK);
    expect(err).toBe('');
    expect(out).toContain('For development and tests only. Production certificates come from cert-manager,\nVault PKI or SPIRE');
    expect(out).toContain('nestjs-mtls dev-ca init');
    expect(out).toContain('nestjs-mtls dev-ca issue <name> --spiffe-id <id>');
    expect(out).toContain('nestjs-mtls inspect <cert.pem> [--key <key.pem>]');
  });

  it.each([
    ['dev-ca', '--help'],
    ['dev-ca', 'init', '--help'],
    ['dev-ca', 'issue', '-h'],
    ['inspect', '--help'],
  ])('%s %s prints the usage too', async (...argv) => {
    const { status, out } = await cli(...argv);
    expect(status).toBe(EXIT_OK);
    expect(out).toContain('Usage:');
  });

  it('without a command prints the usage on stderr and exits 2', async () => {
    const { status, out, err } = await cli();
    expect(status).toBe(EXIT_USAGE);
    expect(out).toBe('');
    expect(err).toContain('Usage:');
  });
});

describe('usage errors exit 2 with a message and a pointer to --help', () => {
  it.each<[string[], string]>([
    [['deploy'], 'unknown command "deploy"'],
    [['dev-ca'], '"dev-ca" needs a subcommand: init or issue'],
    [['dev-ca', 'rotate'], 'unknown dev-ca subcommand "rotate"; use init or issue'],
    [['dev-ca', 'init', 'extra'], '"dev-ca init" takes no arguments, got "extra"'],
    [
      ['dev-ca', 'init', '--trust-domain', 'spiffe://shop.test'],
      '--trust-domain: must be a trust domain name such as shop.test (no spiffe:// scheme)',
    ],
    [
      ['dev-ca', 'init', '--trust-domain', 'Shop.test'],
      '--trust-domain: "Shop.test" is not a trust domain name: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ],
    [['dev-ca', 'init', '--validity', '1y'], '--validity "1y" is not a duration; use e.g. 90s, 30m, 24h, 7d or 1h30m'],
    [
      ['dev-ca', 'issue', '--spiffe-id', ORDERS],
      '"dev-ca issue" needs the name of the certificate set, e.g. dev-ca issue orders --spiffe-id spiffe://shop.test/ns/shop/sa/orders',
    ],
    [['dev-ca', 'issue', 'orders'], '"dev-ca issue" needs --spiffe-id, e.g. --spiffe-id spiffe://shop.test/ns/shop/sa/orders'],
    [['dev-ca', 'issue', 'a', 'b', '--spiffe-id', ORDERS], '"dev-ca issue" takes one name, got "a" "b"'],
    [['dev-ca', 'issue', 'orders', '--spiffe-id'], "Option '--spiffe-id <value>' argument missing"],
    [
      ['dev-ca', 'issue', 'orders', '--spiffe-id', 'orders'],
      '--spiffe-id: "orders" is not a SPIFFE ID: scheme is missing or invalid',
    ],
    [
      ['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--ip', 'localhost'],
      '--ip: "localhost" is not an IPv4 or IPv6 address',
    ],
    [
      ['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--dns', 'a b'],
      '--dns: "a b" is not a DNS name (labels of letters, digits, "-" and "_", e.g. orders.shop.svc)',
    ],
    [
      ['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--validity', '24'],
      '--validity "24" is not a duration; use e.g. 90s, 30m, 24h, 7d or 1h30m',
    ],
    [
      ['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--key-algorithm', 'dsa'],
      '--key-algorithm "dsa" is not one of ecdsa-p256, ecdsa-p384, rsa-2048, ed25519',
    ],
    [['dev-ca', 'issue', '../orders', '--spiffe-id', ORDERS], '<name>: "../orders" must be a folder name'],
    [['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--bogus'], "Unknown option '--bogus'"],
    [['inspect'], '"inspect" takes one certificate file, e.g. inspect .dev-certs/orders/tls.crt --key .dev-certs/orders/tls.key'],
    [['unknown\u001b[31m'], 'unknown command "unknown\\x1b[31m"'],
  ])('%j', async (argv, message) => {
    const dir = freshDir();
    const withDir = argv[0] === 'dev-ca' && argv.length > 1 ? [argv[0], argv[1]!, '--dir', dir, ...argv.slice(2)] : argv;
    const { status, out, err } = await cli(...withDir);
    expect(status).toBe(EXIT_USAGE);
    expect(out).toBe('');
    expect(err).toContain(`nestjs-mtls: ${message}`);
    expect(err).toMatch(/\nRun "nestjs-mtls --help" for usage\.$/);
    // Bad input is refused before anything is written.
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('nestjs-mtls dev-ca', () => {
  it('init creates a CA, then reuses it, and refuses another trust domain without --force (exit 1)', async () => {
    const dir = freshDir();
    const created = await cli('dev-ca', 'init', '--dir', dir, '--trust-domain', 'shop.test');
    expect(created.status).toBe(EXIT_OK);
    expect(created.out).toMatch(
      /^created the dev CA for trust domain shop\.test in .*\/ca \(valid until \d{4}-.*, SHA-256 [0-9A-F:]{95}\)\n/,
    );
    expect(created.out).toContain('production certificates come from cert-manager, Vault PKI or SPIRE');

    const reused = await cli('dev-ca', 'init', '--dir', dir);
    expect(reused.status).toBe(EXIT_OK);
    expect(reused.out.split('\n')[0]).toMatch(
      /^using the dev CA in .*\/ca \(trust domain shop\.test, valid until .*, 364d23h left\)$/,
    );

    const keyBefore = await readFile(join(dir, 'ca', 'ca.key'), 'utf8');
    const refused = await cli('dev-ca', 'init', '--dir', dir, '--trust-domain', 'other.test');
    expect(refused.status).toBe(EXIT_FAILURE);
    expect(refused.err).toMatch(
      /^nestjs-mtls: refusing to overwrite the dev CA key .*ca\.key: .*`nestjs-mtls dev-ca init --force --trust-domain other\.test`.* \[ERR_MTLS_CONFIG_INVALID\]$/,
    );
    expect(await readFile(join(dir, 'ca', 'ca.key'), 'utf8')).toBe(keyBefore);

    const forced = await cli('dev-ca', 'init', '--dir', dir, '--trust-domain', 'other.test', '--force');
    expect(forced.status).toBe(EXIT_OK);
    expect(forced.out).toMatch(/^replaced the dev CA in .* with a new one for trust domain other\.test/);
    expect(await readFile(join(dir, 'ca', 'ca.key'), 'utf8')).not.toBe(keyBefore);
  });

  it('init says the folder holds a CA key, and adds it to the .gitignore beside it once', async () => {
    const project = freshDir();
    await mkdir(project, { recursive: true });
    await writeFile(join(project, '.gitignore'), 'node_modules/\ndist/');
    const dir = join(project, '.dev-certs');
    const first = await cli('dev-ca', 'init', '--dir', dir, '--trust-domain', 'shop.test');
    expect(first.status).toBe(EXIT_OK);
    expect(first.out).toMatch(
      /\n.*\.dev-certs\/ holds the dev CA's private key: added "\/\.dev-certs\/" to .*\.gitignore so that it is never committed/,
    );
    expect(await readFile(join(project, '.gitignore'), 'utf8')).toBe(
      'node_modules/\ndist/\n# nestjs-mtls dev CA: holds a CA private key\n/.dev-certs/\n',
    );
    const again = await cli('dev-ca', 'init', '--dir', dir);
    expect(again.out).toMatch(/\.dev-certs\/ holds the dev CA's private key; .*\.gitignore already keeps it out of git$/);
    expect((await readFile(join(project, '.gitignore'), 'utf8')).match(/\/\.dev-certs\//g)).toHaveLength(1);
  });

  it('init without a .gitignore beside the folder says to ignore it, and creates none', async () => {
    const project = freshDir();
    const dir = join(project, '.dev-certs');
    const { out } = await cli('dev-ca', 'issue', 'orders', '--dir', dir, '--spiffe-id', 'spiffe://shop.test/ns/shop/sa/orders');
    expect(out).toContain(
      `.dev-certs/ holds the dev CA's private key: keep it out of version control (add "/.dev-certs/" to your .gitignore)`,
    );
    await expect(stat(join(project, '.gitignore'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('issue re-issues on another --validity and says why', async () => {
    const dir = freshDir();
    const spiffe = ['--dir', dir, '--spiffe-id', 'spiffe://shop.test/ns/shop/sa/orders'];
    await cli('dev-ca', 'issue', 'orders', ...spiffe);
    const week = await cli('dev-ca', 'issue', 'orders', ...spiffe, '--validity', '7d');
    expect(week.out).toMatch(/^issued orders: .* \(validity-changed: valid for 1d0h, requested --validity 7d0h\)$/m);
  });

  it('init without a CA or --trust-domain fails and says what to pass', async () => {
    const dir = freshDir();
    const { status, err } = await cli('dev-ca', 'init', '--dir', dir);
    expect(status).toBe(EXIT_FAILURE);
    expect(err).toBe(
      `nestjs-mtls: there is no dev CA in ${join(dir, 'ca')} yet: pass trustDomain (--trust-domain, e.g. shop.test) to create one [ERR_MTLS_CONFIG_INVALID]`,
    );
  });

  it('issue writes a set that loads, keeps it on a second run, and re-issues it with --force', async () => {
    const dir = freshDir();
    const args = ['dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--dns', 'localhost', '--ip', '127.0.0.1', '--dir', dir];
    const first = await cli(...args);
    expect(first.status).toBe(EXIT_OK);
    const lines = first.out.split('\n');
    expect(lines[0]).toMatch(/^created the dev CA for trust domain shop\.test in /);
    expect(lines[1]).toMatch(/ holds the dev CA's private key: keep it out of version control/);
    expect(lines[2]).toMatch(
      new RegExp(`^issued orders: ${ORDERS} in .*orders, valid until \\d{4}-.*Z \\(new: no certificate yet\\)$`),
    );
    const credentials = await loadCredentials(resolveCredentialFiles({ dir: join(dir, 'orders') }));
    expect(credentials.identity.spiffeId).toBe(ORDERS);
    expect(credentials.identity.dnsNames).toEqual(['localhost']);
    expect(credentials.identity.ipAddresses).toEqual(['127.0.0.1']);

    const second = await cli(...args);
    expect(second.status).toBe(EXIT_OK);
    expect(second.out).toMatch(new RegExp(`^kept   orders: ${ORDERS} in .*orders \\(still valid for (?:23h5\\dm|1d0h)\\)$`));

    const forced = await cli(...args, '--force');
    expect(forced.out).toMatch(/\(forced: re-issue requested \(force\)\)$/);
  });

  it('issue takes --validity and --key-algorithm', async () => {
    const dir = freshDir();
    const { status } = await cli(
      'dev-ca',
      'issue',
      'orders',
      '--spiffe-id',
      ORDERS,
      '--validity',
      '2h',
      '--key-algorithm',
      'ECDSA-P384',
      '--dir',
      dir,
    );
    expect(status).toBe(EXIT_OK);
    const inspected = await cli('inspect', join(dir, 'orders', 'tls.crt'), '--json');
    const json = JSON.parse(inspected.out) as { publicKey: string; remainingMs: number };
    expect(json.publicKey).toBe('ECDSA P-384');
    expect(json.remainingMs).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(json.remainingMs).toBeLessThanOrEqual(2 * 3_600_000);
  });

  it('issue prints the trust-domain warning on stderr', async () => {
    const dir = freshDir();
    await cli('dev-ca', 'init', '--dir', dir, '--trust-domain', 'shop.test');
    const { status, err } = await cli(
      'dev-ca',
      'issue',
      'stranger',
      '--spiffe-id',
      'spiffe://elsewhere.test/ns/shop/sa/orders',
      '--dir',
      dir,
    );
    expect(status).toBe(EXIT_OK);
    expect(err).toMatch(
      /^warning: spiffe:\/\/elsewhere\.test\/ns\/shop\/sa\/orders is outside the dev CA's trust domain "shop\.test"/,
    );
  });
});

describe('nestjs-mtls inspect', () => {
  let dir: string;

  beforeAll(async () => {
    dir = freshDir();
    await cli('dev-ca', 'issue', 'orders', '--spiffe-id', ORDERS, '--dns', 'localhost', '--ip', '127.0.0.1', '--dir', dir);
    await cli('dev-ca', 'issue', 'inventory', '--spiffe-id', INVENTORY, '--dir', dir);
  });

  it('prints identity, SANs, issuer, validity, fingerprint and key match, never the key', async () => {
    const cert = join(dir, 'orders', 'tls.crt');
    const key = join(dir, 'orders', 'tls.key');
    const { status, out, err } = await cli('inspect', cert, '--key', key);
    expect(status).toBe(EXIT_OK);
    expect(err).toBe('');
    const fingerprint = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', cert], { encoding: 'utf8' })
      .stdout.trim()
      .replace('sha256 Fingerprint=', '');
    const rows = Object.fromEntries(out.split('\n').map((line) => [line.slice(0, 14).trim(), line.slice(16)]));
    expect(rows).toMatchObject({
      subject: '(empty)',
      'SPIFFE ID': ORDERS,
      'URI SANs': ORDERS,
      'DNS SANs': 'localhost',
      'IP SANs': '127.0.0.1',
      issuer: 'CN=nestjs-mtls dev CA shop.test',
      CA: 'no',
      'key usage': 'digitalSignature',
      'ext. key usage': 'serverAuth, clientAuth',
      'public key': 'ECDSA P-256',
      'SHA-256': fingerprint,
    });
    expect(rows['not after']).toMatch(/^\d{4}-.*Z \((?:23h5\dm|1d0h) left\)$/);
    expect(rows.key).toMatch(/tls\.key matches the certificate$/);
    expect(out).not.toContain(pemBody(await readFile(key, 'utf8')).slice(0, 40));
    expect(out).not.toContain('PRIVATE KEY');
  });

  it('exits 1 when the key belongs to another certificate', async () => {
    const { status, out } = await cli('inspect', join(dir, 'orders', 'tls.crt'), '--key', join(dir, 'inventory', 'tls.key'));
    expect(status).toBe(EXIT_FAILURE);
    expect(out).toMatch(/tls\.key DOES NOT MATCH the certificate$/);
  });

  it('prints JSON with --json, without the key', async () => {
    const key = join(dir, 'orders', 'tls.key');
    const { status, out } = await cli('inspect', join(dir, 'orders', 'tls.crt'), '--key', key, '--json');
    expect(status).toBe(EXIT_OK);
    expect(JSON.parse(out)).toMatchObject({ spiffeId: ORDERS, keyMatches: true, validity: 'valid' });
    expect(out).not.toContain(pemBody(await readFile(key, 'utf8')).slice(0, 40));
  });

  it('exits 1 with the file and the fix when the file is not a certificate', async () => {
    const { status, err } = await cli('inspect', join(dir, 'orders', 'tls.key'));
    expect(status).toBe(EXIT_FAILURE);
    expect(err).toMatch(
      /tls\.key \(certificate\): .*Fix: this file holds a private key: pass the certificate file, and give the key with --key \[ERR_MTLS_CREDENTIALS_NOT_PEM\]$/,
    );
  });
});
