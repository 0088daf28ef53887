import { describe, expect, it } from 'vitest';
import { closestName, didYouMean, editDistance } from '../../lib/errors/did-you-mean.js';

const DECLARED = ['orders', 'inventory', 'admin', 'billing-api'];

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['orders', 'orders', 0],
    ['ordres', 'orders', 1], // one swap of neighbours
    ['order', 'orders', 1],
    ['invetnory', 'inventory', 1],
    ['admn', 'admin', 1],
    ['kitten', 'sitting', 3],
  ])('%s → %s is %i', (a, b, expected) => {
    expect(editDistance(a, b)).toBe(expected);
    expect(editDistance(b, a)).toBe(expected);
  });
});

describe('closestName', () => {
  it.each<[string, string | undefined]>([
    ['ordres', 'orders'],
    ['Orders', 'orders'],
    ['invetnory', 'inventory'],
    ['inventroy', 'inventory'],
    ['admn', 'admin'],
    ['billing_api', 'billing-api'],
    ['payments', undefined], // nothing close: no guess rather than a wrong one
    ['ab', undefined],
    ['', undefined],
    ['x'.repeat(10_000), undefined],
  ])('%s → %s', (input, expected) => {
    expect(closestName(input, DECLARED)).toBe(expected);
  });

  it('prefers the nearer of two candidates', () => {
    expect(closestName('ordersx', ['orders-a', 'orders'])).toBe('orders');
  });
});

describe('didYouMean', () => {
  it('is a clause to append, or nothing', () => {
    expect(didYouMean('ordres', DECLARED)).toBe(' did you mean "orders"?');
    expect(didYouMean('payments', DECLARED)).toBe('');
  });
});
