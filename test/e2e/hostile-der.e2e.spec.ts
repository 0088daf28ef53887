import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AllowPeers, MtlsEvents, Peer, type MtlsEvent, type PeerIdentity } from '../../lib/index.js';
import { callAs, rfc9440Fields, TestPki, type TestPeer } from '../../lib/testing/index.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { encodePem } from '../../lib/x509/pem.js';
import { startMtlsApp } from '../support/app.js';
import { EXPRESS_H1 } from '../support/cells.js';
import { cellRequest } from '../support/raw-http.js';
import { startProxyApp } from '../support/proxy-app.js';
import { bits, bool, extension, int, oid, seq, tlv, utcTime } from '../x509/fixtures/der-builder.js';

/*
 * The worst fuzzing finding end to end: a certificate whose one OBJECT IDENTIFIER arc is tens of kilobytes long made
 * the DER reader spend time growing with the square of its length (0.3 s for 48 KB) before any identity check. Here a
 * certificate signed by the trusted CA carries such an arc (OpenSSL verifies it: the arc is in a non-critical
 * extension it does not read), is presented over real TLS to a real Nest app, and forwarded in Client-Cert to an app
 * in proxy mode. Both are refused promptly, and the app keeps serving. Before the fix both were admitted as orders,
 * each after ~0.3 s of parsing: Go's crypto/x509 refuses such a certificate too (extension OID arcs beyond 31 bits).
 */

const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const SERVER = 'spiffe://shop.test/ns/shop/sa/inventory';

@Controller()
class OrdersController {
  @Get('orders-only')
  @AllowPeers('orders')
  orders(@Peer() peer: PeerIdentity): Record<string, unknown> {
    return { spiffeId: peer.spiffeId ?? null };
  }
}

/** A leaf for `spiffeId` signed by `pki`'s CA, carrying a non-critical extension whose OID has one `arcBytes`-long arc. */
async function leafWithHugeArc(pki: TestPki, spiffeId: string, arcBytes: number): Promise<TestPeer> {
  const ca = parseCertificatesPem(pki.bundlePem)[0]!;
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const now = Date.now();
  const time = (ms: number): Buffer => utcTime(`${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`);
  const hugeOid = tlv(0x06, [0x2a, ...Array<number>(arcBytes).fill(0xff), 0x7f]);
  const tbs = seq(
    tlv(0xa0, int(2)),
    int(0x01, 0x23, 0x45),
    ecdsaSha256,
    ca.subjectDer,
    seq(time(now - 60_000), time(now + 3_600_000)),
    seq(),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(
      0xa3,
      seq(
        extension('2.5.29.19', seq(), true),
        extension('2.5.29.15', bits(7, 0x80), true),
        extension('2.5.29.37', seq(oid('1.3.6.1.5.5.7.3.2'), oid('1.3.6.1.5.5.7.3.1'))),
        extension('2.5.29.17', seq(tlv(0x86, Buffer.from(spiffeId))), true),
        seq(hugeOid, bool(false), tlv(0x04, seq())),
      ),
    ),
  );
  const signature = sign('sha256', tbs, createPrivateKey(pki.ca.keyPem));
  const der = seq(tbs, ecdsaSha256, bits(0, ...signature));
  const certPem = encodePem('CERTIFICATE', der);
  return {
    certPem,
    chainPem: certPem,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    caPem: pki.bundlePem,
    serialNumber: '012345',
    fingerprint256: '',
    spiffeId,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
  };
}

describe('a certificate with a 40 KB OID arc, end to end', () => {
  let pki: TestPki;
  let orders: TestPeer;
  let hostile: TestPeer;
  let tlsApp: INestApplication;
  let proxyApp: INestApplication;
  const events: MtlsEvent[] = [];

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SERVER);
    orders = await pki.peer(ORDERS);
    hostile = await leafWithHugeArc(pki, ORDERS, 40_000);
    tlsApp = await startMtlsApp({ credentials: server.credentials, peers: { orders: ORDERS }, reload: { enabled: false } }, [
      OrdersController,
    ]);
    tlsApp.get(MtlsEvents).events$.subscribe((event) => events.push(event));
    proxyApp = await startProxyApp(EXPRESS_H1, {
      credentials: server.credentials,
      proxy: { header: 'rfc9440', trust: 'loopback', verifyChain: true },
    });
  });

  afterAll(async () => {
    await tlsApp?.close();
    await proxyApp?.close();
  });

  it('over TLS: OpenSSL accepts the chain, the package refuses the peer within a generous bound, and keeps serving', async () => {
    const start = performance.now();
    let status: number | 'no answer';
    try {
      status = (await callAs(tlsApp, hostile, { ca: pki.bundlePem }).get('/orders-only')).status;
    } catch {
      status = 'no answer';
    }
    const elapsed = performance.now() - start;
    expect(status === 'no answer' || status === 401 || status === 403).toBe(true);
    expect(events.some((event) => event.type === 'handshake.rejected' || event.type === 'peer.denied')).toBe(true);
    // Refused as a malformed certificate, not slowly parsed: a handshake plus a request take milliseconds here.
    expect(elapsed).toBeLessThan(250);
    const good = await callAs(tlsApp, orders, { ca: pki.bundlePem }).get('/orders-only');
    expect(good.status).toBe(200);
    expect(good.json()).toEqual({ spiffeId: ORDERS });
  });

  it('forwarded in Client-Cert to a proxy-mode app: refused promptly, and the app keeps serving', async () => {
    // Node's default 16 KiB header limit bounds what a proxy can forward: an 11 KB arc fits.
    const forwarded = await leafWithHugeArc(pki, ORDERS, 11_000);
    const send = cellRequest(EXPRESS_H1);
    const start = performance.now();
    // Written by hand: the testing helper would parse the certificate with the package's own reader first.
    const clientCert = `:${forwarded.certPem.replace(/-----[^-]+-----|\s/g, '')}:`;
    const res = await send(proxyApp, '/orders-only', [['client-cert', clientCert]]);
    const elapsed = performance.now() - start;
    expect([400, 401, 403]).toContain(res.status);
    expect(elapsed).toBeLessThan(250);
    const good = await send(proxyApp, '/orders-only', [['client-cert', rfc9440Fields(orders).clientCert]]);
    expect(good.status).toBe(200);
    expect(good.json()).toMatchObject({ spiffeId: ORDERS });
  });
});
