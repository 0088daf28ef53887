import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { CredentialsReloader } from '../../lib/credentials/credentials-reloader.js';
import { loadCredentials, readCredentials, validateCredentials } from '../../lib/credentials/credentials-loader.js';
import { PrivateKeyMaterial } from '../../lib/credentials/private-key.js';
import { resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';
import { MtlsError } from '../../lib/errors/mtls.errors.js';
import { TestPki, secretFiles, writeKubernetesSecret, type KeyAlgorithm, type TestPeer } from '../../lib/testing/index.js';
import { get, keepAliveAgent, startLifecycleApp, waitFor, type LifecycleApp } from '../lifecycle/lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

/** The DER body of a PEM key as 24-byte windows of its base64 text: any of them found elsewhere is a leak. */
function keyFragments(keyPem: string): Buffer[] {
  const body = keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const fragments: Buffer[] = [];
  for (let i = 0; i + 24 <= body.length; i += 24) fragments.push(Buffer.from(body.slice(i, i + 24), 'latin1'));
  return fragments;
}

function holdsKeyBytes(haystack: Buffer, keyPem: string): boolean {
  return keyFragments(keyPem).some((fragment) => haystack.includes(fragment));
}

/**
 * Writes `text` without leaving a copy in the pool: `writeFile(path, string)` encodes through a pooled Buffer, which
 * would put the test's own copy of the key where the code under test must not.
 */
async function writeSecretFile(path: string, text: string): Promise<void> {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text, 'latin1'));
  bytes.write(text, 'latin1');
  try {
    await writeFile(path, bytes, { mode: 0o600 });
  } finally {
    bytes.fill(0);
  }
}

/** Writes `peer` as cert.pem, key.pem and ca.pem in `dir`, keeping key bytes out of the pool. */
async function writePeerFiles(dir: string, peer: TestPeer): Promise<{ certFile: string; keyFile: string; caFile: string }> {
  const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'ca.pem') };
  await writeSecretFile(files.certFile, peer.chainPem);
  await writeSecretFile(files.keyFile, peer.keyPem);
  await writeSecretFile(files.caFile, peer.caPem);
  return files;
}

/** True when `buffer` is the only view of its memory: not a slice of Node's shared pool. */
function ownsItsMemory(buffer: Buffer): boolean {
  return buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength;
}

/*
 * Node hands out small Buffers (< 4 KiB) as slices of one shared 8 KiB slab; serialising any of them (structuredClone,
 * v8.serialize, a worker message) copies the whole slab. A private key in that slab leaves with unrelated data.
 */
