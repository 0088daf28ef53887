import { beforeAll, describe, expect, it } from 'vitest';
import { PeerError, ProxyHeaderError } from '../../lib/errors/mtls.errors.js';
import {
  identityFromForwardedCertificate,
  identityFromXfccElement,
  MAX_FORWARDED_CHAIN,
  type ForwardedTrust,
} from '../../lib/proxy/forwarded-identity.js';
import { parseClientCert, parseClientCertChain } from '../../lib/proxy/rfc9440.parser.js';
import { parseXfcc, type XfccElement } from '../../lib/proxy/xfcc.parser.js';
import { isValidSpiffeId } from '../../lib/identity/spiffe-id.js';
import { rfc9440Fields, TestPki, xfccElement } from '../../lib/testing/index.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import { describeThrown, mutateText, Prng, timed } from '../support/fuzz.js';
import { extension, seq, syntheticCertificate, tlv } from '../x509/fixtures/der-builder.js';

/*
 * Fuzzing the proxy header parsers (XFCC, RFC 9440) and the identity derived from what they return, on real
 * Envoy-style headers carrying real TestPki certificates: character mutations biased toward the grammar's separators,
 * truncation at every offset, and hostile 64 KiB shapes. Properties: elements or ProxyHeaderError; an identity or
 * PeerError, never a TypeError; bounded time; a parsed header re-serialised parses to the same elements; and with
 * chain verification on, no mutated certificate ever becomes an identity.
 */

const SEED = 0x0f0c_ceed;
const PER_INPUT_MS = 50;
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';
const BILLING = 'spiffe://shop.test/ns/shop/sa/billing';
// The characters XFCC and RFC 8941 care about, weighted by repetition, and a few others.
const XFCC_ALPHABET = ',,;;==""\\\\::%%-_. aZ09+/\t\u00e9';

let verified: ForwardedTrust;
const unverified: ForwardedTrust = { bundle: undefined, crls: [], now: new Date() };
/** The only fingerprints an identity may carry when chains are verified: the real certificates'. */
const genuine = new Set<string>();
const xfccHeaders: string[] = [];
const rfc9440: { cert: string; chain: string | undefined }[] = [];

beforeAll(async () => {
  const pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
  const orders = await pki.peer({ spiffeId: ORDERS, dnsNames: ['orders.shop.svc', 'orders'] });
  const billing = await pki.peer(BILLING);
  verified = { bundle: parseCertificatesPem(pki.bundlePem), crls: [], now: new Date() };
  for (const peer of [orders, billing]) genuine.add(parseCertificatesPem(peer.certPem)[0]!.fingerprint256);
  xfccHeaders.push(
    xfccElement(orders, { by: 'spiffe://shop.test/ns/mesh/sa/envoy', cert: true, chain: true }),
    xfccElement(billing, { cert: true }),
    `${xfccElement(billing, { by: 'spiffe://shop.test/ns/mesh/sa/edge' })},${xfccElement(orders, { cert: true, subject: true })}`,
    xfccElement(orders, { override: { subject: 'CN=a\\,b;URI=spiffe://evil.test/x,O="q"' } }),
  );
  for (const peer of [orders, billing]) {
    const fields = rfc9440Fields(peer);
    rfc9440.push({ cert: fields.clientCert, chain: fields.clientCertChain });
  }
  await pki.dispose();
}, 30_000);

/** Writes elements back as an XFCC header, every value quoted and escaped. */
function serialize(elements: readonly XfccElement[]): string {
  const quote = (value: string): string => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  return elements
    .map((e) =>
      [
        e.by === undefined ? [] : [`By=${quote(e.by)}`],
        e.hash === undefined ? [] : [`Hash=${quote(e.hash)}`],
        e.cert === undefined ? [] : [`Cert=${quote(e.cert)}`],
        e.chain === undefined ? [] : [`Chain=${quote(e.chain)}`],
        e.subject === undefined ? [] : [`Subject=${quote(e.subject)}`],
        e.uri === undefined ? [] : [`URI=${quote(e.uri)}`],
        e.dns.map((d) => `DNS=${quote(d)}`),
      ]
        .flat()
        .join(';'),
    )
    .join(',');
}

