import type { KeyObject } from 'node:crypto';

/** Key algorithm of a minted key. */
export type KeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'Ed25519';

/** The algorithm of a public or private key, when it is one the CA issues; RSA only at 2048 bits. */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | undefined {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ec' && curve === 'prime256v1') return 'ECDSA-P256';
  if (type === 'ec' && curve === 'secp384r1') return 'ECDSA-P384';
  if (type === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048) return 'RSA-2048';
  if (type === 'ed25519') return 'Ed25519';
  return undefined;
}
