import { describe, expect, it } from 'vitest';
import { LruMap } from '../../lib/client/lru-map.js';

describe('LruMap', () => {
  it('keeps the most recently used entries and returns the one it drops', () => {
    const map = new LruMap<string, number>(2);

    expect(map.set('a', 1)).toBeUndefined();
    expect(map.set('b', 2)).toBeUndefined();
    expect(map.get('a')).toBe(1);
    expect(map.set('c', 3)).toEqual(['b', 2]);

    expect(map.get('b')).toBeUndefined();
    expect(map.get('a')).toBe(1);
    expect(map.get('c')).toBe(3);
    expect(map.size).toBe(2);
  });

  it('replaces a value in place without dropping anything', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);

    expect(map.set('a', 10)).toBeUndefined();
    expect(map.set('c', 3)).toEqual(['b', 2]);
    expect(map.get('a')).toBe(10);
  });

  it('never grows past its capacity', () => {
    const map = new LruMap<number, number>(16);

    for (let i = 0; i < 10_000; i++) map.set(i, i);

    expect(map.size).toBe(16);
    expect(map.get(9_999)).toBe(9_999);
    expect(map.get(9_983)).toBeUndefined();
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses capacity %s', (capacity) => {
    expect(() => new LruMap(capacity)).toThrow(RangeError);
  });
});
