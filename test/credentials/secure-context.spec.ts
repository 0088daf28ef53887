import { constants } from 'node:crypto';
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
import { parseCertificateDer } from '../../lib/x509/certificate.js';
import type { TlsPolicyOptions } from '../../lib/mtls.options.js';
import { CertificateAuthority } from '../../lib/x509/certificate-authority.js';
import type { IssuedCertificate } from '../../lib/x509/certificate-authority.js';
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

async function credentialsFor(
  issuer: CertificateAuthority,
  spiffeId: string,
  bundle: string,
  crl?: string[],
): Promise<Credentials> {
  const issued = await issuer.issue({ spiffeId, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  return loadCredentials(
    await writeSet(root, { cert: issued.chainPem, key: issued.keyPem, ca: bundle, ...(crl ? { crl } : {}) }),
  );
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
  server = await loadCredentials(
    await writeSet(root, { cert: serverIssued.chainPem, key: serverIssued.keyPem, ca: ca.rootPem, crl: crls }),
  );
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
    expect(Object.keys(options).sort()).toEqual([
      'ca',
      'cert',
      'crl',
      'honorCipherOrder',
      'key',
      'maxVersion',
      'minVersion',
      'secureOptions',
    ]);
    expect(options.key).toEqual(Buffer.from(serverIssued.keyPem));
    expect(options.cert).toBe(serverIssued.chainPem);
    expect(options.ca).toEqual([ca.rootPem]);
    // One PEM per CRL, the two of the file in order: a single string would load only the first.
    expect(options.crl).toEqual([...server.crlPems]);
    expect((options.crl as string[]).map((pem) => pem.match(/BEGIN X509 CRL/g)?.length)).toEqual([1, 1]);
    expect(options).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', honorCipherOrder: true });
    expect(options.secureOptions).toBe(constants.SSL_OP_NO_RENEGOTIATION);
  });

  it('omits crl when there is none and passes the policy through', () => {
    const policy = {
      minVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256',
      ecdhCurve: 'X25519:P-256',
    } as const;
    const options = secureContextOptions(client, policy);
    expect(Object.keys(options).sort()).toEqual([
      'ca',
      'cert',
      'ciphers',
      'ecdhCurve',
      'honorCipherOrder',
      'key',
      'maxVersion',
      'minVersion',
      'secureOptions',
    ]);
    expect(options).toMatchObject({ ...policy, maxVersion: 'TLSv1.3', ca: [ca.rootPem] });
  });
});

describe('createSecureContext', () => {
  it.each<[string, object, RegExp]>([
    [
      'an unknown cipher list',
      { ciphers: 'NOT-A-CIPHER' },
      /"tls\.ciphers" is refused by OpenSSL \(ERR_SSL_NO_CIPHER_MATCH: no cipher match\); got "NOT-A-CIPHER"/,
    ],
    ['an unknown curve', { ecdhCurve: 'nope' }, /"tls\.ecdhCurve" is refused by OpenSSL/],
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
  /** The server's verdict on the client, or the handshake failure code. */
  type Outcome = { authorized: boolean; error: string | null; peerUri: string | undefined } | { failed: string };

  async function handshake(
    serverOptions: tls.SecureContextOptions,
    clientCredentials: Credentials,
    clientPolicy: TlsPolicyOptions = {},
    swap?: (server: tls.Server) => void,
  ): Promise<Outcome> {
    // The server's context is built from exactly these options (tls.createServer calls tls.createSecureContext).
    // rejectUnauthorized: false so the server reports OpenSSL's verdict instead of closing the socket.
    const tlsServer = tls.createServer({ ...serverOptions, requestCert: true, rejectUnauthorized: false });
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
      secureContext: createSecureContext(clientCredentials, clientPolicy),
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
    } catch (error) {
      return { failed: String((error as NodeJS.ErrnoException).code) };
    } finally {
      socket.destroy();
      tlsServer.close();
    }
  }

  // With rejectUnauthorized false OpenSSL goes on after the first error and reports the last: for a chain it cannot
  // anchor that is the missing CRL of the unknown CA when CRLs are configured.
  const UNTRUSTED = expect.stringMatching(/^UNABLE_TO_GET_(ISSUER_CERT_LOCALLY|CRL)$/);

  const without = (options: tls.SecureContextOptions, key: 'ca' | 'crl'): tls.SecureContextOptions => {
    const copy = { ...options };
    delete copy[key];
    return copy;
  };

  it('authenticates a client of the configured private CA, which only the ca option can trust', async () => {
    const options = secureContextOptions(server);
    expect(await handshake(options, client)).toEqual({ authorized: true, error: null, peerUri: 'spiffe://shop.test/client' });
    // The same options without ca fall back to the public roots and refuse the client: the assertion above depends on ca.
    expect(await handshake(without(options, 'ca'), client)).toMatchObject({ authorized: false, error: UNTRUSTED });
  });

  it('rejects a client revoked by the second CRL of the file, which only the crl option can do', async () => {
    const options = secureContextOptions(server);
    expect(await handshake(options, revokedClient)).toMatchObject({ authorized: false, error: 'CERT_REVOKED' });
    expect(await handshake(without(options, 'crl'), revokedClient)).toMatchObject({ authorized: true });
  });

  it('rejects a client of another CA', async () => {
    expect(await handshake(secureContextOptions(server), foreignClient)).toMatchObject({ authorized: false, error: UNTRUSTED });
  });

  it('refuses a TLS 1.2 client when minVersion is TLSv1.3', async () => {
    const options = secureContextOptions(server, { minVersion: 'TLSv1.3' });
    expect(options.minVersion).toBe('TLSv1.3');
    expect(await handshake(options, client, { maxVersion: 'TLSv1.2' })).toEqual({ failed: 'ERR_SSL_UNSUPPORTED_PROTOCOL' });
    expect(await handshake(options, client)).toMatchObject({ authorized: true });
    expect(await handshake(secureContextOptions(server), client, { maxVersion: 'TLSv1.2' })).toMatchObject({ authorized: true });
  });

  it('replaces the bundle, CRLs and versions on setSecureContext when given the full option set', async () => {
    // The server starts out trusting only the foreign CA, with no CRL and TLS 1.2 allowed: each check below fails
    // unless the swap installs ca, crl and minVersion.
    const foreignOnly: tls.SecureContextOptions = { ...without(secureContextOptions(server), 'crl'), ca: [otherCa.rootPem] };
    expect(await handshake(foreignOnly, foreignClient)).toMatchObject({ authorized: true });
    const swapped = (s: tls.Server): void => s.setSecureContext(secureContextOptions(server, { minVersion: 'TLSv1.3' }));
    expect(await handshake(foreignOnly, foreignClient, {}, swapped)).toMatchObject({ authorized: false, error: UNTRUSTED });
    expect(await handshake(foreignOnly, client, {}, swapped)).toMatchObject({ authorized: true });
    expect(await handshake(foreignOnly, revokedClient, {}, swapped)).toMatchObject({ authorized: false, error: 'CERT_REVOKED' });
    expect(await handshake(foreignOnly, client, { maxVersion: 'TLSv1.2' }, swapped)).toEqual({
      failed: 'ERR_SSL_UNSUPPORTED_PROTOCOL',
    });
  });
});
