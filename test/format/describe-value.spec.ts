import { describe, expect, it } from 'vitest';
import { clipped, describeValue, printable } from '../../lib/format/describe-value.js';

describe('describeValue', () => {
  it.each([
    ['short', '"short"'],
    ['x'.repeat(65), 'a string of 65 characters'],
    [0, '0'],
    [false, 'false'],
    [undefined, 'undefined'],
    [null, 'null'],
    [10n, '10n'],
    [Symbol('s'), 'a symbol'],
    [() => 1, 'a function'],
    [[1], 'an array'],
    [{ a: 1 }, 'an object'],
    [Object.create(null) as object, 'an object'],
    [new Map(), 'an instance of Map'],
  ])('%s → %s', (value, shown) => {
    expect(describeValue(value)).toBe(shown);
  });

  it('never walks an object: circular and huge values are described by their kind', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;

    expect(describeValue(circular)).toBe('an object');
  });
});

describe('printable', () => {
  it.each([
    ['orders', 'orders'],
    ['a\u001b[2Jb', 'a\\x1b[2Jb'],
    ['line\nbreak', 'line\\x0abreak'],
    ['\u009b', '\\x9b'],
  ])('%j → %j', (text, shown) => {
    expect(printable(text)).toBe(shown);
  });
});

describe('clipped', () => {
  it.each([
    ['', 3, ''],
    ['abc', 3, 'abc'],
    ['abcd', 3, 'abc…'],
  ])('%j at most %i characters → %j', (text, max, expected) => {
    expect(clipped(text, max)).toBe(expected);
  });
});
