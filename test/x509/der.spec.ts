import { describe, expect, it } from 'vitest';
import { DerError, DerReader, Tag } from '../../lib/x509/der.js';

// The strict DER reader under the certificate and CRL parsers (lib/x509/der.ts).

const reader = (...bytes: number[]): DerReader => DerReader.of(Buffer.from(bytes));

function derError(read: () => unknown): DerError {
  try {
    read();
  } catch (error) {
    if (error instanceof DerError) return error;
    throw error;
  }
  throw new Error('expected a DerError');
}

describe('DerReader', () => {
  it.each<[string, number[], { tag: number; contents: number[] }]>([
    ['a short-form length', [0x30, 0x02, 0x05, 0x00], { tag: 0x30, contents: [0x05, 0x00] }],
    [
      'a long-form length',
      [0x04, 0x81, 0x80, ...Array<number>(0x80).fill(7)],
      { tag: 0x04, contents: Array<number>(0x80).fill(7) },
    ],
    ['an empty element', [0x05, 0x00], { tag: 0x05, contents: [] }],
  ])('reads %s', (_name, bytes, expected) => {
    const der = reader(...bytes);
    const contents = der.readAny('element');
    expect(der.tag).toBe(expected.tag);
    expect([...contents.bytes()]).toEqual(expected.contents);
    expect(der.done).toBe(true);
  });

  it.each<[string, number[], string]>([
    ['nothing', [], 'element: missing'],
    ['a lone tag', [0x30], 'element: truncated before its length'],
    ['an indefinite length', [0x30, 0x80, 0x00, 0x00], 'element: indefinite length is not DER'],
    ['a long form for a short length', [0x04, 0x81, 0x01, 0xaa], 'element: length is not minimally encoded'],
    ['a length with a leading zero byte', [0x04, 0x82, 0x00, 0x80], 'element: length is not minimally encoded'],
    ['a five-byte length', [0x04, 0x85, 1, 0, 0, 0, 0], 'element: length of 5 bytes is too large'],
    ['a length cut short', [0x04, 0x82, 0x01], 'element: truncated inside its length'],
    ['a length past the end', [0x30, 0x05, 0x00], 'element: length 5 runs past the end of its container'],
    ['a high tag number', [0x1f, 0x81, 0x00], 'element: high tag numbers are not used in X.509'],
  ])('refuses %s with a DerError naming the field', (_name, bytes, message) => {
    const error = derError(() => reader(...bytes).readAny('element'));
    expect(error).toMatchObject({ name: 'DerError', message });
    expect(`${error.what}: ${error.detail}`).toBe(message);
  });

  it('checks the expected tag and reads optional elements only when present', () => {
    const der = reader(0x02, 0x01, 0x05, 0x30, 0x00);
    expect(der.readOptional(Tag.BOOLEAN, 'flag')).toBeUndefined();
    expect(der.read(Tag.INTEGER, 'number').smallUnsigned('number')).toBe(5);
    expect(derError(() => der.read(Tag.SET, 'set')).message).toBe('set: expected tag 0x31, found 0x30');
    expect(der.readOptional(Tag.SEQUENCE, 'sequence')?.done).toBe(true);
    der.finish('all');
  });

  it('returns a whole element as a view with readEncoded', () => {
    const buf = Buffer.from([0x30, 0x05, 0x31, 0x03, 0x02, 0x01, 0x07]);
    const outer = DerReader.of(buf).read(Tag.SEQUENCE, 'outer');
    const encoded = outer.readEncoded(Tag.SET, 'inner');
    expect([...encoded]).toEqual([0x31, 0x03, 0x02, 0x01, 0x07]);
    expect(encoded.buffer).toBe(buf.buffer);
    expect(outer.done).toBe(true);
  });

  it.each<[string, number[], number[] | string]>([
    ['whole bytes', [0x00, 0xaa, 0xbb], [0xaa, 0xbb]],
    ['unused bits', [0x01, 0x80], 'signature: BIT STRING must hold whole bytes'],
    ['an empty BIT STRING', [], 'signature: empty BIT STRING'],
    ['more than 7 unused bits', [0x08, 0x00], 'signature: BIT STRING has an invalid unused-bits count'],
  ])('reads a BIT STRING of %s as bytes only when octet-aligned', (_name, contents, expected) => {
    const read = (): Buffer =>
      reader(0x03, contents.length, ...contents)
        .read(Tag.BIT_STRING, 'signature')
        .octetAlignedBitString('signature');
    if (typeof expected === 'string') expect(derError(read).message).toBe(expected);
    else expect([...read()]).toEqual(expected);
  });

  it.each<[string, number[], string]>([
    ['a 2^128 - 1 arc (a UUID under 2.25)', [0x69, 0x83, ...Array<number>(17).fill(0xff), 0x7f], `2.25.${2n ** 128n - 1n}`],
    ['a 2^128 arc', [0x69, 0x84, ...Array<number>(17).fill(0x80), 0x00], 'oid: OBJECT IDENTIFIER arc does not fit in 128 bits'],
    ['a 60 KB arc', [0x2a, ...Array<number>(60_000).fill(0xff), 0x7f], 'oid: OBJECT IDENTIFIER arc does not fit in 128 bits'],
  ])('reads an OID with %s, or refuses it', (_name, contents, expected) => {
    const read = (): string => new DerReader(Buffer.from(contents), 0, contents.length).oid('oid');
    if (expected.startsWith('oid:')) expect(derError(read).message).toBe(expected);
    else expect(read()).toBe(expected);
  });

  it('reports trailing bytes', () => {
    const der = reader(0x05, 0x00, 0x05, 0x00);
    der.readAny('first');
    expect(derError(() => der.finish('pair')).message).toBe('pair: 2 unexpected trailing bytes');
  });
});