/** What is wrong with an identity a forwarded element or certificate gave, or undefined. */
function identityProblem(
  derive: () => { spiffeId: string | undefined; fingerprint256: string },
  chainVerified: boolean,
): string | undefined {
  const result = timed(derive);
  if (result.ms > PER_INPUT_MS) return `identity took ${result.ms.toFixed(1)} ms`;
  if (result.error !== undefined)
    return result.error instanceof PeerError ? undefined : `identity threw ${describeThrown(result.error)}`;
  const identity = result.value!;
  if (identity.spiffeId !== undefined && !isValidSpiffeId(identity.spiffeId)) return `invalid SPIFFE ID ${identity.spiffeId}`;
  if (chainVerified && identity.fingerprint256 !== '' && !genuine.has(identity.fingerprint256)) {
    return 'a certificate that is not one the CA issued became an identity';
  }
  return undefined;
}

function xfccProblem(header: string): string | undefined {
  const parsed = timed(() => parseXfcc(header));
  if (parsed.ms > PER_INPUT_MS) return `parse took ${parsed.ms.toFixed(1)} ms`;
  if (parsed.error !== undefined) {
    return parsed.error instanceof ProxyHeaderError ? undefined : `parse threw ${describeThrown(parsed.error)}`;
  }
  const elements = parsed.value!;
  // Quoting makes the text longer than the limit may allow: the round trip is about the grammar, not the size.
  const again = timed(() => parseXfcc(serialize(elements), { maxBytes: Infinity, maxElements: 10 }));
  if (again.error !== undefined) return `re-serialised header refused: ${describeThrown(again.error)}`;
  if (JSON.stringify(again.value) !== JSON.stringify(elements)) return 're-serialised header parses to other elements';
  for (const element of elements) {
    const problem =
      // Without Cert the identity is the proxy's text (Hash included), which no chain check applies to.
      identityProblem(() => identityFromXfccElement(element, verified), element.cert !== undefined) ??
      identityProblem(() => identityFromXfccElement(element, unverified), false);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function rfc9440Problem(cert: string, chain: string | undefined): string | undefined {
  const parsed = timed(() => [parseClientCert(cert), chain === undefined ? [] : parseClientCertChain(chain)] as const);
  if (parsed.ms > PER_INPUT_MS) return `parse took ${parsed.ms.toFixed(1)} ms`;
  if (parsed.error !== undefined) {
    return parsed.error instanceof ProxyHeaderError ? undefined : `parse threw ${describeThrown(parsed.error)}`;
  }
  const [leaf, presented] = parsed.value!;
  if (presented.length > MAX_FORWARDED_CHAIN) return `${presented.length} chain certificates accepted`;
  return (
    identityProblem(() => identityFromForwardedCertificate(leaf, presented, 'rfc9440', verified), true) ??
    identityProblem(() => identityFromForwardedCertificate(leaf, presented, 'rfc9440', unverified), false)
  );
}

function record(failures: string[], input: string, problem: string | undefined): void {
  if (problem !== undefined && failures.length < 20) failures.push(`${JSON.stringify(input.slice(0, 300))}: ${problem}`);
}

describe(`proxy header fuzzing (seed 0x${SEED.toString(16)})`, () => {
  it('the real headers give the real identities', () => {
    const failures: string[] = [];
    for (const header of xfccHeaders) record(failures, header, xfccProblem(header));
    for (const { cert, chain } of rfc9440) record(failures, cert, rfc9440Problem(cert, chain));
    expect(failures).toEqual([]);
    expect(identityFromXfccElement(parseXfcc(xfccHeaders[0]!)[0]!, verified).spiffeId).toBe(ORDERS);
  });

  it('XFCC headers cut at every offset: elements or ProxyHeaderError, identities or PeerError', () => {
    const failures: string[] = [];
    let cases = 0;
    for (const header of xfccHeaders) {
      for (let end = 0; end < header.length; end += header.length > 2000 ? 7 : 1, cases++) {
        record(failures, header.slice(0, end), xfccProblem(header.slice(0, end)));
      }
    }
    expect(cases).toBeGreaterThan(1000);
    expect(failures).toEqual([]);
  });

  it('mutated XFCC headers keep the properties', () => {
    const rng = new Prng(SEED);
    const failures: string[] = [];
    for (let i = 0; i < 2500; i++) {
      let header = mutateText(rng, rng.pick(xfccHeaders), XFCC_ALPHABET);
      for (let k = rng.int(3); k > 0; k--) header = mutateText(rng, header, XFCC_ALPHABET);
      record(failures, header, xfccProblem(header));
    }
    expect(failures).toEqual([]);
  });

  it('mutated RFC 9440 fields keep the properties, and no mutated certificate verifies', () => {
    const rng = new Prng(SEED + 1);
    const failures: string[] = [];
    const alphabet = '::,, \tAZaz09+/=;';
    for (let i = 0; i < 1500; i++) {
      const { cert, chain } = rng.pick(rfc9440);
      const mutateCert = chain === undefined || rng.chance(0.6);
      const mutated = mutateCert ? mutateText(rng, cert, alphabet) : cert;
      const mutatedChain = chain === undefined || mutateCert ? chain : mutateText(rng, chain, alphabet);
      record(failures, mutated, rfc9440Problem(mutated, mutatedChain));
    }
    for (const { cert, chain } of rfc9440) {
      for (let end = 0; end < cert.length; end += 3)
        record(failures, cert.slice(0, end), rfc9440Problem(cert.slice(0, end), chain));
    }
    expect(failures).toEqual([]);
  });

  it('hostile 64 KiB headers are parsed or refused within the bound', () => {
    const max = 65_536;
    const fill = (unit: string, prefix = '', suffix = ''): string =>
      prefix + unit.repeat(Math.floor((max - prefix.length - suffix.length) / unit.length)) + suffix;
    const headers = [
      fill('\\"', 'Subject="', '"'),
      fill('\\', 'Subject="'),
      fill('DNS=a;', '', 'DNS=a'),
      fill('a=b;'),
      fill('By=x,'),
      fill('"'),
      fill(';'),
      fill('%25', 'Cert="', '"'),
      fill('-----BEGIN A-----x-----END A-----', 'Cert="', '"'),
      fill('-----BEGIN CERTIFICATE-----', 'Cert="', '"'),
      fill('x', 'URI=spiffe://shop.test/'),
    ];
    const failures: string[] = [];
    for (const header of headers) record(failures, header, xfccProblem(header));
    for (const field of [fill(':A:, '), fill('A', ':', ':'), fill(':'), fill(' ,', ':AAAA:', ':AAAA:')]) {
      record(failures, field, rfc9440Problem(field, undefined));
      record(failures, field, rfc9440Problem(rfc9440[1]!.cert, field));
    }
    expect(failures).toEqual([]);
  });

  it('hostile certificates that fill a 64 KiB Client-Cert are refused within the bound', () => {
    // 48 KB of DER is 64 KiB of base64: the most a forwarded certificate can carry. Before the fixes these took 0.3 s
    // (one huge OID arc) and 40-130 ms (thousands of unhandled critical extensions), before any signature check.
    const certificates = [
      syntheticCertificate({
        extensions: [extension('2.5.29.37', seq(tlv(0x06, [0x2a, ...Array<number>(48_000).fill(0xff), 0x7f])))],
      }),
      syntheticCertificate({ extensions: Array.from({ length: 3_000 }, (_, i) => extension(`1.2.3.${i}`, seq(), true)) }),
      syntheticCertificate({
        extensions: [extension('2.5.29.17', seq(...Array.from({ length: 8_000 }, () => tlv(0x87, [10, 0, 0, 1]))))],
      }),
    ];
    const failures: string[] = [];
    for (const der of certificates) {
      const field = `:${der.toString('base64')}:`;
      expect(field.length).toBeLessThanOrEqual(65_536);
      record(failures, field, rfc9440Problem(field, undefined));
    }
    expect(failures).toEqual([]);
  });
});
