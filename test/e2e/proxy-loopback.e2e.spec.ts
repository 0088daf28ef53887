import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rfc9440Fields, TestPki, xfccElement, type TestPeer } from '../../lib/testing/index.js';
import { cellRequest } from '../support/raw-http.js';
import { ADMIN, LOOPBACK_CELLS, ORDERS, startProxyApp } from '../support/proxy-app.js';

const XFCC = 'X-Forwarded-Client-Cert';
const SIDECAR = 'spiffe://shop.test/ns/shop/sa/inventory';

function body(code: string, status: number): Record<string, unknown> {
  const texts: Record<number, [string, string]> = {
    400: ['Bad Request', ''],
    401: ['Unauthorized', 'a valid client certificate is required'],
    403: ['Forbidden', 'peer not allowed'],
  };
  return { statusCode: status, error: texts[status]![0], code, ...(texts[status]![1] ? { message: texts[status]![1] } : {}) };
}

describe.each(LOOPBACK_CELLS)('proxy mode, XFCC from a loopback sidecar ($name)', (cell) => {
  const send = cellRequest(cell);
  let pki: TestPki;
  let app: INestApplication;
  let orders: TestPeer;
  let admin: TestPeer;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SIDECAR);
    orders = await pki.peer({ spiffeId: ORDERS, dnsNames: ['orders.shop.svc'] });
    admin = await pki.peer(ADMIN);
    app = await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'xfcc', trust: 'loopback', maxHeaderBytes: 8192 },
    });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('serves plain HTTP on loopback and admits the caller named by an Istio-style element', async () => {
    const res = await send(app, '/orders-only', [[XFCC, xfccElement(orders, { by: SIDECAR })]]);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ spiffeId: ORDERS, source: 'xfcc', dnsNames: ['orders.shop.svc'], forwardedDer: 0 });
  });

  it('admits a caller whose certificate is forwarded (Envoy Cert + Chain) and exposes its DER', async () => {
    const res = await send(app, '/orders-only', [[XFCC, xfccElement(orders, { by: SIDECAR, cert: true, chain: true })]]);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'xfcc' });
    expect(res.json<{ forwardedDer: number }>().forwardedDer).toBeGreaterThan(200);
  });

  it("APPEND_FORWARD: a client-supplied first element claiming admin loses to the sidecar's last element", async () => {
    const forged = `By=${SIDECAR};URI=${ADMIN}`;
    const header = `${forged},${xfccElement(orders, { by: SIDECAR })}`;
    const asAdmin = await send(app, '/admin-only', [[XFCC, header]]);
    expect(asAdmin.status).toBe(403);
    expect(asAdmin.json()).toEqual(body('ERR_MTLS_PEER_DENIED', 403));
    const asOrders = await send(app, '/orders-only', [[XFCC, header]]);
    expect(asOrders.json()).toMatchObject({ spiffeId: ORDERS });
  });

  it('a Subject with quoted , ; = and \\" smuggling URI= and Cert= names nobody else', async () => {
    const subject = `CN=x\\,y;URI=${ADMIN}",Cert="junk,O=a=b`;
    const res = await send(app, '/admin-only', [[XFCC, xfccElement(orders, { override: { subject } })]]);
    expect(res.status).toBe(403);
    const ok = await send(app, '/orders-only', [[XFCC, xfccElement(orders, { override: { subject } })]]);
    expect(ok.status).toBe(200);
  });

  it('no header: 401, never a fallback', async () => {
    const res = await send(app, '/orders-only', []);
    expect(res.status).toBe(401);
    expect(res.json()).toEqual(body('ERR_MTLS_PEER_UNAUTHENTICATED', 401));
  });

  it('two header lines: 400 ERR_MTLS_PROXY_HEADER_REPEATED (Node would have joined them into a valid-looking XFCC)', async () => {
    const res = await send(app, '/orders-only', [
      [XFCC, `URI=${ADMIN}`],
      ['x-forwarded-client-cert', xfccElement(orders)],
    ]);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({
      statusCode: 400,
      code: 'ERR_MTLS_PROXY_HEADER_REPEATED',
      message: 'client certificate header sent more than once',
    });
  });

  it.each([
    ['an empty element', (e: string) => `${e},,${e}`],
    ['an unknown key', (e: string) => `${e};Role=admin`],
    ['URI twice in one element', (e: string) => `${e};URI=${ADMIN}`],
    ['an unclosed quote', (e: string) => `${e};Subject="CN=a`],
  ])('malformed (%s): 400 ERR_MTLS_PROXY_HEADER_MALFORMED, never a 500', async (_name, make) => {
    const res = await send(app, '/orders-only', [[XFCC, make(xfccElement(orders, { subject: false }))]]);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      code: 'ERR_MTLS_PROXY_HEADER_MALFORMED',
      message: 'malformed client certificate header',
    });
  });

  it("oversized: over proxy.maxHeaderBytes → 400 TOO_LARGE; over Node's own HTTP/1.1 limit → 431 from Node", async () => {
    const big = xfccElement(orders, { override: { subject: 'a'.repeat(9000) } });
    const res = await send(app, '/orders-only', [[XFCC, big]]);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 'ERR_MTLS_PROXY_HEADER_TOO_LARGE' });
    const huge = await send(app, '/orders-only', [[XFCC, xfccElement(orders, { override: { subject: 'a'.repeat(20_000) } })]]);
    // Node's 16 KiB header limit is HTTP/1.1's; over HTTP/2 (64 KiB header list by default) proxy.maxHeaderBytes answers.
    expect(huge.status).toBe(cell.http2 ? 400 : 431);
  });

  it('more than 10 elements: 400', async () => {
    const header = Array.from({ length: 11 }, () => xfccElement(orders, { subject: false })).join(',');
    expect((await send(app, '/orders-only', [[XFCC, header]])).status).toBe(400);
  });

  it('a Cert whose identity differs from the text URI is refused (400 MISMATCH), whichever route', async () => {
    const header = xfccElement(orders, { cert: true, override: { uri: ADMIN } });
    for (const path of ['/admin-only', '/orders-only']) {
      const res = await send(app, path, [[XFCC, header]]);
      expect(res.status).toBe(400);
      expect(res.json()).toMatchObject({ code: 'ERR_MTLS_PROXY_HEADER_MISMATCH' });
    }
  });

  it('a forwarded CA leaf: 403 ERR_MTLS_PEER_INVALID', async () => {
    const caLeaf = await pki.peer({ spiffeId: ORDERS, isCa: true });
    const res = await send(app, '/orders-only', [[XFCC, xfccElement(caLeaf, { cert: true })]]);
    expect(res.status).toBe(403);
    expect(res.json()).toEqual(body('ERR_MTLS_PEER_INVALID', 403));
  });

  it('a forwarded certificate from another CA, chain verification on (the default): 401', async () => {
    const foreign = await pki.foreignPeer(ORDERS);
    const res = await send(app, '/orders-only', [[XFCC, xfccElement(foreign, { cert: true })]]);
    expect(res.status).toBe(401);
    expect(res.json()).toEqual(body('ERR_MTLS_PEER_UNAUTHENTICATED', 401));
  });

  it('a legacy caller by DNS name', async () => {
    const legacy = await pki.peer({ dnsNames: ['legacy.example'] });
    const res = await send(app, '/legacy', [[XFCC, xfccElement(legacy, { cert: true })]]);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: null, dnsNames: ['legacy.example'] });
  });

  it('the identity belongs to the request: on one connection (keep-alive, or one HTTP/2 session), each request gets its own caller', async () => {
    const { port } = app.getHttpServer().address() as { port: number };
    const calls = cell.http2 ? await h2cSession(port) : await keepAlive(port);
    try {
      expect(await calls.call('/admin-only', xfccElement(admin))).toBe(200);
      expect(await calls.call('/admin-only', xfccElement(orders))).toBe(403);
      expect(await calls.call('/admin-only')).toBe(401);
      expect(calls.connections()).toBe(1);
    } finally {
      calls.close();
    }
  });
});

