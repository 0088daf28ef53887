/*
 * The SPIFFE Workload API messages, encoded and decoded by hand rather than through `@grpc/proto-loader`: the API is
 * nine flat messages of strings, bytes, repeated fields and string→bytes maps, which take ~200 lines here, while
 * proto-loader would load protobufjs (a large reflective runtime with a history of prototype-pollution advisories) and
 * a `.proto` file that `tsc` does not copy into `dist/`. Decoding by hand also lets us zero the private key's bytes in
 * the received buffer as soon as they are copied into their one owner (`PrivateKeyMaterial`), refuse a field of the
 * wrong wire type instead of coercing it, and skip unknown fields as protobuf requires.
 *
 * Interface facts (the published `workload.proto` of the SPIFFE Workload API standard; no `package`, so the service
 * path is `/SpiffeWorkloadAPI/<Method>`):
 *   X509SVIDResponse   { repeated X509SVID svids = 1; repeated bytes crl = 2; map<string, bytes> federated_bundles = 3; }
 *   X509SVID           { string spiffe_id = 1; bytes x509_svid = 2; bytes x509_svid_key = 3; bytes bundle = 4; string hint = 5; }
 *   X509BundlesResponse{ repeated bytes crl = 1; map<string, bytes> bundles = 2; }
 *   JWTSVIDRequest     { repeated string audience = 1; string spiffe_id = 2; }
 *   JWTSVIDResponse    { repeated JWTSVID svids = 1; }
 *   JWTSVID            { string spiffe_id = 1; string svid = 2; string hint = 3; }
 *   JWTBundlesResponse { map<string, bytes> bundles = 1; }
 *   X509SVIDRequest, X509BundlesRequest, JWTBundlesRequest: empty.
 */

/** The gRPC service name of the Workload API. */
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';

/** Full method paths, as gRPC sends them. */
export const WORKLOAD_API_METHODS = {
  fetchX509Svid: `/${WORKLOAD_API_SERVICE}/FetchX509SVID`,
  fetchX509Bundles: `/${WORKLOAD_API_SERVICE}/FetchX509Bundles`,
  fetchJwtSvid: `/${WORKLOAD_API_SERVICE}/FetchJWTSVID`,
  fetchJwtBundles: `/${WORKLOAD_API_SERVICE}/FetchJWTBundles`,
} as const;

/** One X509-SVID as the agent sends it: DER chain (leaf first), PKCS#8 DER key, DER bundle of its trust domain. */
export interface X509SvidMessage {
  readonly spiffeId: string;
  readonly certificates: Buffer;
  /** PKCS#8 DER. A view into the received message: zero it once copied. */
  readonly key: Buffer;
  readonly bundle: Buffer;
  readonly hint: string;
}

/** `X509SVIDResponse`: the full state, every message. */
export interface X509SvidResponse {
  readonly svids: readonly X509SvidMessage[];
  readonly crl: readonly Buffer[];
  /** Trust domain (as the agent keys it: `spiffe://td` or `td`) → DER bundle. */
  readonly federatedBundles: ReadonlyMap<string, Buffer>;
}

/** `X509BundlesResponse`. */
export interface X509BundlesResponse {
  readonly crl: readonly Buffer[];
  readonly bundles: ReadonlyMap<string, Buffer>;
}

/** `JWTSVIDRequest`. */
export interface JwtSvidRequest {
  readonly audience: readonly string[];
  /** Empty for "every SVID the workload is entitled to". */
  readonly spiffeId: string;
}

/** One JWT-SVID. */
export interface JwtSvidMessage {
  readonly spiffeId: string;
  readonly svid: string;
  readonly hint: string;
}

/** `JWTSVIDResponse`. */
export interface JwtSvidResponse {
  readonly svids: readonly JwtSvidMessage[];
}

/** `JWTBundlesResponse`: trust domain → JWKS JSON bytes. */
export interface JwtBundlesResponse {
  readonly bundles: ReadonlyMap<string, Buffer>;
}

/** A message that is not valid protobuf for its type. */
export class ProtobufDecodeError extends Error {}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

interface Field {
  readonly number: number;
  readonly wireType: number;
  /** The payload of a length-delimited field (a view, not a copy). */
  readonly bytes: Buffer | undefined;
}

