import 'reflect-metadata';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore } from '../../lib/credentials/credential-store.js';
import { loadCredentials, resolveCredentialFiles } from '../../lib/credentials/credentials-loader.js';
import { CredentialsReloadService } from '../../lib/credentials-reload.service.js';
import {
  CredentialsReloader,
  watchTargets,
  type CredentialsReloaderOptions,
} from '../../lib/credentials/credentials-reloader.js';
import type { CredentialsSourceOptions, MtlsEvent } from '../../lib/index.js';
import { secretFiles, TestPki, writeKubernetesSecret, type TestPeer } from '../../lib/testing/index.js';
import { serverFingerprint, sleep, startLifecycleApp, waitFor, writeByRename } from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';

describe('watchTargets', () => {
  it.each<[string, CredentialsSourceOptions, Record<string, string[]>]>([
    [
      'a Secret directory: the directory, for ..data and the visible names',
      { dir: '/secrets/tls', crlFiles: ['ca.crl'] },
      { '/secrets/tls': ['..data', 'tls.crt', 'tls.key', 'ca.crt', 'ca.crl'] },
    ],
    [
      'a Secret directory with nested names and a CRL elsewhere',
      { dir: '/secrets/tls', certFileName: 'certs/leaf.pem', crlFiles: ['/crl/root.crl'] },
      { '/secrets/tls': ['..data', 'certs', 'tls.key', 'ca.crt'], '/crl': ['root.crl', '..data'] },
    ],
    [
      'separate files: each parent directory, for the file names (and a ..data the path may go through)',
      { certFile: '/vault/secrets/cert.pem', keyFile: '/vault/secrets/key.pem', caFile: '/etc/ca/bundle.pem' },
      { '/vault/secrets': ['cert.pem', '..data', 'key.pem'], '/etc/ca': ['bundle.pem', '..data'] },
    ],
  ])('%s', (_name, options, expected) => {
    const targets = watchTargets(resolveCredentialFiles(options));
    expect(Object.fromEntries([...targets].map(([dir, names]) => [dir, [...names]]))).toEqual(expected);
  });
});

