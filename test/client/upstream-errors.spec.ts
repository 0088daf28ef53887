import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../lib/errors/mtls.errors.js';
import { toUpstreamError } from '../../lib/client/upstream-errors.js';

const call = { upstream: 'inventory', expected: 'spiffe://shop.test/ns/shop/sa/inventory', request: 'GET /stock/42' };

function coded(code: string, message = `${code} happened`, extra: object = {}): Error {
  return Object.assign(new Error(message), { code }, extra);
}

describe('toUpstreamError', () => {
  it.each([
    [
      coded('CERT_HAS_EXPIRED', 'certificate has expired'),
      'ERR_MTLS_UPSTREAM_TLS',
      "the server's certificate was refused: CERT_HAS_EXPIRED (certificate has expired)",
    ],
    [
      coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      'ERR_MTLS_UPSTREAM_TLS',
      "the server's certificate was refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    ],
    [
      coded('DEPTH_ZERO_SELF_SIGNED_CERT'),
      'ERR_MTLS_UPSTREAM_TLS',
      "the server's certificate was refused: DEPTH_ZERO_SELF_SIGNED_CERT",
    ],
    [coded('CERT_REVOKED'), 'ERR_MTLS_UPSTREAM_TLS', "the server's certificate was refused: CERT_REVOKED"],
    [
      coded('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'),
      'ERR_MTLS_UPSTREAM_TLS',
      'the server may have refused our client certificate',
    ],
    [coded('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), 'ERR_MTLS_UPSTREAM_TLS', 'the server may have refused our client certificate'],
    [coded('ERR_SSL_WRONG_VERSION_NUMBER'), 'ERR_MTLS_UPSTREAM_TLS', 'TLS failed: ERR_SSL_WRONG_VERSION_NUMBER'],
    [
      coded('UND_ERR_SOCKET', 'other side closed', { socket: { bytesRead: 0 } }),
      'ERR_MTLS_UPSTREAM_TLS',
      'the server closed a new connection before answering',
    ],
    [
      coded('UND_ERR_SOCKET', 'other side closed', { socket: { bytesRead: 512 } }),
      'ERR_MTLS_UPSTREAM_REQUEST',
      'failed: UND_ERR_SOCKET (other side closed)',
    ],
    [coded('ECONNRESET'), 'ERR_MTLS_UPSTREAM_REQUEST', 'failed: ECONNRESET'],
    [
      coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'),
      'ERR_MTLS_UPSTREAM_REQUEST',
      'failed: ECONNREFUSED (connect ECONNREFUSED 127.0.0.1:1)',
    ],
    [coded('UND_ERR_CONNECT_TIMEOUT'), 'ERR_MTLS_UPSTREAM_TIMEOUT', 'timed out'],
    [coded('UND_ERR_HEADERS_TIMEOUT'), 'ERR_MTLS_UPSTREAM_TIMEOUT', 'timed out'],
    [coded('UND_ERR_BODY_TIMEOUT'), 'ERR_MTLS_UPSTREAM_TIMEOUT', 'timed out'],
    [coded('UND_ERR_ABORTED'), 'ERR_MTLS_UPSTREAM_ABORTED', 'aborted'],
    [new DOMException('This operation was aborted', 'AbortError'), 'ERR_MTLS_UPSTREAM_ABORTED', 'aborted'],
    ['a string', 'ERR_MTLS_UPSTREAM_REQUEST', 'failed: a string'],
  ])('maps %s to %s', (error, code, fragment) => {
    const mapped = toUpstreamError(error, call);

    expect(mapped).toBeInstanceOf(UpstreamError);
    expect(mapped.code).toBe(code);
    expect(mapped.message).toMatch(/^GET \/stock\/42 to upstream inventory: /);
    expect(mapped.message).toContain(fragment);
    expect(mapped.cause).toBe(error);
    expect(mapped).toMatchObject({ upstream: 'inventory', expected: call.expected });
  });

  it('keeps an identity error made during the handshake, naming the call', () => {
    const identity = new UpstreamError(
      'ERR_MTLS_UPSTREAM_IDENTITY',
      'upstream inventory presented spiffe://shop.test/ns/shop/sa/payments, expected inventory; no request was sent',
      { upstream: 'inventory', expected: 'inventory', seen: 'spiffe://shop.test/ns/shop/sa/payments' },
    );

    const mapped = toUpstreamError(identity, call);

    expect(mapped).toMatchObject({
      code: 'ERR_MTLS_UPSTREAM_IDENTITY',
      message: `GET /stock/42: ${identity.message}`,
      upstream: 'inventory',
      expected: 'inventory',
      seen: 'spiffe://shop.test/ns/shop/sa/payments',
      cause: identity,
    });
  });
});
