import 'reflect-metadata';
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MtlsHttpClient } from '../../lib/client/index.js';
import { MTLS_CLIENT_CREDENTIALS } from 'nestjs-mtls';
import type { CredentialStore } from 'nestjs-mtls/credentials';
import { secretFiles, TestPki, writeKubernetesSecret } from '../../lib/testing/index.js';
import { startLifecycleApp, waitFor, type LifecycleApp } from './lifecycle-support.js';
import { temporaryDir } from '../support/temporary-dirs.js';

const INVENTORY = 'spiffe://shop.test/ns/shop/sa/inventory';
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

interface WhoAmI {
  spiffeId: string;
  fingerprint256: string;
}

describe('client certificate rotation', () => {
  let pki: TestPki;
  let inventory: LifecycleApp;
  let orders: LifecycleApp;
  let clientDir: string;
  let clientStore: CredentialStore;
  let http: MtlsHttpClient;
  let url: string;

  const clientCertificate = () => pki.peer({ spiffeId: ORDERS, extKeyUsage: ['clientAuth'] });

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    inventory = await startLifecycleApp({ credentials: (await pki.credentials(INVENTORY)).credentials });
    url = `https://127.0.0.1:${inventory.port}`;
    // The calling service: its own server identity, and a separate client set that rotates on its own.
    clientDir = await temporaryDir('nestjs-mtls-client-');
    await writeKubernetesSecret(clientDir, secretFiles(await clientCertificate()));
    orders = await startLifecycleApp({
      credentials: (await pki.credentials(ORDERS)).credentials,
      client: { credentials: { dir: clientDir } },
      reload: { debounceMs: 50 },
    });
    clientStore = orders.app.get<CredentialStore>(MTLS_CLIENT_CREDENTIALS);
    http = orders.app.get(MtlsHttpClient);
  });

  afterAll(async () => {
    await orders?.close();
    await inventory?.close();
  });

  const whoami = async () => (await http.get<WhoAmI>(`${url}/whoami`, { expectPeer: INVENTORY })).body;

  it('presents the new certificate on new connections once the client set rotates, without failing a request', async () => {
    expect((await whoami()).fingerprint256).toBe(clientStore.current.leaf.fingerprint256);
    const identityVersion = orders.store.version;
    for (let rotation = 0; rotation < 3; rotation++) {
      const next = await clientCertificate();
      // A request in flight on the old connections while the set rotates: drained, not cut.
      const inFlight = http.get<string>(`${url}/slow?ms=400`, { expectPeer: INVENTORY });
      await writeKubernetesSecret(clientDir, secretFiles(next));
      await waitFor(
        'the client set to rotate',
        () => (clientStore.current.leaf.fingerprint256 === next.fingerprint256 ? true : undefined),
        3_000,
      );
      expect(await whoami()).toEqual({ spiffeId: ORDERS, fingerprint256: next.fingerprint256 });
      expect(await inFlight).toMatchObject({ status: 200, body: 'done' });
    }
    // Only the client set rotated; the service's own server identity did not move.
    expect(orders.store.version).toBe(identityVersion);
    const rotated = orders.events.filter((event) => event.type === 'credentials.rotated');
    expect(rotated.map((event) => event.type === 'credentials.rotated' && event.set)).toEqual(['client', 'client', 'client']);
  });

  it('feeds the https.Agent handed to other clients from the rotated set too', async () => {
    const agent = http.httpsAgent({ expectPeer: INVENTORY });
    const viaAgent = () =>
      new Promise<WhoAmI>((resolve, reject) => {
        const req = request(`${url}/whoami`, { agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve(JSON.parse(body) as WhoAmI));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect((await viaAgent()).fingerprint256).toBe(clientStore.current.leaf.fingerprint256);
      const next = await clientCertificate();
      await writeKubernetesSecret(clientDir, secretFiles(next));
      await waitFor(
        'the client set to rotate',
        () => (clientStore.current.leaf.fingerprint256 === next.fingerprint256 ? true : undefined),
        3_000,
      );
      expect((await viaAgent()).fingerprint256).toBe(next.fingerprint256);
    } finally {
      agent.destroy();
    }
  });
});
