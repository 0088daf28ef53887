import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateParseError, CredentialsError } from '../../lib/errors/mtls.errors.js';
import { isValidSpiffeId } from '../../lib/identity/spiffe-id.js';
import { TestPki } from '../../lib/testing/test-pki.js';
import { parseCertificatesPem } from '../../lib/x509/certificate.js';
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidRequest,
  decodeJwtSvidResponse,
  decodeX509BundlesResponse,
  decodeX509SvidResponse,
  encodeJwtBundlesResponse,
  encodeJwtSvidRequest,
  encodeJwtSvidResponse,
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
  ProtobufDecodeError,
} from '../../lib/workload-api/workload-api.codec.js';
import { rawCredentialsFromResponse } from '../../lib/workload-api/x509-svid-response.js';
import { describeThrown, mutateBytes, Prng, timed } from '../support/fuzz.js';

/*
 * Fuzzing the hand-written Workload API protobuf codec and the conversion of an X509SVIDResponse into credentials, on
 * real encoded responses (TestPki chains, PKCS#8 keys, bundles, CRLs): byte mutations, truncation at every offset, and
 * field-level ones (removed, duplicated, wire type changed, lengths and tags replaced by huge, overflowing or
 * "negative" 10-byte varints, field numbers beyond 2^29). Properties: a value or ProtobufDecodeError (then
 * CredentialsError from the conversion), never a TypeError or RangeError, bounded time, and no key bytes left in a
 * refused or converted message.
 */

const SEED = 0xc0de_c5ee;
const PER_INPUT_MS = 50;
const ORDERS = 'spiffe://shop.test/ns/shop/sa/orders';

const messages: Record<'x509Svid' | 'x509Bundles' | 'jwtSvid' | 'jwtBundles' | 'jwtRequest', Buffer> = {} as never;

function pemToDer(pem: string): Buffer[] {
  return parseCertificatesPem(pem).map((c) => c.der);
}

