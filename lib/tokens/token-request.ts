import type { VerifiedToken } from './token-verifier.js';

// Per request, not per connection: two requests on one keep-alive connection may carry different tokens.
const verified = new WeakMap<object, VerifiedToken>();

/** @internal Records the token the guard verified for this request. */
export function attachVerifiedToken(request: object, token: VerifiedToken): void {
  verified.set(request, token);
}

/** The token verified for a request by the token guard; undefined on routes without `@RequireToken`. */
export function verifiedTokenOf(request: object): VerifiedToken | undefined {
  return verified.get(request);
}
