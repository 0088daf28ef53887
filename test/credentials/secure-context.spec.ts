import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCredentials } from '../../lib/credentials/credentials-loader.js';
import type { Credentials } from '../../lib/credentials/credentials.interfaces.js';
import { PrivateKeyMaterial } from '../../lib/credentials/private-key.js';
import { createSecureContext, secureContextOptions } from '../../lib/credentials/secure-context.js';
import { CredentialsError, MtlsConfigError } from '../../lib/errors/mtls.errors.js';
import { parseCertificateDer } from '../../lib/identity/certificate.js';
import { CertificateAuthority } from '../../lib/pki/certificate-authority.js';
import type { IssuedCertificate } from '../../lib/pki/certificate-authority.js';
import { expectNoKeyMaterial, keyLines, tempRoot, writeSet } from './fixtures.js';

let root: string;
let ca: CertificateAuthority;
let intermediate: CertificateAuthority;
let otherCa: CertificateAuthority;
let server: Credentials;
let client: Credentials;
let revokedClient: Credentials;
let foreignClient: Credentials;
let serverIssued: IssuedCertificate;

async function credentialsFor(issuer: CertificateAuthority, spiffeId: string, bundle: string, crl?: string[]): Promise<Credentials> {
  const issued = await issuer.issue({ spiffeId, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  return loadCredentials(await writeSet(root, { cert: issued.chainPem, key: issued.keyPem, ca: bundle, ...(crl ? { crl } : {}) }));
}

beforeAll(async () => {
  root = await tempRoot('secure-context');
  ca = await CertificateAuthority.create({ commonName: 'Context Root CA', trustDomain: 'shop.test' });
  intermediate = await ca.createIntermediate({ commonName: 'Context Intermediate CA' });
  otherCa = await CertificateAuthority.create({ commonName: 'Untrusted CA', trustDomain: 'shop.test' });
  const revoked = await intermediate.issue({ spiffeId: 'spiffe://shop.test/revoked' });
  // Two CRLs in one file: the server must load both (one PEM per CRL), or the intermediate's CRL would be missing.
  const crls = [(await ca.createCrl([])) + (await intermediate.createCrl([revoked.serialNumber]))];
  serverIssued = await intermediate.issue({ spiffeId: 'spiffe://shop.test/server', dnsNames: ['localhost'] });
  server = await loadCredentials(await writeSet(root, { cert: serverIssued.chainPem, key: serverIssued.keyPem, ca: ca.rootPem, crl: crls }));
  client = await credentialsFor(intermediate, 'spiffe://shop.test/client', ca.rootPem);
  revokedClient = await loadCredentials(await writeSet(root, { cert: revoked.chainPem, key: revoked.keyPem, ca: ca.rootPem }));
  foreignClient = await credentialsFor(otherCa, 'spiffe://shop.test/client', otherCa.rootPem);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('secureContextOptions', () => {
  it('returns the full option set, with defaults', () => {
    const options = secureContextOptions(server);
    expect(Object.keys(options).sort()).toEqual(['ca', 'cert', 'crl', 'honorCipherOrder', 'key', 'maxVersion', 'minVersion'].sort());
    expect(options.key).toEqual(Buffer.from(serverIssued.keyPem));
    expect(options.cert).toBe(serverIssued.chainPem);
    expect(options.ca).toEqual([ca.rootPem]);
    expect(options.crl).toHaveLength(2);
    expect(options).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', honorCipherOrder: true });
  });

  it('omits crl when there is none and passes the policy through', () => {
    const options = secureContextOptions(client, { minVersion: 'TLSv1.3', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ecdhCurve: 'X25519:P-256' });
    expect('crl' in options).toBe(false);
    expect(options).toMatchObject({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ecdhCurve: 'X25519:P-256' });
  });

  it('is accepted by tls.createSecureContext', () => {
    expect(tls.createSecureContext(secureContextOptions(server))).toBeDefined();
  });
});

describe('createSecureContext', () => {
  it.each<[string, object, RegExp]>([
    ['an unknown cipher list', { ciphers: 'NOT-A-CIPHER' }, /"tls\.ciphers" is refused by OpenSSL \(ERR_SSL_NO_CIPHER_MATCH: no cipher match\); got "NOT-A-CIPHER"/],
    ['an unknown curve', { ecdhCurve: 'nope' }, /"tls\.ecdhCurve" is refused by OpenSSL/],
    ['minVersion above maxVersion', { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' }, /"tls\.maxVersion" is below "tls\.minVersion"/],
  ])('refuses %s as a configuration error', (_name, policy, message) => {
    expect(() => createSecureContext(client, policy)).toThrow(MtlsConfigError);
    expect(() => createSecureContext(client, policy)).toThrow(message);
  });

  it('refuses a key that OpenSSL finds does not match, without key bytes in the error', () => {
    const mismatched: Credentials = { ...client, key: new PrivateKeyMaterial(Buffer.from(serverIssued.keyPem)) };
    let error: unknown;
    try {
      createSecureContext(mismatched);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CredentialsError);
    expect(error).toMatchObject({ code: 'ERR_MTLS_KEY_MISMATCH', field: 'key', file: client.files.key });
    expect((error as Error).message).toContain('OpenSSL: the private key does not belong to the certificate');
    expectNoKeyMaterial(error, keyLines(serverIssued.keyPem));
  });
});

describe('createSecureContext: real mutual TLS on 127.0.0.1', () => {
  async function handshake(
    serverCredentials: Credentials,
    clientCredentials: Credentials,
    swap?: (server: tls.Server) => void,
  ): Promise<{ authorized: boolean; error: string | null; peerUri: string | undefined }> {
    // rejectUnauthorized: false so the server reports OpenSSL's verdict instead of closing the socket.
    const tlsServer = tls.createServer({ ...secureContextOptions(serverCredentials), requestCert: true, rejectUnauthorized: false });
    swap?.(tlsServer);
    const accepted = new Promise<tls.TLSSocket>((resolve, reject) => {
      tlsServer.once('secureConnection', resolve);
      tlsServer.once('tlsClientError', reject);
    });
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    const socket = tls.connect({
      host: '127.0.0.1',
      port: (tlsServer.address() as AddressInfo).port,
      secureContext: createSecureContext(clientCredentials),
      // Only the server's verdict on the client certificate is under test here (a foreign client distrusts the server).
      rejectUnauthorized: false,
    });
    socket.on('error', () => undefined);
    try {
      const serverSide = await accepted;
      const peer = serverSide.getPeerX509Certificate();
      serverSide.destroy();
      return {
        authorized: serverSide.authorized,
        error: serverSide.authorizationError === null ? null : String(serverSide.authorizationError),
        peerUri: peer === undefined ? undefined : parseCertificateDer(peer.raw).uris[0],
      };
    } finally {
      socket.destroy();
      tlsServer.close();
    }
  }

  it('authenticates a client of the same PKI', async () => {
    expect(await handshake(server, client)).toEqual({ authorized: true, error: null, peerUri: 'spiffe://shop.test/client' });
  });

  it('rejects a client revoked by the second CRL of the file', async () => {
    expect(await handshake(server, revokedClient)).toMatchObject({ authorized: false, error: 'CERT_REVOKED' });
  });

  it('rejects a client of another CA', async () => {
    expect((await handshake(server, foreignClient)).authorized).toBe(false);
  });

  it('keeps the bundle and CRLs across setSecureContext when given the full option set', async () => {
    const swapped = (s: tls.Server): void => s.setSecureContext(secureContextOptions(server));
    expect((await handshake(server, foreignClient, swapped)).authorized).toBe(false);
    expect((await handshake(server, revokedClient, swapped)).error).toBe('CERT_REVOKED');
    expect((await handshake(server, client, swapped)).authorized).toBe(true);
  });
});
