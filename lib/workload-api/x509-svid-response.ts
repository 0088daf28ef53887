import { createHash } from 'node:crypto';
import { DerError, DerReader, Tag } from '../x509/der.js';
import { CredentialsError } from '../errors/mtls.errors.js';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.js';
import type { CredentialFiles, RawCredentials } from '../credentials/credentials.interfaces.js';
import { encodePem } from '../x509/pem.js';
import { PrivateKeyMaterial } from '../credentials/private-key.js';
import type { X509SvidMessage, X509SvidResponse } from './workload-api.codec.js';

/**
 * Which SVID to use when the agent serves several: a SPIFFE ID (`spiffe://…`) or an operator-set hint (`internal`).
 * Undefined: the first, as the Workload API standard says.
 */
export type SvidSelector = string | undefined;

/** The labels that stand in for file names in errors and logs about Workload API material. */
export function workloadApiLabels(address: string): CredentialFiles {
  return {
    cert: `Workload API ${address} X509-SVID`,
    key: `Workload API ${address} X509-SVID key`,
    ca: `Workload API ${address} bundle`,
    crl: [],
    secretDir: undefined,
  };
}

function refused(
  files: CredentialFiles,
  reason: string,
  fix: string,
  field: 'certificate' | 'key' | 'ca' | 'crl' = 'certificate',
): CredentialsError {
  return new CredentialsError('ERR_MTLS_SVID_INVALID', reason, {
    file: field === 'ca' ? files.ca : field === 'key' ? files.key : files.cert,
    field,
    fix,
  });
}

/** Picks the SVID named by `selector` (a SPIFFE ID or a hint), else the first. Throws CredentialsError when none fits. */
export function selectSvid(svids: readonly X509SvidMessage[], selector: SvidSelector, files: CredentialFiles): X509SvidMessage {
  if (svids.length === 0) {
    throw refused(
      files,
      'the response holds no X509-SVID',
      'register this workload with the SPIRE server (an entry whose selectors match it)',
    );
  }
  if (selector === undefined) return svids[0]!;
  const byId = selector.startsWith('spiffe://');
  // Hints are unique per response; were they not, the standard says the first wins.
  const found = svids.find((svid) => (byId ? svid.spiffeId === selector : svid.hint === selector));
  if (found !== undefined) return found;
  const offered = svids.map((svid) =>
    svid.hint === '' ? svid.spiffeId : `${svid.spiffeId} (hint ${JSON.stringify(svid.hint)})`,
  );
  throw refused(
    files,
    `no X509-SVID with ${byId ? 'SPIFFE ID' : 'hint'} ${JSON.stringify(selector)}; the agent serves ${offered.join(', ')}`,
    'fix the "workloadApi.svid" option, or the SPIRE registration entry (its hint or SPIFFE ID)',
  );
}

/** Splits concatenated DER certificates (`x509_svid`, `bundle`). */
function splitDer(der: Buffer, what: string, files: CredentialFiles, field: 'certificate' | 'ca'): Buffer[] {
  const reader = DerReader.of(der);
  const items: Buffer[] = [];
  try {
    while (!reader.done) items.push(reader.readEncoded(Tag.SEQUENCE, what));
  } catch (error) {
    const detail = error instanceof DerError ? error.message : 'malformed DER';
    throw refused(
      files,
      `${what} is not concatenated DER certificates: ${detail}`,
      'report this to the Workload API server operator',
      field,
    );
  }
  if (items.length === 0) throw refused(files, `${what} is empty`, 'report this to the Workload API server operator', field);
  return items;
}

/** `-----BEGIN PRIVATE KEY-----` PEM built in a Buffer (never a string, which could not be zeroed). */
function pkcs8Pem(der: Buffer): Buffer {
  const header = Buffer.from('-----BEGIN PRIVATE KEY-----\n');
  const footer = Buffer.from('-----END PRIVATE KEY-----\n');
  const base64Length = Math.ceil(der.length / 3) * 4;
  const lines = Math.ceil(base64Length / 64);
  const out = Buffer.alloc(header.length + base64Length + lines + footer.length);
  let pos = header.copy(out, 0);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let column = 0;
  const put = (code: number): void => {
    out[pos++] = code;
    if (++column === 64) {
      out[pos++] = 0x0a;
      column = 0;
    }
  };
  for (let i = 0; i < der.length; i += 3) {
    const a = der[i]!;
    const b = i + 1 < der.length ? der[i + 1]! : 0;
    const c = i + 2 < der.length ? der[i + 2]! : 0;
    put(alphabet.charCodeAt(a >> 2));
    put(alphabet.charCodeAt(((a & 3) << 4) | (b >> 4)));
    put(i + 1 < der.length ? alphabet.charCodeAt(((b & 15) << 2) | (c >> 6)) : 0x3d);
    put(i + 2 < der.length ? alphabet.charCodeAt(c & 63) : 0x3d);
  }
  if (column !== 0) out[pos++] = 0x0a;
  pos += footer.copy(out, pos);
  return out.subarray(0, pos);
}

