// Loading a CA from PEM files and checking it strictly: the certificate is a CA, chains to a root that ends the
// file, and its key is one the CA can sign with. Minting is in certificate-authority.ts.
import { X509Certificate as NodeX509Certificate, KeyObject, createPrivateKey } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CredentialsError } from '../errors/mtls.errors.js';
import { parseSpiffeId, spiffeIdError } from '../identity/spiffe-id.js';
import { keyAlgorithmOf, type KeyAlgorithm } from './key-algorithm.js';
import { decodePemBlock, findPemBlocks } from './pem.js';

export interface ParsedCertificate {
  readonly peculiar: x509.X509Certificate;
  readonly node: NodeX509Certificate;
}

export function parseCertificateBundle(pem: string, file: string): ParsedCertificate[] {
  const data = Buffer.from(pem, 'latin1');
  const scan = findPemBlocks(data);
  const blocks = scan.ok ? scan.blocks.filter((block) => block.label === 'CERTIFICATE') : [];
  return blocks.map((block, index) => {
    try {
      const der = decodePemBlock(data, block);
      if (der === undefined) throw new Error('not strict base64');
      return { peculiar: new x509.X509Certificate(der), node: new NodeX509Certificate(der) };
    } catch (cause) {
      throw new CredentialsError(
        'ERR_MTLS_CREDENTIALS_NOT_PEM',
        `certificate #${index + 1} in the PEM does not parse as X.509`,
        { file, field: 'certificate', fix: 'regenerate or re-export the CA certificate as PEM' },
        { cause },
      );
    }
  });
}

export function checkIsCa(cert: x509.X509Certificate, file: string): void {
  // Read from the DER: Node's X509Certificate.ca is false for cA=TRUE without keyCertSign, hiding the real cause.
  const basicConstraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (basicConstraints === null || !basicConstraints.ca) {
    throw new CredentialsError(
      'ERR_MTLS_SVID_INVALID',
      `"${cert.subject}" is not a CA certificate (basicConstraints cA is not true)`,
      {
        file,
        field: 'certificate',
        fix: 'point it at the CA certificate, not at a leaf',
      },
    );
  }
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (keyUsage !== null && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new CredentialsError(
      'ERR_MTLS_SVID_INVALID',
      `"${cert.subject}" lacks the keyCertSign key usage and cannot sign certificates`,
      {
        file,
        field: 'certificate',
        fix: 'use a CA certificate whose keyUsage includes keyCertSign',
      },
    );
  }
}

export function readPrivateKey(keyPem: string, file: string): KeyObject {
  try {
    return createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (cause) {
    // Node's message names the decoder failure, never the input; keep it as the cause for debugging.
    throw new CredentialsError(
      'ERR_MTLS_CREDENTIALS_NOT_PEM',
      'not an unencrypted PEM private key (PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY")',
      { file, field: 'key', fix: 'point it at the CA private key PEM; decrypt it first if it is encrypted' },
      { cause },
    );
  }
}

/** How a loaded CA key is imported into WebCrypto; throws for a key type the CA cannot sign with. */
export function caKeyAlgorithm(key: KeyObject, file: string): KeyAlgorithm {
  // Any RSA size signs with SHA-256; the name only selects the WebCrypto import parameters.
  const algorithm = key.asymmetricKeyType === 'rsa' ? 'RSA-2048' : keyAlgorithmOf(key);
  if (algorithm !== undefined) return algorithm;
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  throw new CredentialsError(
    'ERR_MTLS_CREDENTIALS_NOT_PEM',
    `unsupported CA key type ${type ?? 'unknown'}${curve ? ` (${curve})` : ''}`,
    {
      file,
      field: 'key',
      fix: 'use an ECDSA P-256/P-384, RSA or Ed25519 key',
    },
  );
}

/**
 * Checks that `certs[0]` chains through the following certificates to a self-signed root that ends the PEM;
 * returns the certificates below the root and the root.
 */
export function checkChainToRoot(
  certs: readonly ParsedCertificate[],
  file: string,
): { intermediates: ParsedCertificate[]; root: ParsedCertificate } {
  let index = 0;
  let cert = certs[0]!;
  while (!isSelfSigned(cert.node)) {
    const issuer = certs[index + 1];
    if (issuer === undefined) {
      throw new CredentialsError(
        'ERR_MTLS_CHAIN_UNTRUSTED',
        `"${cert.peculiar.subject}" is not self-signed and its issuer is not in the PEM`,
        {
          file,
          field: 'certificate',
          fix: 'append the issuing CA certificates, up to and including the root, after the CA certificate',
        },
      );
    }
    if (!(cert.node.checkIssued(issuer.node) && cert.node.verify(issuer.node.publicKey))) {
      throw new CredentialsError(
        'ERR_MTLS_CHAIN_UNTRUSTED',
        `"${cert.peculiar.subject}" is not signed by the next certificate "${issuer.peculiar.subject}"`,
        { file, field: 'certificate', fix: 'order the PEM as: CA certificate, its issuer, …, root' },
      );
    }
    checkIsCa(issuer.peculiar, file);
    index += 1;
    cert = issuer;
  }
  if (index !== certs.length - 1) {
    throw new CredentialsError(
      'ERR_MTLS_CHAIN_UNTRUSTED',
      `${certs.length - 1 - index} certificate(s) follow the root "${cert.peculiar.subject}"`,
      {
        file,
        field: 'certificate',
        fix: 'keep only the CA certificate and its issuers up to the root, in that order',
      },
    );
  }
  return { intermediates: certs.slice(0, index), root: cert };
}

export function isSelfSigned(cert: NodeX509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

/** The trust domain of a signing certificate's single `spiffe://<td>` URI SAN, if it has exactly that. */
export function signingCertTrustDomain(cert: x509.X509Certificate): string | undefined {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((name) => name.type === 'url').map((name) => name.value) ?? [];
  const uri = uris.length === 1 ? uris[0]! : undefined;
  if (uri === undefined || !uri.startsWith('spiffe://') || spiffeIdError(uri) !== undefined) return undefined;
  const { trustDomain, path } = parseSpiffeId(uri);
  return path === '' ? trustDomain : undefined;
}
