// The `nestjs-mtls/credentials` entry: reading, validating, storing and watching credential sets without Nest, the
// option resolver `MtlsHttpClient` takes outside Nest, and the certificate parser the sets are made of.
export { resolveMtlsOptions } from '../mtls.config.js';
export type { ResolvedMtlsOptions } from '../mtls.config.js';
export { loadCredentials, readCredentials, resolveCredentialFiles, validateCredentials } from './credentials-loader.js';
export type { ValidateOptions } from './credentials-loader.js';
export { CredentialStore } from './credential-store.js';
export type { CredentialsListener } from './credential-store.js';
export { CredentialsReloader } from './credentials-reloader.js';
export type { CredentialsReloadEvent, CredentialsReloaderOptions, ReloadResult } from './credentials-reloader.js';
export { PrivateKeyMaterial } from './private-key.js';
export { describeCredentials } from './credentials-description.js';
export type {
  CredentialFiles,
  CredentialFilesOptions,
  CredentialSetName,
  Credentials,
  CredentialsSourceOptions,
  CredentialUsage,
  RawCredentials,
  SecretDirectoryOptions,
} from './credentials.interfaces.js';
export { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, parseCertificateDer, parseCertificatesPem } from '../x509/certificate.js';
export type { CertificateInfo, KeyUsageBits } from '../x509/certificate.js';
export { CertificateParseError, CredentialsError } from '../errors/mtls.errors.js';
