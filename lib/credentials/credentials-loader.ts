import { createHash } from 'node:crypto';
import { lstat, open, readlink, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CredentialsError, MtlsConfigError } from '../errors/mtls.errors.js';
import { errorCode } from '../errors/error-code.js';
import { describeValue } from '../format/describe-value.js';
import type { CredentialsErrorDetail } from '../errors/mtls.errors.js';
import type { CredentialFiles, CredentialsSourceOptions, Credentials, RawCredentials } from './credentials.interfaces.js';
import { validateCredentials } from './credentials-validation.js';
import type { ValidateOptions } from './credentials-validation.js';
import { findPemBlocks, redactPrivateKeys } from '../x509/pem.js';
import { PrivateKeyMaterial } from './private-key.js';
import { SECRET_DATA_LINK } from './secret-layout.js';

export { validateCredentials } from './credentials-validation.js';
export type { ValidateOptions } from './credentials-validation.js';

const SECRET_DIR_KEYS = ['dir', 'certFileName', 'keyFileName', 'caFileName', 'crlFiles'] as const;
const FILES_KEYS = ['certFile', 'keyFile', 'caFile', 'crlFile'] as const;
// A rotation retried this often while `..data` keeps moving means the writer never settles.
const MAX_READ_ATTEMPTS = 5;
// Larger than any real certificate chain or CRL; stops a path to /dev/zero from exhausting memory.
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Resolves options to absolute file paths. Throws MtlsConfigError('ERR_MTLS_CONFIG_INVALID') on malformed options.
 * `optionName` is the options path used in messages, e.g. `client.credentials`.
 */
export function resolveCredentialFiles(options: CredentialsSourceOptions, optionName = 'credentials'): CredentialFiles {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw configError(`MtlsModule option "${optionName}" must be an object: pass ${SHAPES}`);
  }
  // Fields explicitly set to undefined (spread config objects) count as absent.
  const fields = new OptionFields(
    optionName,
    Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
  );
  const present = Object.keys(fields.values);
  const dirKeys = present.filter((key) => (SECRET_DIR_KEYS as readonly string[]).includes(key));
  const fileKeys = present.filter((key) => (FILES_KEYS as readonly string[]).includes(key));
  const unknown = present.filter((key) => !dirKeys.includes(key) && !fileKeys.includes(key));
  if (unknown.length > 0) {
    throw configError(
      `MtlsModule option "${optionName}" has unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; ` +
        `use ${[...SECRET_DIR_KEYS, ...FILES_KEYS].join(', ')}`,
    );
  }
  if (dirKeys.length > 0 && fileKeys.length > 0) {
    throw configError(
      `MtlsModule option "${optionName}" mixes the Secret layout (${dirKeys.join(', ')}) with separate files ` +
        `(${fileKeys.join(', ')}); use either ${SHAPES}`,
    );
  }
  if (dirKeys.length > 0) {
    if (!dirKeys.includes('dir')) {
      throw configError(
        `MtlsModule option "${optionName}.dir" is missing: ${dirKeys.join(', ')} only apply to a Secret directory`,
      );
    }
    const dir = fields.path('dir');
    if (fields.values['crlFiles'] !== undefined && !Array.isArray(fields.values['crlFiles'])) {
      throw fields.invalid('crlFiles', 'must be an array of paths');
    }
    return {
      cert: fields.fileInDir(dir, 'certFileName', 'tls.crt'),
      key: fields.fileInDir(dir, 'keyFileName', 'tls.key'),
      ca: fields.fileInDir(dir, 'caFileName', 'ca.crt'),
      crl: fields.pathList('crlFiles', dir),
      secretDir: dir,
    };
  }
  if (fileKeys.length === 0) {
    throw configError(`MtlsModule option "${optionName}" is empty: pass ${SHAPES}`);
  }
  return {
    cert: fields.path('certFile'),
    key: fields.path('keyFile'),
    ca: fields.path('caFile'),
    crl: fields.pathList('crlFile'),
    secretDir: undefined,
  };
}