describe('private key bytes in memory', () => {
  let pki: TestPki;
  const peers = new Map<KeyAlgorithm, TestPeer>();
  const algorithms: KeyAlgorithm[] = ['ECDSA-P256', 'ECDSA-P384', 'Ed25519', 'RSA-2048'];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    for (const keyAlgorithm of algorithms) {
      peers.set(keyAlgorithm, await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'], keyAlgorithm }));
    }
  });

  it.each(algorithms)('a %s key lives in a buffer of its own, never in the shared pool', async (keyAlgorithm) => {
    const peer = peers.get(keyAlgorithm)!;
    const dir = await temporaryDir('nestjs-mtls-key-memory-');
    const files = resolveCredentialFiles(await writePeerFiles(dir, peer));
    const raw = await readCredentials(files);
    // Small buffers made right after the read come from the pool: serialised, they carry the whole slab, and no key byte.
    const probe = Buffer.from('an unrelated small buffer');
    const serialised = serialize(Buffer.from('another one'));
    expect(ownsItsMemory(probe)).toBe(false);
    expect(holdsKeyBytes(Buffer.from(structuredClone(probe).buffer), peer.keyPem)).toBe(false);
    expect(holdsKeyBytes(serialised, peer.keyPem)).toBe(false);

    const key = validateCredentials(raw).key.pem();
    expect(key.toString('latin1')).toBe(peer.keyPem);
    expect(ownsItsMemory(key)).toBe(true);
    expect((await loadCredentials(files)).key.pem().byteLength).toBe(key.buffer.byteLength);
  });

  it('leaves no key bytes in the pool when the key shares a file with the certificate (cert-manager tls-combined.pem)', async () => {
    const peer = peers.get('ECDSA-P256')!;
    const dir = await temporaryDir('nestjs-mtls-key-memory-');
    const combined = join(dir, 'tls-combined.pem');
    await writeSecretFile(combined, `${peer.keyPem}${peer.chainPem}`);
    await writeSecretFile(join(dir, 'ca.pem'), peer.caPem);
    const raw = await readCredentials(
      resolveCredentialFiles({ certFile: combined, keyFile: combined, caFile: join(dir, 'ca.pem') }),
    );
    expect(raw.certPem).not.toContain('PRIVATE KEY-----\n');
    expect(ownsItsMemory(raw.key.pem())).toBe(true);
    const probe = Buffer.from('an unrelated small buffer');
    expect(holdsKeyBytes(Buffer.from(structuredClone(probe).buffer), peer.keyPem)).toBe(false);
  });

  it('PrivateKeyMaterial moves a pooled buffer out of the pool, and zero-fills on dispose', () => {
    const keyPem = peers.get('ECDSA-P256')!.keyPem;
    const pooled = Buffer.from(keyPem, 'latin1');
    expect(ownsItsMemory(pooled)).toBe(false);
    const material = new PrivateKeyMaterial(pooled);
    expect(ownsItsMemory(material.pem())).toBe(true);
    expect(material.pem().toString('latin1')).toBe(keyPem);
    // The caller handed the bytes over: the pool's copy is gone.
    expect(pooled.every((byte) => byte === 0)).toBe(true);
    // A buffer of its own is not shared either: disposing one material never erases another's key.
    const standalone = Buffer.allocUnsafeSlow(keyPem.length);
    standalone.write(keyPem, 'latin1');
    const other = new PrivateKeyMaterial(standalone);
    expect(other.pem().buffer).not.toBe(standalone.buffer);
    expect(other.pem().toString('latin1')).toBe(keyPem);
    expect(standalone.every((byte) => byte === 0)).toBe(true);

    const bytes = material.pem();
    material.dispose();
    material.dispose();
    expect(material.disposed).toBe(true);
    expect(bytes.every((byte) => byte === 0)).toBe(true);
    let error: unknown;
    try {
      material.pem();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MtlsError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_KEY_DISPOSED' });
    expect((error as Error).message).toMatch(/zero-filled when its credential set was replaced/);
  });
});

describe('a replaced credential set on a running app', () => {
  let pki: TestPki;
  let dir: string;
  let server: LifecycleApp;
  let first: TestPeer;
  let orders: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    first = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
    orders = await pki.peer(ORDERS);
    dir = await temporaryDir('nestjs-mtls-key-zero-');
    await writeKubernetesSecret(dir, secretFiles(first));
    server = await startLifecycleApp({ credentials: { dir }, reload: { debounceMs: 20 } });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('has its key zero-filled once the new set is installed, and nothing that used it breaks', async () => {
    const agent = keepAliveAgent(orders);
    try {
      const before = await get(server.port, orders, '/ping', { agent });
      expect(before.serverFingerprint).toBe(first.fingerprint256);
      const previous = server.store.current;
      const oldKey = previous.key.pem();
      expect(oldKey.toString('latin1')).toBe(first.keyPem);

      const second = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
      const version = server.store.version;
      await writeKubernetesSecret(dir, secretFiles(second));
      await waitFor('the rotation', () => (server.store.version > version ? true : undefined), 3_000);

      expect(oldKey.every((byte) => byte === 0)).toBe(true);
      expect(previous.key.disposed).toBe(true);
      expect(server.store.current.key.pem().toString('latin1')).toBe(second.keyPem);
      // The connection made under the old set keeps working (its context holds its own copy in OpenSSL) …
      const kept = await get(server.port, orders, '/ping', { agent });
      expect(kept).toMatchObject({ status: 200, serverFingerprint: first.fingerprint256 });
      expect(kept.socket).toBe(before.socket);
      // … and new connections get the new set.
      expect((await get(server.port, orders, '/ping')).serverFingerprint).toBe(second.fingerprint256);
    } finally {
      agent.destroy();
    }
  });
});

