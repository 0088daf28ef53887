import { constants as cryptoConstants } from 'node:crypto';
import { createSecureContext as createTlsSecureContext } from 'node:tls';
import type { SecureContext, SecureContextOptions } from 'node:tls';
import { CredentialsError, MtlsConfigError } from '../errors/mtls.errors.js';
import type { TlsPolicyOptions } from '../mtls.options.js';
import type { Credentials } from './credentials.interfaces.js';
import { encodePem } from '../x509/pem.js';

interface EncodedCertificates {
  readonly chain: string;
  readonly bundle: readonly string[];
}

const encoded = new WeakMap<Credentials, EncodedCertificates>();

// Re-encoded from the validated DER: Node silently skips a `ca` entry it cannot parse, so the
// original file text (comments, stray blocks) never reaches OpenSSL.
function encodedCertificates(credentials: Credentials): EncodedCertificates {
  let result = encoded.get(credentials);
  if (result === undefined) {
    result = {
      chain: credentials.chain.map((certificate) => encodePem('CERTIFICATE', certificate.der)).join(''),
      bundle: credentials.caCertificates.map((certificate) => encodePem('CERTIFICATE', certificate.der)),
    };
    encoded.set(credentials, result);
  }
  return result;
}

/**
 * The complete option set for `tls.createSecureContext` / `server.setSecureContext`. `setSecureContext` resets every
 * field it is not given (an omitted `ca` means "trust the public CAs", an omitted `crl` drops revocation), so every
 * context this package builds goes through here. `policy` is taken as resolved by `resolveMtlsOptions`, which refuses
 * contradictions (a maxVersion below minVersion) at startup.
 */
export function secureContextOptions(credentials: Credentials, policy: TlsPolicyOptions = {}): SecureContextOptions {
  const { chain, bundle } = encodedCertificates(credentials);
  return {
    key: credentials.key.pem(),
    cert: chain,
    ca: [...bundle],
    // One entry per CRL: a single PEM string holding several CRLs loads only the first.
    ...(credentials.crlPems.length > 0 ? { crl: [...credentials.crlPems] } : {}),
    minVersion: policy.minVersion ?? 'TLSv1.2',
    maxVersion: policy.maxVersion ?? 'TLSv1.3',
    ...(policy.ciphers === undefined ? {} : { ciphers: policy.ciphers }),
    ...(policy.ecdhCurve === undefined ? {} : { ecdhCurve: policy.ecdhCurve }),
    honorCipherOrder: true,
    // The peer's identity is derived once per connection: a TLS 1.2 renegotiation must not swap its certificate.
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  };
}

/** Contexts built per credential set and policy object: the reloader's trial context is the one the client uses. */
const contexts = new WeakMap<Credentials, WeakMap<TlsPolicyOptions, SecureContext>>();
const NO_POLICY: TlsPolicyOptions = {};

/**
 * The SecureContext of validated credentials under a TLS policy, built once per (credentials, policy object). Throws
 * CredentialsError when OpenSSL refuses the material and MtlsConfigError when it refuses the policy; messages carry
 * OpenSSL's reason code, never input bytes.
 */
export function createSecureContext(credentials: Credentials, policy: TlsPolicyOptions = NO_POLICY): SecureContext {
  let byPolicy = contexts.get(credentials);
  if (byPolicy === undefined) {
    byPolicy = new WeakMap();
    contexts.set(credentials, byPolicy);
  }
  let context = byPolicy.get(policy);
  if (context === undefined) {
    try {
      context = createTlsSecureContext(secureContextOptions(credentials, policy));
    } catch (error) {
      throw refusal(error, credentials, policy);
    }
    byPolicy.set(policy, context);
  }
  return context;
}

function refusal(error: unknown, credentials: Credentials, policy: TlsPolicyOptions): Error {
  const { code, reason, message } = error as { code?: unknown; reason?: unknown; message?: unknown };
  const safeCode = typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'unknown';
  // OpenSSL reason strings come from a fixed table; Node's own messages are only matched, never copied.
  const safeReason = typeof reason === 'string' && /^[a-z0-9 ]{1,80}$/.test(reason) ? reason : undefined;
  const what = safeReason === undefined ? safeCode : `${safeCode}: ${safeReason}`;
  const text = typeof message === 'string' ? message : '';
  const { files } = credentials;
  const config = (option: string, value: unknown): MtlsConfigError =>
    new MtlsConfigError(
      'ERR_MTLS_CONFIG_INVALID',
      `MtlsModule option "${option}" is refused by OpenSSL (${what}); got ${JSON.stringify(value)}`,
    );

  if (safeCode === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
    return new CredentialsError(
      'ERR_MTLS_KEY_MISMATCH',
      `OpenSSL: the private key does not belong to the certificate in ${files.cert}`,
      {
        file: files.key,
        field: 'key',
        fix: 'install the key issued with this certificate',
      },
    );
  }
  if (safeCode === 'ERR_SSL_NO_CIPHER_MATCH') return config('tls.ciphers', policy.ciphers);
  if (safeCode === 'ERR_TLS_INVALID_PROTOCOL_VERSION') return config('tls.minVersion', policy.minVersion);
  if (text === 'Failed to set ECDH curve') return config('tls.ecdhCurve', policy.ecdhCurve);
  if (text === 'Failed to parse CRL') {
    return new CredentialsError('ERR_MTLS_CRL_INVALID', 'OpenSSL cannot parse a CRL', {
      file: files.crl.join(', '),
      field: 'crl',
      fix: 'fetch the CRL again from its CA',
    });
  }
  const keyProblem = /KEY_TOO_SMALL|PRIVATE_KEY|DECODER/.test(safeCode) && !safeCode.includes('CA_KEY');
  return new CredentialsError('ERR_MTLS_CREDENTIALS_NOT_PEM', `OpenSSL refuses the credential set (${what})`, {
    file: keyProblem ? files.key : files.cert,
    field: keyProblem ? 'key' : 'certificate',
    fix: keyProblem
      ? 'use a key OpenSSL accepts at its security level (RSA ≥ 2048 bits, or ECDSA P-256/P-384, or Ed25519)'
      : 'reissue the certificate with a key and signature OpenSSL accepts (RSA ≥ 2048 bits or ECDSA, SHA-256 or stronger)',
  });
}