const SHAPES = '{ dir } (Kubernetes Secret layout) or { certFile, keyFile, caFile }';

function configError(message: string): MtlsConfigError {
  return new MtlsConfigError('ERR_MTLS_CONFIG_INVALID', message);
}

/** Typed access to one credentials options object, with messages that name `<optionName>.<field>`. */
class OptionFields {
  constructor(
    private readonly optionName: string,
    readonly values: Readonly<Record<string, unknown>>,
  ) {}

  invalid(key: string, problem: string, value: unknown = this.values[key]): MtlsConfigError {
    return configError(`MtlsModule option "${this.optionName}.${key}" ${problem}, got ${describeValue(value)}`);
  }

  /** A required path, absolute or resolved against `base` (default: the working directory). */
  path(key: string, base?: string): string {
    if (this.values[key] === undefined) {
      throw configError(`MtlsModule option "${this.optionName}.${key}" is missing: pass ${SHAPES}`);
    }
    return resolve(base ?? '.', this.pathString(key, this.values[key]));
  }

  /** An optional path or array of paths. */
  pathList(key: string, base?: string): string[] {
    const value = this.values[key];
    if (value === undefined) return [];
    const list: unknown = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list)) throw this.invalid(key, 'must be a path or an array of paths');
    return list.map((entry: unknown, i) => resolve(base ?? '.', this.pathString(`${key}[${i}]`, entry)));
  }

  /** A file name inside `dir`: anywhere else the `..data` swap would not cover it. */
  fileInDir(dir: string, key: string, fallback: string): string {
    const value = this.values[key];
    const name = value === undefined ? fallback : this.pathString(key, value);
    const inside = relative(dir, resolve(dir, name));
    if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
      throw this.invalid(key, `must name a file inside "${dir}"`);
    }
    return join(dir, inside);
  }

  private pathString(key: string, value: unknown): string {
    if (typeof value !== 'string' || value.trim() === '' || value.includes('\0')) {
      throw this.invalid(key, 'must be a non-empty file path', value);
    }
    return value;
  }
}

/** Which credential each file of a set holds, in hashing and reading order. */
interface FileToRead {
  readonly path: string;
  readonly field: CredentialsErrorDetail['field'];
}

function filesOf(files: CredentialFiles): FileToRead[] {
  return [
    { path: files.cert, field: 'certificate' },
    { path: files.key, field: 'key' },
    { path: files.ca, field: 'ca' },
    ...files.crl.map((path) => ({ path, field: 'crl' as const })),
  ];
}

/**
 * Reads one consistent set: for a Secret directory, resolves `..data` once, reads every file through that target and
 * re-checks the link afterwards (retrying when it moved). Throws CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE').
 */
export async function readCredentials(files: CredentialFiles): Promise<RawCredentials> {
  const toRead = filesOf(files);
  if (files.secretDir === undefined) {
    // In-place writers (spiffe-helper) give no commit point: read once; validation refuses a half-written pair.
    return assemble(
      files,
      toRead,
      await readAll(
        toRead,
        toRead.map((file) => file.path),
      ),
    );
  }
  const dataLink = join(files.secretDir, SECRET_DATA_LINK);
  for (let attempt = 1; attempt <= MAX_READ_ATTEMPTS; attempt++) {
    const target = await resolveDataLink(dataLink);
    if (target === undefined) {
      // A plain directory (no atomic writer): nothing to pin.
      return assemble(
        files,
        toRead,
        await readAll(
          toRead,
          toRead.map((file) => file.path),
        ),
      );
    }
    let contents: Buffer[];
    try {
      const paths = await Promise.all(toRead.map((file) => pathThroughData(files.secretDir!, target, file.path)));
      contents = await readAll(toRead, paths);
    } catch (error) {
      // kubelet deletes the old payload right after the swap: a vanished file is a moved link, not a missing file.
      if ((await resolveDataLink(dataLink)) !== target) continue;
      throw error;
    }
    let moved = true;
    try {
      moved = (await resolveDataLink(dataLink)) !== target;
    } finally {
      // A read thrown away (the link moved, or cannot be resolved any more) may hold a key: erase it.
      if (moved) for (const content of contents) content.fill(0);
    }
    if (!moved) return assemble(files, toRead, contents);
  }
  throw new CredentialsError(
    'ERR_MTLS_CREDENTIALS_UNREADABLE',
    `"${dataLink}" moved during each of ${MAX_READ_ATTEMPTS} consecutive reads`,
    {
      file: dataLink,
      field: 'certificate',
      fix: 'the Secret volume is being rewritten continuously; check what updates it (the next reload retries)',
    },
  );
}

