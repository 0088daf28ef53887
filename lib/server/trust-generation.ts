import { createHash } from 'node:crypto';
import type { Credentials } from '../credentials/credentials.interfaces.js';
import type { RevocationList } from '../x509/crl.js';
import { revocationListsOf } from '../credentials/revocation-lists.js';
import type { CertificateInfo } from '../x509/certificate.js';

/**
 * What the server trusts at one moment: the CA bundle and the CRLs of one credential set. A new generation starts
 * whenever either changes (not when only the server's own certificate or key rotates). Every connection records the
 * generation in force when its TCP connection was accepted, which is when Node binds its TLS context.
 */
export interface TrustGeneration {
  /** 1 for the trust loaded at startup, +1 on every change. */
  readonly id: number;
  /** The trust bundle (the `ca` given to OpenSSL). */
  readonly roots: readonly CertificateInfo[];
  /** The parsed CRLs (the `crl` given to OpenSSL); empty when revocation is not configured. */
  readonly crls: readonly RevocationList[];
  /** Identifies the bundle and CRLs by content. */
  readonly key: string;
}

/** Identifies what a TLS server trusts: the CA bundle and the CRLs, by content. */
export function trustKey(credentials: Credentials): string {
  const hash = createHash('sha256');
  for (const ca of credentials.caCertificates) hash.update(`ca\0${ca.fingerprint256}\0`);
  for (const crl of credentials.crlPems) hash.update(`crl\0${crl.length}\0`).update(crl);
  return hash.digest('hex');
}

/** The generation after `previous` for `credentials`: `previous` itself when the trust did not change. */
export function nextTrustGeneration(previous: TrustGeneration | undefined, credentials: Credentials): TrustGeneration {
  const key = trustKey(credentials);
  if (previous !== undefined && previous.key === key) return previous;
  return Object.freeze({
    id: (previous?.id ?? 0) + 1,
    roots: credentials.caCertificates,
    crls: revocationListsOf(credentials),
    key,
  });
}