/*
 * Every read of the key file makes a buffer: the set it belongs to may never be installed (a read thrown away, a set
 * refused, or one identical to the set being served). None of those buffers may keep key bytes once the read is over.
 * The allocator is observed, not replaced: each buffer the loader allocates is recorded and inspected afterwards.
 */
describe('key bytes of a set that is read but never installed', () => {
  let pki: TestPki;
  let peer: TestPeer;
  let allocated: Buffer[];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    peer = await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });
  });

  function recordAllocations(): void {
    vi.restoreAllMocks();
    allocated = [];
    for (const name of ['allocUnsafe', 'allocUnsafeSlow'] as const) {
      const original = Buffer[name].bind(Buffer);
      vi.spyOn(Buffer, name).mockImplementation((size: number) => {
        const buffer = original(size);
        allocated.push(buffer);
        return buffer;
      });
    }
  }

  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Buffers allocated since {@link recordAllocations} that still hold part of `keyPem`. */
  function stillHoldingKey(keyPem: string): number {
    return allocated.filter((buffer) => holdsKeyBytes(buffer, keyPem)).length;
  }

  it('erases the files read when another file of the set cannot be read', async () => {
    const dir = await temporaryDir('nestjs-mtls-key-memory-');
    const files = await writePeerFiles(dir, peer);
    const resolved = resolveCredentialFiles({ ...files, caFile: join(dir, 'missing-ca.pem') });
    recordAllocations();
    await expect(readCredentials(resolved)).rejects.toMatchObject({ code: 'ERR_MTLS_CREDENTIALS_UNREADABLE', field: 'ca' });
    expect(allocated.length).toBeGreaterThan(0);
    expect(stillHoldingKey(peer.keyPem)).toBe(0);
  });

  it('erases the key of a set that fails validation at startup', async () => {
    const dir = await temporaryDir('nestjs-mtls-key-memory-');
    const files = await writePeerFiles(dir, { ...peer, keyPem: (await pki.peer(SERVER)).keyPem });
    const other = await readCredentials(resolveCredentialFiles(files));
    const keyPem = other.key.pem().toString('latin1');
    other.key.dispose();
    recordAllocations();
    await expect(loadCredentials(resolveCredentialFiles(files))).rejects.toMatchObject({ code: 'ERR_MTLS_KEY_MISMATCH' });
    expect(stillHoldingKey(keyPem)).toBe(0);
  });

  it('erases the key of a reloaded set that is refused, or identical to the one served', async () => {
    const dir = await temporaryDir('nestjs-mtls-key-memory-');
    const files = resolveCredentialFiles(await writePeerFiles(dir, peer));
    const store = new CredentialStore(await loadCredentials(files));
    const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };
    const reloader = new CredentialsReloader({
      set: 'identity',
      files,
      store,
      usages: ['serverAuth', 'clientAuth'],
      debounceMs: 10,
      pollIntervalMs: 0,
      maxRetryDelayMs: 60_000,
      logger: quiet,
    });
    try {
      recordAllocations();
      expect(await reloader.reloadNow()).toBe('unchanged');
      // The served set's own key is the one copy left.
      expect(allocated.filter((buffer) => holdsKeyBytes(buffer, peer.keyPem))).toEqual([]);
      expect(store.current.key.pem().toString('latin1')).toBe(peer.keyPem);

      const stranger = await pki.peer(SERVER);
      await writeSecretFile(files.key, stranger.keyPem);
      recordAllocations();
      expect(await reloader.reloadNow()).toBe('refused');
      expect(reloader.pendingError?.code).toBe('ERR_MTLS_KEY_MISMATCH');
      expect(stillHoldingKey(stranger.keyPem)).toBe(0);
      expect(store.current.key.pem().toString('latin1')).toBe(peer.keyPem);
    } finally {
      await reloader.stop();
    }
  });
});