async function resolveDataLink(dataLink: string): Promise<string | undefined> {
  try {
    return await realpath(dataLink);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw new CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE', `cannot resolve "${dataLink}" (${errorCode(error)})`, {
      file: dataLink,
      field: 'certificate',
      fix: 'check that the Secret volume is mounted and readable by this process',
    });
  }
}

/**
 * Maps `<dir>/tls.crt` to `<resolved ..data>/tls.crt` when the visible entry is kubelet's `..data/tls.crt` link
 * (or is missing, as after the kubelet restart bug kubernetes#121472). Anything else is read as it is.
 */
async function pathThroughData(dir: string, dataTarget: string, file: string): Promise<string> {
  const rel = relative(dir, file);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return file;
  const first = rel.split(sep)[0]!;
  const visible = join(dir, first);
  try {
    const info = await lstat(visible);
    if (!info.isSymbolicLink()) return file;
    const target = resolve(dir, await readlink(visible));
    return target === join(dir, SECRET_DATA_LINK, first) ? join(dataTarget, rel) : file;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return join(dataTarget, rel);
    return file;
  }
}

/** Reads the files concurrently; on failure reports the first failing file in set order, so errors are stable. */
async function readAll(toRead: readonly FileToRead[], paths: readonly string[]): Promise<Buffer[]> {
  const results = await Promise.allSettled(toRead.map((file, i) => readFileChecked(file, paths[i]!)));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    // The files that were read go with the error: one of them may be the key.
    for (const result of results) if (result.status === 'fulfilled') result.value.fill(0);
    throw failed.reason;
  }
  return results.map((result) => (result as PromiseFulfilledResult<Buffer>).value);
}

async function readFileChecked(file: FileToRead, path: string): Promise<Buffer> {
  let content: Buffer;
  try {
    content = await readBounded(path);
  } catch (error) {
    throw await unreadable(file, error);
  }
  if (content.length === 0) {
    throw new CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE', 'the file is empty', {
      file: file.path,
      field: file.field,
      fix: 'the writer may be mid-update (the next reload retries); otherwise check what writes this file',
    });
  }
  return content;
}

async function readBounded(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  const chunks: Buffer[] = [];
  try {
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) {
        // Never Buffer.concat: below 4 KiB it returns a slice of the shared pool, which leaves with any small Buffer
        // that is serialised. One buffer of its own, and the chunks (which may hold key bytes) zero-filled.
        const content = Buffer.allocUnsafeSlow(total);
        let offset = 0;
        for (const part of chunks) {
          offset += part.copy(content, offset);
          part.fill(0);
        }
        return content;
      }
      total += bytesRead;
      chunks.push(chunk.subarray(0, bytesRead));
      if (total > MAX_FILE_BYTES) throw Object.assign(new Error('file too large'), { code: 'EFBIG' });
    }
  } catch (error) {
    for (const part of chunks) part.fill(0);
    throw error;
  } finally {
    await handle.close();
  }
}

