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
} from './spiffe-id.js';
export { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, parseCertificateDer, parseCertificatesPem } from '../x509/certificate.js';
export type { CertificateInfo, KeyUsageBits } from '../x509/certificate.js';
export { peerIdentityFromCertificate, peerIdentityFromDer } from './peer-identity.js';
export type { PeerIdentity } from './peer-identity.js';