describe('CredentialsReloader', () => {
  let pki: TestPki;
  const running: CredentialsReloader[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((reloader) => reloader.stop()));
  });

  const issue = () => pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] });

  async function reloaderFor(source: CredentialsSourceOptions, options: Partial<CredentialsReloaderOptions> = {}) {
    const files = resolveCredentialFiles(source);
    const usages = ['serverAuth', 'clientAuth'] as const;
    const store = new CredentialStore(await loadCredentials(files, { usages }));
    const events: MtlsEvent[] = [];
    const logs: string[] = [];
    const reloader = new CredentialsReloader({
      set: 'identity',
      files,
      store,
      usages,
      debounceMs: 20,
      pollIntervalMs: 0,
      maxRetryDelayMs: 100,
      events: { emit: (event) => void events.push(event) },
      logger: {
        log: (m: unknown) => void logs.push(`log ${String(m)}`),
        warn: (m: unknown) => void logs.push(`warn ${String(m)}`),
        error: (m: unknown) => void logs.push(`error ${String(m)}`),
      },
      ...options,
    });
    running.push(reloader);
    await reloader.start();
    return { reloader, store, events, logs };
  }

  it('does not reload a rewrite with identical content', async () => {
    const peer = await issue();
    const { dir, credentials } = await pki.credentials({ spiffeId: SERVER });
    await writeKubernetesSecret(dir, secretFiles(peer));
    const { store, events, reloader } = await reloaderFor(credentials);
    const version = store.version;
    // kubelet itself skips identical payloads; this writer does not, and a new `..data` target changes nothing.
    await writeKubernetesSecret(dir, secretFiles(peer));
    await sleep(200);
    expect(await reloader.reloadNow()).toBe('unchanged');
    expect(store.version).toBe(version);
    expect(events).toEqual([]);
  });

  it('picks up a change no watcher sees with the periodic re-read', async () => {
    // `current` is a link to a release directory; switching it happens in a directory nobody watches.
    const root = await temporaryDir('nestjs-mtls-releases-');
    const release = async (name: string, peer: TestPeer) => {
      await mkdir(join(root, name));
      await writeFile(join(root, name, 'cert.pem'), peer.chainPem);
      await writeFile(join(root, name, 'key.pem'), peer.keyPem);
      await writeFile(join(root, name, 'ca.pem'), peer.caPem);
    };
    const [first, second] = [await issue(), await issue()];
    await release('r1', first);
    await release('r2', second);
    await symlink('r1', join(root, 'current'));
    const inCurrent = (name: string) => join(root, 'current', name);
    const { store } = await reloaderFor(
      { certFile: inCurrent('cert.pem'), keyFile: inCurrent('key.pem'), caFile: inCurrent('ca.pem') },
      { pollIntervalMs: 150 },
    );
    await symlink('r2', join(root, 'current.tmp'));
    await rename(join(root, 'current.tmp'), join(root, 'current'));
    await waitFor(
      'the periodic re-read',
      () => (store.current.leaf.fingerprint256 === second.fingerprint256 ? true : undefined),
      3_000,
    );
  });

  it('refuses a missing file, keeps the set, and takes the file back when it returns', async () => {
    const dir = await temporaryDir('nestjs-mtls-missing-');
    const peer = await issue();
    const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'ca.pem') };
    await writeFile(files.certFile, peer.chainPem);
    await writeFile(files.keyFile, peer.keyPem);
    await writeFile(files.caFile, peer.caPem);
    const { store, events, logs, reloader } = await reloaderFor(files);

    await rm(files.certFile);
    const refused = await waitFor('the refusal', () => events.find((event) => event.type === 'credentials.refused'), 3_000);
    expect(refused).toMatchObject({ set: 'identity', error: { code: 'ERR_MTLS_CREDENTIALS_UNREADABLE', file: files.certFile } });
    expect(reloader.pendingError?.reason).toBe('the file does not exist');
    await sleep(300);
    expect(events.filter((event) => event.type === 'credentials.refused')).toHaveLength(1);

    // The same certificate comes back: nothing to install, the refusal is over.
    await writeByRename(files.certFile, peer.chainPem);
    await waitFor('the recovery', () => (reloader.pendingError === undefined ? true : undefined), 3_000);
    expect(store.version).toBe(1);
    expect(logs).toContain('log identity credentials: the files are back to the set being served; nothing to reload');

    // And a new one is installed (a read between the two renames may refuse a mismatched pair first).
    const next = await issue();
    await writeByRename(files.keyFile, next.keyPem);
    await writeByRename(files.certFile, next.chainPem);
    await waitFor('the rotation', () => (store.current.leaf.fingerprint256 === next.fingerprint256 ? true : undefined), 3_000);
    const types = events.map((event) => event.type);
    expect(types.filter((type) => type === 'credentials.rotated')).toHaveLength(1);
    expect(types[types.length - 1]).toBe('credentials.rotated');
  });

  it('coalesces reads asked for while one runs, and does nothing once stopped', async () => {
    const { credentials, dir } = await pki.credentials({ spiffeId: SERVER });
    // A quiet period long enough that only the calls below read the files.
    const { reloader, store } = await reloaderFor(credentials, { debounceMs: 60_000 });
    const next = await issue();
    await writeKubernetesSecret(dir, secretFiles(next));
    const first = reloader.reloadNow();
    const second = reloader.reloadNow();
    const third = reloader.reloadNow();
    expect(third).toBe(second);
    expect(await first).toBe('rotated');
    expect(await second).toBe('unchanged');
    expect(store.version).toBe(2);

    await reloader.stop();
    await reloader.stop();
    await writeKubernetesSecret(dir, secretFiles(await issue()));
    expect(await reloader.reloadNow()).toBe('stopped');
    await sleep(100);
    expect(store.version).toBe(2);
  });
});

describe('reload.enabled: false', () => {
  it('starts no reloader: files changed on disk take effect on restart only', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const initial = await pki.credentials(SERVER);
    const orders = await pki.peer('spiffe://shop.test/ns/shop/sa/orders');
    const server = await startLifecycleApp({ credentials: initial.credentials, reload: { enabled: false } });
    try {
      expect(server.app.get(CredentialsReloadService).reloader('identity')).toBeUndefined();
      await writeKubernetesSecret(initial.dir, secretFiles(await pki.peer({ spiffeId: SERVER, ipAddresses: ['127.0.0.1'] })));
      await sleep(400);
      expect(await serverFingerprint(server.port, orders)).toBe(initial.peer.fingerprint256);
      expect(server.logs.map((line) => line.message)).toContain(
        'credential hot reload is off (reload.enabled: false): rotated files take effect on restart',
      );
    } finally {
      await server.close();
    }
  });
});
