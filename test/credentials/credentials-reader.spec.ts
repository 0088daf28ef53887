import { execFileSync } from 'node:child_process';
import { chmod, mkdir, open, readFile, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials, resolveCredentialFiles, validateCredentials } from '../../lib/credentials/credentials-loader.js';
import type { CredentialFiles, RawCredentials } from '../../lib/credentials/credentials.interfaces.js';
import { CredentialsError } from '../../lib/errors/mtls.errors.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import { writeKubernetesSecret } from '../../lib/credentials/secret-layout.js';
import { expectNoKeyMaterial, keyLines, tempRoot } from './fixtures.js';

type Payload = {
  readonly 'tls.crt': string;
  readonly 'tls.key': string;
  readonly 'ca.crt': string;
};

let root: string;
let ca: CertificateAuthority;
let setA: Payload;
let setB: Payload;
let dirCounter = 0;

beforeAll(async () => {
  root = await tempRoot('reader');
  ca = await CertificateAuthority.create({ commonName: 'Reader Root CA', trustDomain: 'shop.test' });
  const a = await ca.issue({ spiffeId: 'spiffe://shop.test/a' });
  const b = await ca.issue({ spiffeId: 'spiffe://shop.test/b' });
  setA = { 'tls.crt': a.chainPem, 'tls.key': a.keyPem, 'ca.crt': ca.rootPem };
  setB = { 'tls.crt': b.chainPem, 'tls.key': b.keyPem, 'ca.crt': ca.rootPem };
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function newDir(): Promise<string> {
  dirCounter += 1;
  const dir = join(root, `d${dirCounter}`);
  await mkdir(dir);
  return dir;
}

async function expectUnreadable(files: CredentialFiles, file: string, field: string, reason: RegExp, fix: RegExp): Promise<void> {
  const error = await readCredentials(files).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CredentialsError);
  const err = error as CredentialsError;
  expect({ code: err.code, file: err.file, field: err.field }).toEqual({ code: 'ERR_MTLS_CREDENTIALS_UNREADABLE', file, field });
  expect(err.reason).toMatch(reason);
  expect(err.fix).toMatch(fix);
  expect(err.message).toContain(file);
}

function pairOf(raw: RawCredentials): string {
  const cert = raw.certPem;
  const key = raw.key.pem().toString();
  if (cert === setA['tls.crt'] && key === setA['tls.key']) return 'A';
  if (cert === setB['tls.crt'] && key === setB['tls.key']) return 'B';
  return 'mismatch';
}

describe('readCredentials: separate files', () => {
  async function separate(payload: Partial<Record<string, string | Buffer>>): Promise<CredentialFiles> {
    const dir = await newDir();
    for (const [name, content] of Object.entries(payload)) await writeFile(join(dir, name), content!);
    return resolveCredentialFiles({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') });
  }

  it('reads every file, keeps the key out of every rendering and hashes the content', async () => {
    const files = await separate(setA);
    const raw = await readCredentials(files);
    expect(raw.certPem).toBe(setA['tls.crt']);
    expect(raw.caPem).toBe(setA['ca.crt']);
    expect(raw.key.pem().toString()).toBe(setA['tls.key']);
    expect(raw.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expectNoKeyMaterial(raw, keyLines(setA['tls.key']));
    expect((await readCredentials(files)).contentHash).toBe(raw.contentHash);
  });

  it('leaves no key bytes in the certificate and bundle strings of a combined key+certificate file', async () => {
    const combined = setA['tls.key'] + setA['tls.crt'];
    const files = await separate({ 'tls.crt': combined, 'tls.key': combined, 'ca.crt': setA['ca.crt'] + setA['tls.key'] });
    const raw = await readCredentials(files);
    expect(raw.certPem).toBe(
      `-----BEGIN REDACTED PRIVATE KEY BLOCK-----\n-----END REDACTED PRIVATE KEY BLOCK-----\n${setA['tls.crt']}`,
    );
    expect(raw.key.pem().toString()).toBe(combined);
    expectNoKeyMaterial(raw, keyLines(setA['tls.key']));
    expect(() => validateCredentials(raw)).toThrow('the trust bundle holds a private key');
    const certOnly = await readCredentials({ ...files, ca: (await separate(setA)).ca });
    expect(validateCredentials(certOnly).warnings).toEqual([
      expect.stringContaining('holds a private key next to the certificates'),
    ]);
  });

  it('frames the hash per file: moving bytes from one file to the next changes it', async () => {
    const one = await readCredentials(await separate({ 'tls.crt': 'ab', 'tls.key': 'c', 'ca.crt': 'd' }));
    const two = await readCredentials(await separate({ 'tls.crt': 'a', 'tls.key': 'bc', 'ca.crt': 'd' }));
    expect(one.contentHash).not.toBe(two.contentHash);
  });

  it('splits CRL files into one PEM per CRL and remembers where each came from', async () => {
    const dir = await newDir();
    const [crl1, crl2, crl3] = [await ca.createCrl([]), await ca.createCrl(['0a']), await ca.createCrl(['0b'])];
    await Promise.all([
      writeFile(join(dir, 'tls.crt'), setA['tls.crt']),
      writeFile(join(dir, 'tls.key'), setA['tls.key']),
      writeFile(join(dir, 'ca.crt'), setA['ca.crt']),
      writeFile(join(dir, 'two.crl'), `# comment\n${crl1}${crl2}`),
      writeFile(join(dir, 'one.crl'), crl3!),
    ]);
    const files = resolveCredentialFiles({
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      caFile: join(dir, 'ca.crt'),
      crlFile: [join(dir, 'two.crl'), join(dir, 'one.crl')],
    });
    const raw = await readCredentials(files);
    expect(raw.crlPems).toEqual([crl1, crl2, crl3]);
    expect(raw.crlFiles).toEqual([join(dir, 'two.crl'), join(dir, 'two.crl'), join(dir, 'one.crl')]);
  });

  it('explains a missing file', async () => {
    const files = await separate({ 'tls.crt': 'x', 'ca.crt': 'x' });
    await expectUnreadable(
      files,
      files.key,
      'key',
      /^the file does not exist$/,
      /check the path and that the process can read it/,
    );
  });

  it('explains a missing directory', async () => {
    const files = resolveCredentialFiles({ certFile: join(root, 'nope', 'deeper', 'tls.crt'), keyFile: '/k', caFile: '/c' });
    await expectUnreadable(
      files,
      files.cert,
      'certificate',
      new RegExp(`^the directory "${join(root, 'nope')}" does not exist$`),
      /mounted/,
    );
  });

  it('explains a directory given as a file', async () => {
    const dir = await newDir();
    const files = await separate(setA);
    await expectUnreadable(
      { ...files, ca: dir },
      dir,
      'ca',
      /^the path is a directory, not a file$/,
      /point the option at the PEM file/,
    );
  });

  it('explains an empty file', async () => {
    const files = await separate({ ...setA, 'ca.crt': '' });
    await expectUnreadable(files, files.ca, 'ca', /^the file is empty$/, /mid-update/);
  });

  it('explains a symbolic link loop', async () => {
    const files = await separate({ 'tls.crt': 'x', 'ca.crt': 'x' });
    await symlink(`${files.key}.loop`, files.key);
    await symlink(files.key, `${files.key}.loop`);
    await expectUnreadable(files, files.key, 'key', /symbolic link loop/, /check the links/);
  });

  it('explains a path through a file', async () => {
    const files = await separate(setA);
    await expectUnreadable(
      { ...files, ca: join(files.cert, 'ca.crt') },
      join(files.cert, 'ca.crt'),
      'ca',
      /not a directory/,
      /check the path/,
    );
  });

  it.skipIf(process.getuid?.() === 0)('explains a permission problem (not testable as root)', async () => {
    const files = await separate(setA);
    await chmod(files.key, 0o000);
    await expectUnreadable(files, files.key, 'key', /^permission denied$/, /readable by the user this process runs as/);
  });
});

describe('readCredentials: Kubernetes Secret directory', () => {
  it('reads through ..data exactly as kubelet lays it out, before and after an update', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, setA);
    expect(await readlink(join(dir, 'tls.crt'))).toBe('..data/tls.crt');
    expect(await readlink(join(dir, '..data'))).toMatch(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$/);
    const files = resolveCredentialFiles({ dir });
    const first = await readCredentials(files);
    expect(pairOf(first)).toBe('A');
    await writeKubernetesSecret(dir, setB);
    const second = await readCredentials(files);
    expect(pairOf(second)).toBe('B');
    expect(second.contentHash).not.toBe(first.contentHash);
    expect(validateCredentials(second).identity.spiffeId).toBe('spiffe://shop.test/b');
  });

  it('reads a plain directory without ..data as it is', async () => {
    const dir = await newDir();
    for (const [name, content] of Object.entries(setA)) await writeFile(join(dir, name), content);
    expect(pairOf(await readCredentials(resolveCredentialFiles({ dir })))).toBe('A');
  });

  it('reads from ..data when a visible link is missing (kubernetes#121472)', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, setA);
    await unlink(join(dir, 'tls.key'));
    expect(pairOf(await readCredentials(resolveCredentialFiles({ dir })))).toBe('A');
  });

  it('reads a visible entry that is not a ..data link from where it is', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, setA);
    await unlink(join(dir, 'ca.crt'));
    await writeFile(join(dir, 'ca.crt'), setB['ca.crt']);
    const raw = await readCredentials(resolveCredentialFiles({ dir }));
    expect(raw.caPem).toBe(setB['ca.crt']);
  });

  it('names the visible file when the Secret lacks a key', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, { 'tls.crt': setA['tls.crt'], 'tls.key': setA['tls.key'] });
    const files = resolveCredentialFiles({ dir });
    await expectUnreadable(files, files.ca, 'ca', /^the file does not exist$/, /Secret has this key/);
  });

  /**
   * kubelet's AtomicWriter steps, split so a test can hold the reader inside the old payload: the old payload's
   * `tls.key` is a FIFO, so the reader blocks on it until the test has swapped `..data` and written the key.
   */
  async function payloadDir(dir: string, name: string, payload: Payload, fifoKey: boolean): Promise<void> {
    const ts = join(dir, name);
    await mkdir(ts, { mode: 0o700 });
    await chmod(ts, 0o755);
    for (const [file, content] of Object.entries(payload)) {
      if (file === 'tls.key' && fifoKey) execFileSync('mkfifo', ['-m', '0644', join(ts, file)]);
      else await writeFile(join(ts, file), content, { flag: 'w', mode: 0o644 });
    }
  }

  async function swapData(dir: string, name: string): Promise<void> {
    await symlink(name, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  }

  async function secretWithBlockingKey(payload: Payload): Promise<{ dir: string; files: CredentialFiles }> {
    const dir = await newDir();
    await payloadDir(dir, '..2026_11_28_10_00_00.0', payload, true);
    await swapData(dir, '..2026_11_28_10_00_00.0');
    for (const file of Object.keys(payload)) await symlink(join('..data', file), join(dir, file));
    return { dir, files: resolveCredentialFiles({ dir }) };
  }

  it('never returns a mismatched pair when ..data is swapped mid-read: it re-reads the new payload', async () => {
    const { dir, files } = await secretWithBlockingKey(setA);
    const reading = readCredentials(files);
    // Opening the FIFO for writing completes once the reader has opened it: the reader is now inside payload A.
    const fifo = await open(join(dir, '..2026_11_28_10_00_00.0', 'tls.key'), 'w');
    await payloadDir(dir, '..2026_11_28_10_00_01.1', setB, false);
    await swapData(dir, '..2026_11_28_10_00_01.1');
    // What a reader that followed the visible links one by one would pair with cert A: B's key.
    await fifo.writeFile(setB['tls.key']);
    await fifo.close();
    const raw = await reading;
    expect(pairOf(raw)).toBe('B');
    expect(validateCredentials(raw).identity.spiffeId).toBe('spiffe://shop.test/b');
  });

  it('gives up with a clear error when ..data moves during every attempt', async () => {
    const { dir, files } = await secretWithBlockingKey(setA);
    const reading = readCredentials(files).then(
      () => undefined,
      (e: unknown) => e,
    );
    let current = '..2026_11_28_10_00_00.0';
    for (let attempt = 1; attempt <= 5; attempt++) {
      const fifo = await open(join(dir, current, 'tls.key'), 'w');
      const next = `..2026_11_28_10_00_0${attempt}.${attempt}`;
      await payloadDir(dir, next, attempt % 2 === 0 ? setA : setB, true);
      await swapData(dir, next);
      await fifo.writeFile(setA['tls.key']);
      await fifo.close();
      current = next;
    }
    const error = (await reading) as CredentialsError;
    expect(error).toBeInstanceOf(CredentialsError);
    expect(error.code).toBe('ERR_MTLS_CREDENTIALS_UNREADABLE');
    expect(error.file).toBe(join(dir, '..data'));
    expect(error.reason).toMatch(/moved during each of 5 consecutive reads/);
    expect(error.fix).toMatch(/rewritten continuously/);
  });

  it('returns only consistent pairs while kubelet-style updates race the reader', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, setA);
    const files = resolveCredentialFiles({ dir });
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 40; i++) {
        await writeKubernetesSecret(dir, i % 2 === 0 ? setB : setA);
        await new Promise((done) => setTimeout(done, 1));
      }
      writing = false;
    })();
    const seen = new Map<string, number>();
    let reads = 0;
    while (writing) {
      const raw = await readCredentials(files);
      const pair = pairOf(raw);
      seen.set(pair, (seen.get(pair) ?? 0) + 1);
      reads += 1;
    }
    await writer;
    expect(seen.get('mismatch')).toBeUndefined();
    expect(reads).toBeGreaterThan(10);
    expect([...seen.keys()].sort()).toEqual(['A', 'B']);
  });

  it('keeps the key out of renderings of what it read', async () => {
    const dir = await newDir();
    await writeKubernetesSecret(dir, setA);
    const raw = await readCredentials(resolveCredentialFiles({ dir }));
    expectNoKeyMaterial(raw, keyLines(setA['tls.key']));
    expect(inspect(raw)).toContain('[private key redacted]');
    expect(await readFile(join(dir, 'tls.key'), 'utf8')).toBe(setA['tls.key']);
  });
});
