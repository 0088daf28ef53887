/*
 * A strict DER reader (X.690 §10): definite lengths in minimal form, low tag numbers, no bytes left over.
 * It never copies: each read returns a reader over a sub-range of the same buffer. The bottom layer of the package:
 * it knows DER, not X.509, and throws the neutral DerError that each caller turns into its own error type.
 */

/**
 * Malformed DER: `what` names the field (a path such as `tbsCertificate.validity`), `detail` the defect. Internal to the
 * package: parsers catch it and rethrow their own error (e.g. `CertificateParseError`) or report it as a result.
 */
export class DerError extends Error {
  override readonly name = 'DerError';

  constructor(
    /** The field being read. */
    readonly what: string,
    /** What is wrong with it. */
    readonly detail: string,
  ) {
    super(`${what}: ${detail}`);
  }
}

/** Universal and context-specific tags used by X.509, as full identifier octets. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** `[n]` with the constructed bit, e.g. an EXPLICIT tag. */
export function contextConstructed(n: number): number {
  return 0xa0 | n;
}

/** `[n]` primitive, e.g. an IMPLICIT IA5String. */
export function contextPrimitive(n: number): number {
  return 0x80 | n;
}

/** Throws the {@link DerError} for `what`. */
export function malformed(what: string, detail: string): never {
  throw new DerError(what, detail);
}

/** Reads consecutive TLVs from `buf[pos, end)`. */
export class DerReader {
  /** Tag of the element read last. */
  tag = -1;

  constructor(
    readonly buf: Buffer,
    /** Start of the next element; after a read, the end of the element read. */
    public pos: number,
    /** End of this reader's range. */
    readonly end: number,
  ) {}

  /** A reader over all of `der`. */
  static of(der: Buffer): DerReader {
    return new DerReader(der, 0, der.length);
  }

  /** True when every byte of the range has been read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next element's tag, or -1 at the end. */
  peekTag(): number {
    return this.pos < this.end ? this.buf[this.pos]! : -1;
  }