/** The top-level fields of a message, in order; unknown fields included for the caller to skip. */
function* fields(message: Buffer): Generator<Field> {
  let offset = 0;
  while (offset < message.length) {
    const [tag, afterTag] = readVarint(message, offset);
    offset = afterTag;
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) throw new ProtobufDecodeError('field number 0');
    switch (wireType) {
      case VARINT:
        offset = readVarint(message, offset)[1];
        yield { number, wireType, bytes: undefined };
        break;
      case FIXED64:
      case FIXED32: {
        offset += wireType === FIXED64 ? 8 : 4;
        if (offset > message.length) throw new ProtobufDecodeError('truncated fixed-width field');
        yield { number, wireType, bytes: undefined };
        break;
      }
      case LENGTH_DELIMITED: {
        const [length, afterLength] = readVarint(message, offset);
        const end = afterLength + Number(length);
        if (length > BigInt(message.length) || end > message.length) throw new ProtobufDecodeError('truncated field');
        yield { number, wireType, bytes: message.subarray(afterLength, end) };
        offset = end;
        break;
      }
      default:
        // Groups (3, 4) are not used by proto3 and cannot be skipped safely.
        throw new ProtobufDecodeError(`unsupported wire type ${wireType}`);
    }
  }
}

/** Reads a base-128 varint of at most 64 bits: ten bytes, the tenth holding only bit 63 (as protobuf and Go's protowire). */
function readVarint(buffer: Buffer, start: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let offset = start; offset < buffer.length && offset < start + 10; offset++) {
    const byte = buffer[offset]!;
    if (offset === start + 9 && byte > 1) throw new ProtobufDecodeError('varint overflows 64 bits');
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, offset + 1];
    shift += 7n;
  }
  throw new ProtobufDecodeError('truncated or overlong varint');
}

