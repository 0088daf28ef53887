export { TestPki, secretFiles, writeCredentialFiles } from './test-pki.js';
export type { TestCredentials, TestPeer } from './test-pki.js';
export { callAs } from './call-as.js';
export { TestTokenIssuer, certificateThumbprint } from './test-token-issuer.js';
export type { MintOptions, TestSigningKey, TestTokenIssuerOptions } from './test-token-issuer.js';
export type { CallAsOptions, CallerCredentials, PeerCaller, PeerRequestOptions, PeerResponse } from './call-as.js';
export { writeKubernetesSecret } from '../credentials/secret-layout.js';
export { CertificateAuthority } from '../x509/certificate-authority.js';
export type {
  CertificateAuthorityOptions,
  IssuedCertificate,
  IssueOptions,
  KeyAlgorithm,
} from '../x509/certificate-authority.js';
export { WorkloadApiTestServer } from './workload-api-server.js';
export type { TestX509Svid, WorkloadApiRefusal } from './workload-api-server.js';
export { rfc9440Fields, xfccElement } from './proxy-headers.js';
export type { XfccElementOptions } from './proxy-headers.js';
