import { describe, expect, it } from 'vitest';
import { BoundedLabel, deniedReasonLabel, handshakeReasonLabel, OTHER_LABEL } from '../../lib/observability/prometheus/index.js';

describe('handshakeReasonLabel', () => {
  it.each([
    // What the server sees for the common failures (measured on Node 20 with OpenSSL 3).
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'], // client from another CA
    ['CERT_HAS_EXPIRED', 'CERT_HAS_EXPIRED'],
    ['CERT_REVOKED', 'CERT_REVOKED'],
    ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'], // no client certificate
    ['ERR_SSL_HTTP_REQUEST', 'ERR_SSL_HTTP_REQUEST'], // plain HTTP on the TLS port
    ['ECONNRESET', 'ECONNRESET'], // TCP probe, or the client refused the server's certificate
    ['ERR_TLS_HANDSHAKE_TIMEOUT', 'ERR_TLS_HANDSHAKE_TIMEOUT'],
    // Connections MtlsModule closes right after the handshake (connection admission).
    ['ERR_MTLS_PEER_INVALID', 'ERR_MTLS_PEER_INVALID'],
    ['ERR_MTLS_PEER_DENIED', 'ERR_MTLS_PEER_DENIED'],
    ['ERR_MTLS_PEER_UNAUTHENTICATED', 'ERR_MTLS_PEER_UNAUTHENTICATED'],
    // Anything else collapses, whatever a scanner sends.
    ['ERR_SSL_SOMETHING_NEW', OTHER_LABEL],
    ['unexpected message text with spaces', OTHER_LABEL],
    ['cert_has_expired', OTHER_LABEL],
    ['', OTHER_LABEL],
    ['__proto__', OTHER_LABEL],
  ])('%j → %s', (reason, label) => {
    expect(handshakeReasonLabel(reason)).toBe(label);
  });
});

describe('deniedReasonLabel', () => {
  it.each([
    ['ERR_MTLS_PEER_DENIED', 'ERR_MTLS_PEER_DENIED'],
    ['ERR_MTLS_PEER_UNAUTHENTICATED', 'ERR_MTLS_PEER_UNAUTHENTICATED'],
    ['ERR_MTLS_PEER_INVALID', 'ERR_MTLS_PEER_INVALID'],
    ['ERR_MTLS_KEY_MISMATCH', OTHER_LABEL],
    ['toString', OTHER_LABEL],
    ['__proto__', OTHER_LABEL],
  ])('%j → %s', (code, label) => {
    expect(deniedReasonLabel(code)).toBe(label);
  });
});

describe('BoundedLabel', () => {
  it('keeps the first `limit` distinct values and maps later ones to other', () => {
    const routes = new BoundedLabel(2);
    expect(['A.a', 'B.b', 'A.a', 'C.c', 'B.b', 'D.d'].map((route) => routes.value(route))).toEqual([
      'A.a',
      'B.b',
      'A.a',
      OTHER_LABEL,
      'B.b',
      OTHER_LABEL,
    ]);
  });
});