  /** Reads any element; `this.tag` is its tag. Returns a reader over its contents. */
  readAny(what: string): DerReader {
    const { buf, end } = this;
    let pos = this.pos;
    if (pos >= end) malformed(what, 'missing');
    const tag = buf[pos++]!;
    if ((tag & 0x1f) === 0x1f) malformed(what, 'high tag numbers are not used in X.509');
    if (pos >= end) malformed(what, 'truncated before its length');
    let length = buf[pos++]!;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0) malformed(what, 'indefinite length is not DER');
      if (count > 4) malformed(what, `length of ${count} bytes is too large`);
      if (pos + count > end) malformed(what, 'truncated inside its length');
      if (buf[pos] === 0) malformed(what, 'length is not minimally encoded');
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + buf[pos++]!;
      if (length < 0x80) malformed(what, 'length is not minimally encoded');
    }
    if (length > end - pos) malformed(what, `length ${length} runs past the end of its container`);
    this.tag = tag;
    this.pos = pos + length;
    return new DerReader(buf, pos, pos + length);
  }

  /** Reads an element that must carry `tag`. Returns a reader over its contents. */
  read(tag: number, what: string): DerReader {
    const actual = this.peekTag();
    if (actual !== tag) {
      malformed(what, actual === -1 ? 'missing' : `expected tag 0x${hex2(tag)}, found 0x${hex2(actual)}`);
    }
    return this.readAny(what);
  }

  /** Reads the next element only when it carries `tag`. */
  readOptional(tag: number, what: string): DerReader | undefined {
    return this.peekTag() === tag ? this.readAny(what) : undefined;
  }

  /** Reads an element that must carry `tag` and returns its whole encoding (tag, length, contents) as a view. */
  readEncoded(tag: number, what: string): Buffer {
    const start = this.pos;
    this.read(tag, what);
    return this.buf.subarray(start, this.pos);
  }

  /** Throws unless every byte of the range has been read. */
  finish(what: string): void {
    if (this.pos !== this.end) malformed(what, `${this.end - this.pos} unexpected trailing bytes`);
  }

  /** The range's bytes as a view (no copy). */
  bytes(): Buffer {
    return this.buf.subarray(this.pos, this.end);
  }

  /** Length of the range in bytes. */
  get length(): number {
    return this.end - this.pos;
  }

  /** Contents of a DER BOOLEAN (only 0x00 and 0xFF are DER). */
  boolean(what: string): boolean {
    if (this.length !== 1) malformed(what, 'BOOLEAN must be one byte');
    const b = this.buf[this.pos]!;
    if (b !== 0x00 && b !== 0xff) malformed(what, 'BOOLEAN must be 0x00 or 0xFF');
    return b === 0xff;
  }

  /** Checks that the range is a minimally encoded INTEGER. */
  checkInteger(what: string): void {
    const { buf, pos } = this;
    if (this.length === 0) malformed(what, 'empty INTEGER');
    if (this.length > 1) {
      const b0 = buf[pos]!;
      const b1 = buf[pos + 1]!;
      if ((b0 === 0x00 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) malformed(what, 'INTEGER is not minimally encoded');
    }
  }

  /** Contents of a non-negative INTEGER that fits in 31 bits. */
  smallUnsigned(what: string): number {
    this.checkInteger(what);
    const { buf, pos, end } = this;
    if (buf[pos]! & 0x80) malformed(what, 'must not be negative');
    if (end - pos > 4) malformed(what, 'too large');
    let value = 0;
    for (let i = pos; i < end; i++) value = value * 256 + buf[i]!;
    return value;
  }

  /** Contents of an OBJECT IDENTIFIER in dotted form. */
  oid(what: string): string {
    const { buf, pos, end } = this;
    if (pos === end) malformed(what, 'empty OBJECT IDENTIFIER');
    let text = '';
    let arc = 0;
    let big: bigint | undefined;
    let first = true;
    let arcStart = true;
    for (let i = pos; i < end; i++) {
      const b = buf[i]!;
      if (arcStart && b === 0x80) malformed(what, 'OBJECT IDENTIFIER arc is not minimally encoded');
      arcStart = false;
      // Arcs beyond 2^53 (UUID-based OIDs under 2.25) switch to BigInt rather than lose precision.
      if (big === undefined && arc >= 2 ** 45) big = BigInt(arc);
      if (big === undefined) arc = arc * 128 + (b & 0x7f);
      else {
        big = big * 128n + BigInt(b & 0x7f);
        // A UUID arc is the largest in use; an unbounded one would cost time growing with the square of its length.
        if (big >= MAX_OID_ARC) malformed(what, 'OBJECT IDENTIFIER arc does not fit in 128 bits');
      }
      if (b & 0x80) continue;
      const value = big ?? arc;
      if (first) {
        // The first subidentifier packs two arcs: 40 * X + Y, with X in 0..2.
        text = value < 40 ? `0.${value}` : value < 80 ? `1.${Number(value) - 40}` : `2.${BigInt(value) - 80n}`;
        first = false;
      } else {
        text += `.${value}`;
      }
      arc = 0;
      big = undefined;
      arcStart = true;
    }
    if (!arcStart) malformed(what, 'OBJECT IDENTIFIER is truncated');
    return text;
  }

  /** Contents of a BIT STRING: the number of unused bits, checked, and the data bytes' range. */
  bitStringData(what: string): DerReader {
    const { buf, pos, end } = this;
    if (pos === end) malformed(what, 'empty BIT STRING');
    const unused = buf[pos]!;
    if (unused > 7 || (unused > 0 && end - pos === 1)) malformed(what, 'BIT STRING has an invalid unused-bits count');
    return new DerReader(buf, pos + 1, end);
  }

  /** Contents of a BIT STRING that must hold whole bytes, such as a signature. */
  octetAlignedBitString(what: string): Buffer {
    const data = this.bitStringData(what);
    if (this.buf[this.pos] !== 0) malformed(what, 'BIT STRING must hold whole bytes');
    return data.bytes();
  }

  /** Contents of an IA5String (ASCII, as X.509 requires for SANs). */
  ia5(what: string): string {
    const { buf, pos, end } = this;
    for (let i = pos; i < end; i++) if (buf[i]! > 0x7f) malformed(what, 'IA5String holds a byte above 0x7F');
    return buf.toString('latin1', pos, end);
  }
}

/** Subidentifiers of an OID stay below 2^128, the size of the UUID arcs of `2.25` (ITU-T X.667). */
const MAX_OID_ARC = 2n ** 128n;

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Two lower-case hex digits. */
export function hex2(byte: number): string {
  return HEX_BYTES[byte & 0xff]!;
}
