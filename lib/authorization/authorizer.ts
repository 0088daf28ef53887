// CONTRACT STUB — implemented by the identity helper. Keep these signatures.
import type { PeerIdentity } from '../identity/peer-identity.js';

/**
 * Decides whether a peer may proceed. Returns `undefined` to allow, or a short reason naming the offending value
 * (go-spiffe style: `unexpected ID "spiffe://…"`). Authorizers are built once and must be cheap per call:
 * sets and compiled patterns are made in the constructor functions, never per call.
 */
export interface Authorizer {
  (peer: PeerIdentity): string | undefined;
  /** Human-readable rule for logs, e.g. `one of [spiffe://shop.test/ns/shop/sa/orders]`. */
  readonly description: string;
}
