// The `nestjs-mtls/spiffe` entry: SPIFFE IDs and trust domains, the identity of a peer's certificate, and the
// authorizers that admit peers (go-spiffe's `spiffeid`, `x509svid` and `tlsconfig`). Plain functions, no Nest.
export {
  SPIFFE_ID_MAX_BYTES,
  SpiffeId,
  TRUST_DOMAIN_MAX_BYTES,
  isValidSpiffeId,
  joinSpiffePathSegments,
  parseSpiffeId,
  parseTrustDomain,
  spiffeIdError,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  validateSpiffePath,
  validateSpiffePathSegment,
} from '../identity/spiffe-id.js';
export { peerIdentityFromCertificate, peerIdentityFromDer } from '../identity/peer-identity.js';
export type { PeerIdentity } from '../identity/peer-identity.js';
export {
  authorizeAny,
  authorizeAnyOf,
  authorizeCommonName,
  authorizeDnsName,
  authorizeId,
  authorizeMatch,
  authorizeMemberOf,
  authorizeNone,
  authorizeOneOf,
  compileSpiffePattern,
} from '../authorization/authorizer.js';
export type { Authorizer } from '../authorization/authorizer.js';
export { SpiffeIdError } from '../errors/mtls.errors.js';
