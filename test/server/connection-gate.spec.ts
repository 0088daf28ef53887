import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { MAX_PEER_CHAIN, PeerCertificates, type PeerChain } from '../../lib/server/connection-admission.js';
import { readPeerChain } from '../../lib/server/connection-gate.js';
import type { TrustGeneration } from '../../lib/server/trust-generation.js';
import { CertificateAuthority } from '../../lib/testing/index.js';

/** Self-signed CAs with `root`'s subject and no key identifier: Node links them as the issuers of what `root` signs. */
async function lookalikes(root: CertificateAuthority, count: number): Promise<string> {
  const subject = new x509.X509Certificate(root.rootPem).subjectName.toString();
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  let pem = '';
  for (let i = 0; i < count; i++) {
    const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
    const certificate = await x509.X509CertificateGenerator.create(
      {
        serialNumber: (0x10 + i).toString(16).padStart(4, '0'),
        subject,
        issuer: subject,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
        publicKey: keys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: algorithm,
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
      },
      webcrypto,
    );
    pem += `${certificate.toString('pem')}\n`;
  }
  return pem;
}

/** The chain readPeerChain records for a client presenting `chainPem`, over real TLS on 127.0.0.1. */
async function recordedChain(root: CertificateAuthority, chainPem: string, keyPem: string): Promise<PeerChain | undefined> {
  const server = await root.issue({ spiffeId: 'spiffe://shop.test/server', ipAddresses: ['127.0.0.1'] });
  const rootInfo = parseCertificatesPem(root.rootPem)[0]!;
  const generation: TrustGeneration = { id: 1, roots: [rootInfo], crls: [], key: 'k' };
  const tls = createServer({
    key: server.keyPem,
    cert: server.chainPem,
    ca: root.rootPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const recorded = new Promise<PeerChain | undefined>((resolve) =>
    tls.once('secureConnection', (socket: TLSSocket) => {
      resolve(readPeerChain(socket, new PeerCertificates(), generation, false));
      socket.destroy();
    }),
  );
  tls.listen(0, '127.0.0.1');
  await once(tls, 'listening');
  const client = connect({
    host: '127.0.0.1',
    port: (tls.address() as AddressInfo).port,
    ca: root.rootPem,
    cert: chainPem,
    key: keyPem,
    checkServerIdentity: () => undefined,
  });
  client.on('error', () => undefined);
  try {
    return await recorded;
  } finally {
    client.destroy();
    tls.close();
  }
}

describe('readPeerChain, over real TLS', () => {
  it('records no certificate after a leaf signed by a root of the bundle, whatever the peer appended', async () => {
    const root = await CertificateAuthority.create({ commonName: 'shop.test root', trustDomain: 'shop.test' });
    const peer = await root.issue({ spiffeId: 'spiffe://shop.test/orders' });
    const chain = await recordedChain(root, peer.chainPem + (await lookalikes(root, 12)), peer.keyPem);
    expect(chain?.leaf.uris).toEqual(['spiffe://shop.test/orders']);
    expect(chain?.presented).toEqual([]);
  });

  it('records the intermediate a peer sent, and never more than nine certificates after its leaf', async () => {
    const root = await CertificateAuthority.create({ commonName: 'shop.test root', trustDomain: 'shop.test' });
    const intermediate = await root.createIntermediate({ commonName: 'shop.test workloads' });
    const peer = await intermediate.issue({ spiffeId: 'spiffe://shop.test/orders' });
    const chain = await recordedChain(root, peer.chainPem + (await lookalikes(root, 40)), peer.keyPem);
    expect(chain?.presented[0]?.subject).toBe('CN=shop.test workloads');
    expect(chain!.presented.length).toBeGreaterThan(1);
    expect(chain!.presented.length).toBeLessThanOrEqual(MAX_PEER_CHAIN - 1);
  });
});