function bytesOf(field: Field, name: string): Buffer {
  if (field.wireType !== LENGTH_DELIMITED || field.bytes === undefined) {
    throw new ProtobufDecodeError(`field ${name} has wire type ${field.wireType}, expected length-delimited`);
  }
  return field.bytes;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function stringOf(field: Field, name: string): string {
  try {
    return utf8.decode(bytesOf(field, name));
  } catch (error) {
    if (error instanceof ProtobufDecodeError) throw error;
    throw new ProtobufDecodeError(`field ${name} is not valid UTF-8`);
  }
}

/** A `map<string, bytes>` entry. Later entries for the same key replace earlier ones (protobuf map semantics). */
function mapEntry(field: Field, name: string, into: Map<string, Buffer>): void {
  let key = '';
  let value: Buffer = Buffer.alloc(0);
  for (const entryField of fields(bytesOf(field, name))) {
    if (entryField.number === 1) key = stringOf(entryField, `${name}.key`);
    else if (entryField.number === 2) value = bytesOf(entryField, `${name}.value`);
  }
  into.set(key, value);
}

function decodeX509Svid(message: Buffer): X509SvidMessage {
  let spiffeId = '';
  let hint = '';
  let certificates: Buffer = Buffer.alloc(0);
  let key: Buffer = Buffer.alloc(0);
  let bundle: Buffer = Buffer.alloc(0);
  for (const field of fields(message)) {
    if (field.number === 1) spiffeId = stringOf(field, 'spiffe_id');
    else if (field.number === 2) certificates = bytesOf(field, 'x509_svid');
    else if (field.number === 3) key = bytesOf(field, 'x509_svid_key');
    else if (field.number === 4) bundle = bytesOf(field, 'bundle');
    else if (field.number === 5) hint = stringOf(field, 'hint');
  }
  return { spiffeId, certificates, key, bundle, hint };
}

/** Decodes `X509SVIDResponse`. The returned buffers are views into `message`. */
export function decodeX509SvidResponse(message: Buffer): X509SvidResponse {
  const svids: X509SvidMessage[] = [];
  const crl: Buffer[] = [];
  const federatedBundles = new Map<string, Buffer>();
  try {
    for (const field of fields(message)) {
      if (field.number === 1) svids.push(decodeX509Svid(bytesOf(field, 'svids')));
      else if (field.number === 2) crl.push(bytesOf(field, 'crl'));
      else if (field.number === 3) mapEntry(field, 'federated_bundles', federatedBundles);
    }
  } catch (error) {
    // A refused message may still hold key bytes: they must not outlive it.
    message.fill(0);
    throw error;
  }
  return { svids, crl, federatedBundles };
}

/** Decodes `X509BundlesResponse`. */
export function decodeX509BundlesResponse(message: Buffer): X509BundlesResponse {
  const crl: Buffer[] = [];
  const bundles = new Map<string, Buffer>();
  for (const field of fields(message)) {
    if (field.number === 1) crl.push(bytesOf(field, 'crl'));
    else if (field.number === 2) mapEntry(field, 'bundles', bundles);
  }
  return { crl, bundles };
}

/** Decodes `JWTSVIDResponse`. */
export function decodeJwtSvidResponse(message: Buffer): JwtSvidResponse {
  const svids: JwtSvidMessage[] = [];
  for (const field of fields(message)) {
    if (field.number !== 1) continue;
    let spiffeId = '';
    let svid = '';
    let hint = '';
    for (const inner of fields(bytesOf(field, 'svids'))) {
      if (inner.number === 1) spiffeId = stringOf(inner, 'spiffe_id');
      else if (inner.number === 2) svid = stringOf(inner, 'svid');
      else if (inner.number === 3) hint = stringOf(inner, 'hint');
    }
    svids.push({ spiffeId, svid, hint });
  }
  return { svids };
}

/** Decodes `JWTBundlesResponse`. */
export function decodeJwtBundlesResponse(message: Buffer): JwtBundlesResponse {
  const bundles = new Map<string, Buffer>();
  for (const field of fields(message)) {
    if (field.number === 1) mapEntry(field, 'bundles', bundles);
  }
  return { bundles };
}

/** Decodes `JWTSVIDRequest` (for the test server). */
export function decodeJwtSvidRequest(message: Buffer): JwtSvidRequest {
  const audience: string[] = [];
  let spiffeId = '';
  for (const field of fields(message)) {
    if (field.number === 1) audience.push(stringOf(field, 'audience'));
    else if (field.number === 2) spiffeId = stringOf(field, 'spiffe_id');
  }
  return { audience, spiffeId };
}

// ---- encoding -------------------------------------------------------------------------------------------------

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A length-delimited field; proto3 omits empty strings and bytes. */
function lengthDelimited(number: number, payload: Uint8Array | string, always = false): Buffer[] {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (bytes.length === 0 && !always) return [];
  return [
    varint((number << 3) | LENGTH_DELIMITED),
    varint(bytes.length),
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
  ];
}

function mapField(number: number, map: ReadonlyMap<string, Uint8Array>): Buffer[] {
  const parts: Buffer[] = [];
  for (const [key, value] of map) {
    parts.push(...lengthDelimited(number, Buffer.concat([...lengthDelimited(1, key), ...lengthDelimited(2, value)]), true));
  }
  return parts;
}

/** An empty request message. */
export function encodeEmpty(): Buffer {
  return Buffer.alloc(0);
}

/** Encodes `JWTSVIDRequest`. */
export function encodeJwtSvidRequest(request: JwtSvidRequest): Buffer {
  return Buffer.concat([
    ...request.audience.flatMap((a) => lengthDelimited(1, a, true)),
    ...lengthDelimited(2, request.spiffeId),
  ]);
}

/** Encodes `X509SVIDResponse` (for the test server). */
export function encodeX509SvidResponse(response: X509SvidResponse): Buffer {
  const svids = response.svids.map((svid) =>
    Buffer.concat([
      ...lengthDelimited(1, svid.spiffeId),
      ...lengthDelimited(2, svid.certificates),
      ...lengthDelimited(3, svid.key),
      ...lengthDelimited(4, svid.bundle),
      ...lengthDelimited(5, svid.hint),
    ]),
  );
  return Buffer.concat([
    ...svids.flatMap((svid) => lengthDelimited(1, svid, true)),
    ...response.crl.flatMap((crl) => lengthDelimited(2, crl, true)),
    ...mapField(3, response.federatedBundles),
  ]);
}

/** Encodes `X509BundlesResponse` (for the test server). */
export function encodeX509BundlesResponse(response: X509BundlesResponse): Buffer {
  return Buffer.concat([...response.crl.flatMap((crl) => lengthDelimited(1, crl, true)), ...mapField(2, response.bundles)]);
}

/** Encodes `JWTSVIDResponse` (for the test server). */
export function encodeJwtSvidResponse(response: JwtSvidResponse): Buffer {
  const svids = response.svids.map((svid) =>
    Buffer.concat([...lengthDelimited(1, svid.spiffeId), ...lengthDelimited(2, svid.svid), ...lengthDelimited(3, svid.hint)]),
  );
  return Buffer.concat(svids.flatMap((svid) => lengthDelimited(1, svid, true)));
}

/** Encodes `JWTBundlesResponse` (for the test server). */
export function encodeJwtBundlesResponse(response: JwtBundlesResponse): Buffer {
  return Buffer.concat(mapField(1, response.bundles));
}