beforeAll(async () => {
  const pki = await TestPki.create({ trustDomain: 'shop.test', intermediate: true });
  const leaf = await pki.peer(ORDERS);
  const other = await pki.peer('spiffe://shop.test/ns/shop/sa/billing');
  const keyDer = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const crlPem = await pki.ca.createCrl(['01']);
  const svid = (peer: typeof leaf, hint: string) => ({
    spiffeId: peer.spiffeId!,
    certificates: Buffer.concat(pemToDer(peer.chainPem)),
    key: keyDer(peer.keyPem),
    bundle: Buffer.concat(pemToDer(pki.bundlePem)),
    hint,
  });
  const bundle = Buffer.concat(pemToDer(pki.bundlePem));
  messages.x509Svid = encodeX509SvidResponse({
    svids: [svid(leaf, 'internal'), svid(other, '')],
    crl: [keyDer(crlPem)],
    federatedBundles: new Map([
      ['spiffe://partner.test', bundle],
      ['other.test', bundle],
    ]),
  });
  messages.x509Bundles = encodeX509BundlesResponse({ crl: [keyDer(crlPem)], bundles: new Map([['spiffe://shop.test', bundle]]) });
  messages.jwtSvid = encodeJwtSvidResponse({ svids: [{ spiffeId: ORDERS, svid: 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln', hint: 'h' }] });
  messages.jwtBundles = encodeJwtBundlesResponse({
    bundles: new Map([['spiffe://shop.test', Buffer.from('{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}')]]),
  });
  messages.jwtRequest = encodeJwtSvidRequest({ audience: ['orders', 'billing'], spiffeId: ORDERS });
  await pki.dispose();
}, 30_000);

/** One protobuf field as raw parts, for field-level mutations; tolerant of nothing: the inputs are well formed. */
interface RawField {
  tag: Buffer;
  wireType: number;
  /** Length varint (length-delimited) and payload, or the fixed/varint value bytes. */
  body: Buffer;
  payload?: Buffer;
}

function varint(value: bigint): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7fn) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let value = 0n;
  for (let shift = 0n; ; shift += 7n) {
    const b = buf[at++]!;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [value, at];
  }
}

function splitFields(message: Buffer): RawField[] {
  const fields: RawField[] = [];
  let at = 0;
  while (at < message.length) {
    const [tag, afterTag] = readVarint(message, at);
    const wireType = Number(tag & 7n);
    let end: number;
    let payload: Buffer | undefined;
    if (wireType === 0) end = readVarint(message, afterTag)[1];
    else if (wireType === 1) end = afterTag + 8;
    else if (wireType === 5) end = afterTag + 4;
    else {
      const [length, afterLength] = readVarint(message, afterTag);
      end = afterLength + Number(length);
      payload = message.subarray(afterLength, end);
    }
    fields.push({ tag: message.subarray(at, afterTag), wireType, body: message.subarray(afterTag, end), payload });
    at = end;
  }
  return fields;
}

const join = (fields: RawField[]): Buffer => Buffer.concat(fields.flatMap((f) => [f.tag, f.body]));

/** Lengths that lie: past the end, 2^31, 2^32, 2^53 + 1, 2^64 - 1 ("-1" as an int64), and an 11-byte overflow. */
const HOSTILE_LENGTHS: readonly Buffer[] = [
  varint(2n ** 31n),
  varint(2n ** 32n - 1n),
  varint(2n ** 32n + 5n),
  varint(2n ** 53n + 1n),
  varint(2n ** 64n - 1n),
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
  Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
];

/** One field-level mutation, recursing into nested messages (an X509SVID, a map entry) half of the time. */
function mutateFields(rng: Prng, message: Buffer, depth = 0): Buffer {
  let fields: RawField[];
  try {
    fields = splitFields(message);
  } catch {
    return mutateBytes(rng, message);
  }
  if (fields.length === 0) return mutateBytes(rng, message);
  const at = rng.int(fields.length);
  const field = fields[at]!;
  if (field.payload !== undefined && field.payload.length > 0 && depth < 2 && rng.chance(0.5)) {
    const inner = mutateFields(rng, field.payload, depth + 1);
    fields[at] = { ...field, body: Buffer.concat([varint(BigInt(inner.length)), inner]) };
    return join(fields);
  }
  switch (rng.int(7)) {
    case 0:
      fields.splice(at, 1);
      break;
    case 1:
      fields.splice(at, 0, field);
      break;
    case 2: {
      // Same number, another wire type (including the groups 3 and 4, and the undefined 6 and 7).
      const [tag] = readVarint(field.tag, 0);
      fields[at] = { ...field, tag: varint((tag & ~7n) | BigInt(rng.int(8))) };
      break;
    }
    case 3:
      if (field.payload !== undefined) fields[at] = { ...field, body: Buffer.concat([rng.pick(HOSTILE_LENGTHS), field.payload]) };
      break;
    case 4: {
      // The same field number written with a longer or overflowing tag varint, or a number beyond 2^29.
      const [tag] = readVarint(field.tag, 0);
      const choice = rng.int(3);
      const replaced =
        choice === 0
          ? Buffer.from([...field.tag.subarray(0, -1).map((b) => b), field.tag.at(-1)! | 0x80, 0x00])
          : choice === 1
            ? varint(tag + ((2n ** 32n) << 3n))
            : varint(((2n ** 61n) << 3n) | (tag & 7n));
      fields[at] = { ...field, tag: replaced };
      break;
    }
    case 5:
      fields.push(fields[rng.int(fields.length)]!);
      break;
    default:
      fields[at] = { ...field, body: Buffer.concat([varint(2n ** 64n - 1n), Buffer.alloc(0)]) };
  }
  return join(fields);
}

type Kind = keyof typeof messages;
const DECODERS: Record<Kind, (message: Buffer) => unknown> = {
  x509Svid: decodeX509SvidResponse,
  x509Bundles: decodeX509BundlesResponse,
  jwtSvid: decodeJwtSvidResponse,
  jwtBundles: decodeJwtBundlesResponse,
  jwtRequest: decodeJwtSvidRequest,
};

/** How the X509SVIDResponse cases ended, so that a run that never reaches the conversion fails. */
const outcomes = { refusedByDecoder: 0, refusedByConversion: 0, converted: 0 };

/** Checks one input for one message type; returns what is wrong, or undefined. */
function problemOf(kind: Kind, input: Buffer): string | undefined {
  const message = Buffer.from(input);
  const decoded = timed(() => DECODERS[kind](message));
  if (decoded.ms > PER_INPUT_MS) return `decode took ${decoded.ms.toFixed(1)} ms`;
  if (decoded.error !== undefined) {
    if (!(decoded.error instanceof ProtobufDecodeError)) return `decode threw ${describeThrown(decoded.error)}`;
    if (kind !== 'x509Svid') return undefined;
    outcomes.refusedByDecoder++;
    return message.every((b) => b === 0) ? undefined : 'a refused X509SVIDResponse was not zeroed';
  }
  if (kind !== 'x509Svid') return undefined;
  const response = decoded.value as ReturnType<typeof decodeX509SvidResponse>;
  const selector = [undefined, 'internal', ORDERS, 'spiffe://shop.test/ns/shop/sa/billing'][input.length % 4];
  const converted = timed(() => rawCredentialsFromResponse(response, selector, 'unix:///fuzz.sock'));
  if (converted.ms > PER_INPUT_MS) return `conversion took ${converted.ms.toFixed(1)} ms`;
  if (!response.svids.every((svid) => svid.key.every((b) => b === 0))) return 'a key was left in the message';
  if (converted.error !== undefined) {
    outcomes.refusedByConversion++;
    return converted.error instanceof CredentialsError && converted.error.code === 'ERR_MTLS_SVID_INVALID'
      ? undefined
      : `conversion threw ${describeThrown(converted.error)}`;
  }
  const { raw, spiffeId } = converted.value!;
  outcomes.converted++;
  try {
    if (!isValidSpiffeId(spiffeId)) return `announced SPIFFE ID ${JSON.stringify(spiffeId)} accepted`;
    for (const pem of [raw.certPem, raw.caPem, ...(raw.federatedBundlePems?.values() ?? [])]) {
      const parsed = timed(() => parseCertificatesPem(pem));
      if (parsed.error !== undefined && !(parsed.error instanceof CertificateParseError)) {
        return `its PEM threw ${describeThrown(parsed.error)}`;
      }
    }
    return undefined;
  } finally {
    raw.key.dispose();
  }
}

function check(kind: Kind, input: Buffer, failures: string[]): void {
  const problem = problemOf(kind, input);
  if (problem !== undefined && failures.length < 20) failures.push(`${kind} ${input.toString('hex').slice(0, 300)}: ${problem}`);
}

const KINDS = Object.keys(DECODERS) as Kind[];

describe(`Workload API codec fuzzing (seed 0x${SEED.toString(16)})`, () => {
  it('the real messages decode and convert', () => {
    const failures: string[] = [];
    for (const kind of KINDS) check(kind, messages[kind], failures);
    expect(failures).toEqual([]);
    expect(decodeX509SvidResponse(Buffer.from(messages.x509Svid)).svids).toHaveLength(2);
  });

  it('every message cut at every offset: a value or ProtobufDecodeError', () => {
    const failures: string[] = [];
    let cases = 0;
    for (const kind of KINDS) {
      const message = messages[kind];
      // Every offset of the small messages; of the 3 KB X509SVIDResponse, every offset too (each case is microseconds).
      for (let end = 0; end < message.length; end++, cases++) check(kind, message.subarray(0, end), failures);
    }
    expect(cases).toBeGreaterThan(1000);
    expect(failures).toEqual([]);
  });

  it('byte-level mutations: a value or ProtobufDecodeError, then CredentialsError, in bounded time', () => {
    const rng = new Prng(SEED);
    const failures: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const kind = rng.pick(KINDS);
      let input = mutateBytes(rng, messages[kind]);
      if (rng.chance(0.3)) input = mutateBytes(rng, input);
      check(kind, input, failures);
    }
    expect(failures).toEqual([]);
  });

  it('field-level mutations (removed, duplicated, wire types, huge and "negative" lengths, overlong tags) keep the properties', () => {
    const rng = new Prng(SEED + 1);
    const failures: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const kind = rng.pick(KINDS);
      let input = mutateFields(rng, messages[kind]);
      if (rng.chance(0.3)) input = mutateFields(rng, input);
      check(kind, input, failures);
    }
    expect(failures).toEqual([]);
    // The mutations reach every stage: the decoder, the conversion's refusals, and conversions that succeed.
    expect(outcomes.refusedByDecoder).toBeGreaterThan(100);
    expect(outcomes.refusedByConversion).toBeGreaterThan(20);
    expect(outcomes.converted).toBeGreaterThan(50);
  });

  it('a length of 2^64 - 1, an 11-byte varint and 100,000 empty fields are refused or skipped quickly', () => {
    const failures: string[] = [];
    for (const length of HOSTILE_LENGTHS) {
      for (const kind of KINDS) check(kind, Buffer.concat([Buffer.from([0x0a]), length, Buffer.alloc(8)]), failures);
    }
    // 100,000 unknown empty fields: linear, and skipped.
    const many = Buffer.alloc(200_000);
    for (let i = 0; i < many.length; i += 2) many[i] = (9 << 3) | 2;
    for (const kind of KINDS) check(kind, many, failures);
    expect(failures).toEqual([]);
  });
});
