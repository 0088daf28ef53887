import { AsnParser } from '@peculiar/asn1-schema';
import { Certificate, SubjectAlternativeName } from '@peculiar/asn1-x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateParseError, PeerError } from '../../lib/errors/mtls.errors.js';
import { parseCertificateDer, parseCertificatesPem, type CertificateInfo } from '../../lib/x509/certificate.js';
import { crlIssuerMismatch, parseCrl, type RevocationList } from '../../lib/x509/crl.js';
import { encodePem } from '../../lib/x509/pem.js';
import { peerIdentityFromCertificate } from '../../lib/identity/peer-identity.js';
import { isValidSpiffeId } from '../../lib/identity/spiffe-id.js';
import { claimsSpiffeId } from '../../lib/identity/svid-rules.js';
import { TestPki } from '../../lib/testing/test-pki.js';
import {
  describeThrown,
  encodeDerTree,
  mutateBytes,
  mutateDer,
  mutateText,
  nestedSequences,
  parseDerTree,
  Prng,
  timed,
  type DerNode,
} from '../support/fuzz.js';
import { extension, seq, syntheticCertificate, tlv } from './fixtures/der-builder.js';

/*
 * Fuzzing the DER reader through its two hostile-input parsers, certificates and CRLs: real TestPki certificates and
 * CRLs, mutated bit by bit, cut at every offset, with fields removed, duplicated, moved, re-tagged and lengths
 * inflated up to 2^32 - 1, plus deep nesting. Properties: a value or the package's error, never a TypeError or
 * RangeError; each input within a generous time bound; and no mutated certificate yields an identity the rules refuse.
 */

const SEED = 0x5eed_d3a1;
/** Generous bound per input for a parser that takes microseconds on real certificates. */
const PER_INPUT_MS = 50;
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

let pki: TestPki;
let ca: CertificateInfo;
const certificates: { name: string; der: Buffer; tree: DerNode }[] = [];
let crl: { der: Buffer; tree: DerNode; original: RevocationList };

function derOf(pem: string): Buffer {
  return parseCertificatesPem(pem)[0]!.der;
}

