export { TestPki, secretFiles, writeCredentialFiles } from './test-pki.js';
export type { TestCredentials, TestPeer } from './test-pki.js';
export { callAs } from './call-as.js';
export type { CallAsOptions, CallerCredentials, PeerCaller, PeerRequestOptions, PeerResponse } from './call-as.js';
export { writeKubernetesSecret } from './kubernetes-secret-writer.js';
export { CertificateAuthority } from '../pki/certificate-authority.js';
export type { CertificateAuthorityOptions, IssuedCertificate, IssueOptions, KeyAlgorithm } from '../pki/certificate-authority.js';
export { rfc9440Fields, xfccElement } from './proxy-headers.js';
export type { XfccElementOptions } from './proxy-headers.js';