/**
 * Turns one `X509SVIDResponse` into the raw set every source produces, so that it goes through the same validation
 * and install path as files: the chosen SVID's chain and key, its trust domain's bundle, the CRLs, and (federation)
 * the other trust domains' bundles. The key's DER is zeroed in the received message once copied into its PEM buffer.
 * Throws CredentialsError for a message that cannot be used; the caller keeps serving the last good set.
 */
/** One usable X509-SVID out of a response, as raw credentials, with the SPIFFE ID the agent says it carries. */
export interface WorkloadSvid {
  readonly raw: RawCredentials;
  /** `spiffe_id` of the message: the validated leaf must carry exactly this ID. */
  readonly spiffeId: string;
}

export function rawCredentialsFromResponse(response: X509SvidResponse, selector: SvidSelector, address: string): WorkloadSvid {
  try {
    return convert(response, selector, address);
  } finally {
    // The chosen key was copied into its PEM buffer; no key may linger in the received message, used or not.
    for (const svid of response.svids) svid.key.fill(0);
  }
}

function convert(response: X509SvidResponse, selector: SvidSelector, address: string): WorkloadSvid {
  const files = workloadApiLabels(address);
  const svid = selectSvid(response.svids, selector, files);
  let spiffeId: string;
  try {
    spiffeId = parseSpiffeId(svid.spiffeId).toString();
  } catch {
    throw refused(
      files,
      `the X509-SVID's spiffe_id ${JSON.stringify(svid.spiffeId)} is not a SPIFFE ID`,
      'report this to the Workload API server operator',
    );
  }
  if (svid.key.length === 0) {
    throw refused(files, 'the X509-SVID has no private key', 'report this to the Workload API server operator', 'key');
  }
  const chain = splitDer(svid.certificates, 'x509_svid', files, 'certificate');
  const bundle = splitDer(svid.bundle, 'bundle', files, 'ca');
  const hash = createHash('sha256');
  const frame = (label: string, bytes: Uint8Array): void => {
    hash.update(`${label}\0${bytes.length}\0`);
    hash.update(bytes);
  };
  frame('id', Buffer.from(spiffeId));
  frame('svid', svid.certificates);
  frame('key', svid.key);
  frame('bundle', svid.bundle);

  const crlPems: string[] = [];
  const crlFiles: string[] = [];
  for (const [i, crl] of response.crl.entries()) {
    frame('crl', crl);
    crlPems.push(encodePem('X509 CRL', crl));
    crlFiles.push(`Workload API ${address} crl[${i}]`);
  }

  const federated = new Map<string, string>();
  // Sorted, so that the same state in another order hashes the same.
  for (const [name, der] of [...response.federatedBundles].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    let trustDomain: string;
    try {
      trustDomain = parseTrustDomain(name);
    } catch {
      throw refused(
        files,
        `federated_bundles key ${JSON.stringify(name)} is not a trust domain`,
        'report this to the Workload API server operator',
        'ca',
      );
    }
    if (federated.has(trustDomain)) {
      throw refused(
        files,
        `federated_bundles holds trust domain ${trustDomain} twice`,
        'report this to the Workload API server operator',
        'ca',
      );
    }
    const pem = splitDer(der, `federated bundle of ${trustDomain}`, files, 'ca')
      .map((c) => encodePem('CERTIFICATE', c))
      .join('');
    federated.set(trustDomain, pem);
    frame(`td:${trustDomain}`, der);
  }
  const raw: RawCredentials = {
    files: { ...files, crl: crlFiles },
    certPem: chain.map((c) => encodePem('CERTIFICATE', c)).join(''),
    key: new PrivateKeyMaterial(pkcs8Pem(svid.key)),
    caPem: bundle.map((c) => encodePem('CERTIFICATE', c)).join(''),
    crlPems,
    crlFiles,
    contentHash: hash.digest('hex'),
    federatedBundlePems: federated,
  };
  return { raw, spiffeId };
}