beforeAll(async () => {
  pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
  const leaf = await pki.peer(ORDERS);
  const legacy = await pki.peer({
    dnsNames: ['orders.shop.svc', 'a.example'],
    ipAddresses: ['10.0.0.1', '2001:db8::1'],
    commonName: 'orders',
  });
  const chain = parseCertificatesPem(leaf.chainPem);
  ca = chain[1]!;
  for (const [name, der] of [
    ['SVID leaf', derOf(leaf.certPem)],
    ['legacy leaf', derOf(legacy.certPem)],
    ['intermediate', chain[1]!.der],
    ['root', derOf(pki.bundlePem)],
  ] as const) {
    certificates.push({ name, der, tree: parseDerTree(der) });
  }
  const crlPem = await pki.ca.createCrl(['01', 'abcdef', leaf.serialNumber]);
  const crlDer = Buffer.from(crlPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const parsed = parseCrl(crlDer);
  if (!parsed.ok) throw new Error(parsed.reason);
  crl = { der: crlDer, tree: parseDerTree(crlDer), original: parsed.crl };
}, 30_000);

interface Failure {
  readonly input: string;
  readonly problem: string;
}

/** The URI SANs @peculiar/asn1-x509 reads, or undefined when it cannot parse the certificate. */
function peculiarUris(der: Buffer): string[] | undefined {
  try {
    const tbs = AsnParser.parse(der, Certificate).tbsCertificate;
    const san = tbs.extensions?.find((e) => e.extnID === '2.5.29.17');
    if (san === undefined) return [];
    return AsnParser.parse(san.extnValue, SubjectAlternativeName).flatMap((n) => n.uniformResourceIdentifier ?? []);
  } catch {
    return undefined;
  }
}

/** Checks one certificate input; returns what is wrong, or undefined. */
function certificateProblem(der: Buffer): string | undefined {
  const result = timed(() => parseCertificateDer(der));
  if (result.ms > PER_INPUT_MS) return `took ${result.ms.toFixed(1)} ms`;
  if (result.error !== undefined) {
    if (result.error instanceof CertificateParseError && result.error.code === 'ERR_MTLS_CERTIFICATE_INVALID') return undefined;
    return `threw ${describeThrown(result.error)}`;
  }
  const leaf = result.value!;
  // The identity rules on what was accepted: exactly one valid SPIFFE ID, or none claimed.
  let identity;
  try {
    identity = peerIdentityFromCertificate(leaf);
  } catch (error) {
    if (error instanceof PeerError && error.code === 'ERR_MTLS_PEER_INVALID') return undefined;
    return `identity threw ${describeThrown(error)}`;
  }
  if (identity.spiffeId !== undefined) {
    if (leaf.uris.length !== 1) return `identity ${identity.spiffeId} from ${leaf.uris.length} URI SANs`;
    if (!isValidSpiffeId(identity.spiffeId)) return `invalid SPIFFE ID ${JSON.stringify(identity.spiffeId)} accepted`;
    if (leaf.isCa || leaf.keyUsage?.keyCertSign === true) return 'a signing certificate became an identity';
  } else if (claimsSpiffeId(leaf)) {
    return 'a leaf claiming a SPIFFE ID became a non-SPIFFE identity';
  }
  // Differential: an independent (lenient, BER) ASN.1 reader must see the same URI SANs in what the strict one accepts.
  const uris = peculiarUris(der);
  if (uris !== undefined && JSON.stringify(uris) !== JSON.stringify(leaf.uris)) {
    return `URI SANs ${JSON.stringify(leaf.uris)}, @peculiar/asn1-x509 reads ${JSON.stringify(uris)}`;
  }
  return undefined;
}

/** Checks one CRL input: never throws, bounded time, and a CRL whose signature still verifies revokes the same serials. */
function crlProblem(der: Buffer): string | undefined {
  const result = timed(() => parseCrl(der));
  if (result.ms > PER_INPUT_MS) return `took ${result.ms.toFixed(1)} ms`;
  if (result.error !== undefined) return `threw ${describeThrown(result.error)}`;
  const parsed = result.value!;
  if (!parsed.ok) return typeof parsed.reason === 'string' && parsed.reason !== '' ? undefined : 'refusal without a reason';
  const verified = timed(() => crlIssuerMismatch(parsed.crl, ca));
  if (verified.error !== undefined) return `crlIssuerMismatch threw ${describeThrown(verified.error)}`;
  if (verified.value === undefined) {
    const same = [...parsed.crl.revokedSerials].sort().join() === [...crl.original.revokedSerials].sort().join();
    if (!same || parsed.crl.thisUpdate.getTime() !== crl.original.thisUpdate.getTime()) {
      return 'a changed CRL still verifies with a different revocation list';
    }
  }
  return undefined;
}

/** What the identity rules and messages read of a certificate, as one comparable string. */
function readFields(info: CertificateInfo): string {
  const { der: _der, subjectDer: _s, issuerDer: _i, fingerprint256: _f, ...fields } = info;
  return JSON.stringify(fields);
}

/** A second mutation: structural when the first left a DER tree, else byte-level. */
function mutateAgain(rng: Prng, input: Buffer): Buffer {
  let tree: DerNode;
  try {
    tree = parseDerTree(input);
  } catch {
    return mutateBytes(rng, input);
  }
  return mutateDer(rng, tree);
}

function record(failures: Failure[], input: Buffer, problem: string | undefined): void {
  if (problem !== undefined && failures.length < 20) failures.push({ input: input.toString('hex').slice(0, 400), problem });
}

describe(`DER fuzzing (seed 0x${SEED.toString(16)})`, () => {
  it('certificates cut at every offset are refused with CertificateParseError', () => {
    const failures: Failure[] = [];
    let cases = 0;
    for (const { der } of certificates) {
      for (let end = 0; end < der.length; end++, cases++) {
        const cut = der.subarray(0, end);
        const problem = certificateProblem(cut);
        const threw = timed(() => parseCertificateDer(cut)).error instanceof CertificateParseError;
        record(failures, cut, problem ?? (threw ? undefined : 'a truncated certificate was accepted'));
      }
    }
    expect(cases).toBeGreaterThan(1000);
    expect(failures).toEqual([]);
  });

  it('byte-level mutations of real certificates: a value or CertificateParseError, in bounded time', () => {
    const rng = new Prng(SEED);
    const failures: Failure[] = [];
    for (let i = 0; i < 1500; i++) {
      const { der } = rng.pick(certificates);
      let input = mutateBytes(rng, der);
      if (rng.chance(0.3)) input = mutateBytes(rng, input);
      record(failures, input, certificateProblem(input));
    }
    expect(failures).toEqual([]);
  });

  it('structural mutations (fields removed, duplicated, moved, re-tagged, lengths up to 2^32 - 1) keep the properties', () => {
    const rng = new Prng(SEED + 1);
    const failures: Failure[] = [];
    for (let i = 0; i < 2500; i++) {
      const { tree } = rng.pick(certificates);
      let input = mutateDer(rng, tree);
      if (rng.chance(0.3)) input = mutateAgain(rng, input);
      record(failures, input, certificateProblem(input));
    }
    expect(failures).toEqual([]);
  });

  it('an element of a real certificate with its length inflated to 2^32 - 1 is refused, or is one the reader skips', () => {
    const failures: Failure[] = [];
    let refused = 0;
    for (const { der: original, tree } of certificates) {
      const fields = readFields(parseCertificateDer(original));
      const count = encodeDerTree(tree).length; // an upper bound on the number of elements
      for (let index = 0; index < count; index++) {
        const copy = parseDerTree(encodeDerTree(tree));
        const nodes: DerNode[] = [];
        const walk = (node: DerNode): void => {
          nodes.push(node);
          node.children?.forEach(walk);
        };
        walk(copy);
        if (index >= nodes.length) break;
        nodes[index]!.lengthOverride = 0xffff_ffff;
        const input = encodeDerTree(copy);
        const result = timed(() => parseCertificateDer(input));
        if (result.error instanceof CertificateParseError) refused++;
        // Inside an element read as opaque bytes (signature algorithm parameters, the key, the signature's contents), an
        // inflated length changes nothing that is read; anywhere else it must be refused.
        const changed = result.value !== undefined && readFields(result.value) !== fields;
        record(failures, input, certificateProblem(input) ?? (changed ? 'an inflated length changed what was read' : undefined));
      }
    }
    expect(refused).toBeGreaterThan(50);
    expect(failures).toEqual([]);
  });

  it('10,000 nested SEQUENCEs in the subject, an extension and at the top are refused without recursion', () => {
    const deep = nestedSequences(10_000);
    const inputs = [
      deep,
      syntheticCertificate({ subject: deep }),
      syntheticCertificate({ extensions: [extension('2.5.29.17', deep)] }),
      syntheticCertificate({ extensions: [extension('1.2.3.4', deep, true)] }),
      seq(deep, deep, tlv(0x03, [0])),
    ];
    const failures: Failure[] = [];
    for (const input of inputs) record(failures, input, certificateProblem(input));
    expect(failures).toEqual([]);
  });

  it('mutated PEM text: a list of certificates or CertificateParseError', () => {
    const rng = new Prng(SEED + 2);
    const pem = certificates.map((c) => encodePem('CERTIFICATE', c.der)).join('');
    const failures: Failure[] = [];
    for (let i = 0; i < 500; i++) {
      const text = mutateText(rng, pem, 'ABCabc019+/=-\n\r ');
      const result = timed(() => parseCertificatesPem(text));
      const ok = result.error === undefined || result.error instanceof CertificateParseError;
      if (!ok || result.ms > PER_INPUT_MS) {
        failures.push({
          input: JSON.stringify(text.slice(0, 200)),
          problem: `${describeThrown(result.error)} in ${result.ms} ms`,
        });
      }
    }
    expect(failures).toEqual([]);
  });

  it('mutated CRLs: parseCrl never throws, and a CRL that still verifies lists the same revocations', () => {
    const rng = new Prng(SEED + 3);
    const failures: Failure[] = [];
    for (let end = 0; end < crl.der.length; end++)
      record(failures, crl.der.subarray(0, end), crlProblem(crl.der.subarray(0, end)));
    for (let i = 0; i < 1500; i++) {
      const input = rng.chance(0.5) ? mutateBytes(rng, crl.der) : mutateDer(rng, crl.tree);
      record(failures, input, crlProblem(input));
    }
    record(failures, nestedSequences(10_000), crlProblem(nestedSequences(10_000)));
    expect(failures).toEqual([]);
  });
});