async function unreadable(file: FileToRead, error: unknown): Promise<CredentialsError> {
  const code = errorCode(error);
  const detail = (reason: string, fix: string): CredentialsError =>
    new CredentialsError('ERR_MTLS_CREDENTIALS_UNREADABLE', reason, { file: file.path, field: file.field, fix });
  switch (code) {
    case 'ENOENT': {
      const parent = await firstMissingParent(file.path);
      return parent === undefined
        ? detail(
            'the file does not exist',
            'check the path and that the process can read it (for a Secret volume: that the Secret has this key)',
          )
        : detail(`the directory "${parent}" does not exist`, 'check the path, and that the volume is mounted there');
    }
    case 'EACCES':
    case 'EPERM':
      return detail(
        'permission denied',
        `make the file and its directories readable by the user this process runs as${process.getuid === undefined ? '' : ` (uid ${process.getuid()})`}; for a Secret volume set defaultMode or fsGroup`,
      );
    case 'EISDIR':
      return detail('the path is a directory, not a file', 'point the option at the PEM file inside it');
    case 'ENOTDIR':
      return detail('a parent of the path is not a directory', 'check the path');
    case 'ELOOP':
      return detail('the path is a symbolic link loop', 'check the links on the path');
    case 'EFBIG':
      return detail(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB`, 'point the option at a PEM file');
    default:
      return detail(`the file cannot be read (${code ?? 'unknown error'})`, 'check the path and that the process can read it');
  }
}

async function firstMissingParent(path: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let dir = resolve(path, '..'); ; dir = resolve(dir, '..')) {
    try {
      await stat(dir);
      return missing;
    } catch {
      missing = dir;
    }
    if (dir === resolve(dir, '..')) return missing;
  }
}

function assemble(files: CredentialFiles, toRead: readonly FileToRead[], contents: readonly Buffer[]): RawCredentials {
  const hash = createHash('sha256');
  for (const [i, file] of toRead.entries()) {
    const content = contents[i]!;
    // Field and length framing: moving bytes from one file to the next changes the hash.
    hash.update(`${file.field}\0${content.length}\0`);
    hash.update(content);
  }
  const crlPems: string[] = [];
  const crlFiles: string[] = [];
  for (const [i, file] of toRead.entries()) {
    if (file.field !== 'crl') continue;
    for (const pem of splitCrls(file, contents[i]!)) {
      crlPems.push(pem);
      crlFiles.push(file.path);
    }
  }
  const raw: RawCredentials = {
    files,
    // A combined key+certificate file (cert-manager tls-combined.pem) must not leave key bytes in these strings.
    certPem: redactPrivateKeys(contents[0]!),
    key: new PrivateKeyMaterial(contents[1]!),
    caPem: redactPrivateKeys(contents[2]!),
    crlPems,
    crlFiles,
    contentHash: hash.digest('hex'),
  };
  // Every file's bytes are now in strings (keys redacted) or in the key material: the buffers may hold a key, erase them.
  for (const [i, content] of contents.entries()) if (i !== 1) content.fill(0);
  return raw;
}

/** One PEM per `X509 CRL` block: Node loads only the first CRL of a multi-CRL PEM string. */
function splitCrls(file: FileToRead, content: Buffer): string[] {
  const scan = findPemBlocks(content);
  const fail = (reason: string, fix: string): CredentialsError =>
    new CredentialsError('ERR_MTLS_CRL_INVALID', reason, { file: file.path, field: 'crl', fix });
  if (!scan.ok) throw fail(scan.reason, 'rewrite the file as PEM "X509 CRL" blocks');
  const crls = scan.blocks.filter((block) => block.label === 'X509 CRL');
  if (crls.length === 0) {
    throw fail(
      scan.blocks.length === 0
        ? 'no PEM block found (a DER CRL?)'
        : `no "X509 CRL" block (found ${scan.blocks.map((b) => `"${b.label}"`).join(', ')})`,
      'provide PEM CRLs; convert DER with `openssl crl -inform DER -in crl.der -out crl.pem`',
    );
  }
  return crls.map((block) => `${content.toString('latin1', block.start, block.end)}\n`);
}

/** `readCredentials` then `validateCredentials`; the key of a set that fails validation is zero-filled. */
export async function loadCredentials(files: CredentialFiles, options?: ValidateOptions): Promise<Credentials> {
  const raw = await readCredentials(files);
  try {
    return validateCredentials(raw, options);
  } catch (error) {
    raw.key.dispose();
    throw error;
  }
}
