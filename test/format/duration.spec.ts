import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../lib/format/duration.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe('parseDuration', () => {
  it.each([
    ['90s', 90 * S],
    ['30m', 30 * M],
    ['24h', 24 * H],
    ['7d', 7 * D],
    ['1h30m', H + 30 * M],
    ['1d2h3m4s', D + 2 * H + 3 * M + 4 * S],
    ['90m', 90 * M],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['', 'empty'],
    ['24', 'a bare number (seconds or hours?)'],
    ['0h', 'zero'],
    ['1.5h', 'a fraction'],
    ['30m1h', 'units out of order'],
    ['1h1h', 'a unit twice'],
    ['-1h', 'a sign'],
    ['24 h', 'a space'],
    ['24H', 'an upper-case unit'],
    ['1w', 'an unknown unit'],
    ['99999999999999999999d', 'beyond a safe integer'],
  ])('refuses %j (%s)', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0m0s'],
    [499, '0m0s'],
    [45 * S, '0m45s'],
    [5 * M + 30 * S, '5m30s'],
    [H, '1h0m'],
    [23 * H + 59 * M + 59 * S, '23h59m'],
    [2 * D + 4 * H + 5 * M, '2d4h'],
    [365 * D, '365d0h'],
    [-(3 * H + 2 * M), '-3h2m'],
    [-(4 * M + 10 * S), '-4m10s'],
  ])('%d ms reads %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