/** Requests over one connection to 127.0.0.1:`port`, and how many connections they used. */
interface OneConnection {
  call(path: string, xfcc?: string): Promise<number>;
  connections(): number;
  close(): void;
}

/** HTTP/1.1 requests one after the other on one keep-alive connection. */
async function keepAlive(port: number): Promise<OneConnection> {
  const { Agent, request } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  return {
    call: (path, xfcc) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path, agent, headers: xfcc === undefined ? {} : { [XFCC]: xfcc } },
          (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('error', reject);
        req.end();
      }),
    connections: () => sockets.size,
    close: () => agent.destroy(),
  };
}

/** Cleartext HTTP/2 requests as streams of one session. */
async function h2cSession(port: number): Promise<OneConnection> {
  const { connect } = await import('node:http2');
  let sessions = 0;
  const session = connect(`http://127.0.0.1:${port}`);
  session.on('connect', () => sessions++);
  return {
    call: (path, xfcc) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': path, ...(xfcc === undefined ? {} : { [XFCC]: xfcc }) });
        let status = 0;
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('error', reject);
        stream.on('end', () => resolve(status));
        stream.resume();
        stream.end();
      }),
    connections: () => sessions,
    close: () => session.close(),
  };
}

describe.each(LOOPBACK_CELLS)('proxy mode, RFC 9440 from a loopback proxy ($name)', (cell) => {
  const send = cellRequest(cell);
  let pki: TestPki;
  let app: INestApplication;

  beforeAll(async () => {
    pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
    const server = await pki.credentials(SIDECAR);
    app = await startProxyApp(cell, { credentials: server.credentials, proxy: { header: 'rfc9440', trust: 'loopback' } });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('with Client-Cert-Chain: the chain verifies to the bundle, the caller is admitted', async () => {
    const orders = await pki.peer(ORDERS);
    const { clientCert, clientCertChain } = rfc9440Fields(orders);
    const res = await send(app, '/orders-only', [
      ['Client-Cert', clientCert],
      ['Client-Cert-Chain', clientCertChain!],
    ]);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'rfc9440' });
  });

  it('without the chain its intermediate is missing: 401', async () => {
    const orders = await pki.peer(ORDERS);
    const res = await send(app, '/orders-only', [['Client-Cert', rfc9440Fields(orders).clientCert]]);
    expect(res.status).toBe(401);
  });

  it('a malformed byte sequence: 400; a repeated Client-Cert: 400', async () => {
    const orders = await pki.peer(ORDERS);
    const { clientCert } = rfc9440Fields(orders);
    const bad = await send(app, '/orders-only', [['Client-Cert', clientCert.slice(0, -1)]]);
    expect(bad.json()).toMatchObject({ statusCode: 400, code: 'ERR_MTLS_PROXY_HEADER_MALFORMED' });
    const twice = await send(app, '/orders-only', [
      ['Client-Cert', clientCert],
      ['client-cert', clientCert],
    ]);
    expect(twice.json()).toMatchObject({ statusCode: 400, code: 'ERR_MTLS_PROXY_HEADER_REPEATED' });
  });

  it('an XFCC header means nothing in RFC 9440 mode', async () => {
    const orders = await pki.peer(ORDERS);
    const res = await send(app, '/orders-only', [[XFCC, xfccElement(orders)]]);
    expect(res.status).toBe(401);
  });
});

