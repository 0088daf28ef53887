export { CertificateAuthority } from './certificate-authority.js';
export type {
  CertificateAuthorityLoadOptions,
  CertificateAuthorityOptions,
  CrlOptions,
  IssueOptions,
  IssuedCertificate,
  KeyAlgorithm,
  LeafExtKeyUsage,
  LeafKeyUsage,
} from './certificate-authority.js';