describe.each(LOOPBACK_CELLS)('proxy mode, RFC 9440 without a chain, leaf issued by the root ($name)', (cell) => {
  const send = cellRequest(cell);
  it('admits the caller from Client-Cert alone', async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SIDECAR);
    const app = await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'rfc9440', trust: 'loopback' },
    });
    try {
      const orders = await pki.peer(ORDERS);
      const res = await send(app, '/orders-only', [['Client-Cert', rfc9440Fields(orders).clientCert]]);
      expect(res.status).toBe(200);
      expect(res.json()).toMatchObject({ spiffeId: ORDERS, source: 'rfc9440' });
    } finally {
      await app.close();
    }
  });
});

describe.each(LOOPBACK_CELLS)('proxy mode, element "first" behind a SANITIZE_SET edge ($name)', (cell) => {
  const send = cellRequest(cell);
  it("takes the edge's element and ignores what later hops appended", async () => {
    const pki = await TestPki.create({ trustDomain: 'shop.test' });
    const server = await pki.credentials(SIDECAR);
    const app = await startProxyApp(cell, {
      credentials: server.credentials,
      proxy: { header: 'xfcc', trust: 'loopback', element: 'first' },
    });
    try {
      const orders = await pki.peer(ORDERS);
      const res = await send(app, '/admin-only', [[XFCC, `${xfccElement(orders)},URI=${ADMIN}`]]);
      expect(res.status).toBe(403);
      const ok = await send(app, '/orders-only', [[XFCC, `${xfccElement(orders)},URI=${ADMIN}`]]);
      expect(ok.json()).toMatchObject({ spiffeId: ORDERS });
    } finally {
      await app.close();
    }
  });
});
