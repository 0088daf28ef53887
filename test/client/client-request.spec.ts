import { describe, expect, it } from 'vitest';
import { describeRequest, withQuery } from '../../lib/client/client-request.js';

describe('withQuery', () => {
  it.each([
    ['/stock', {}, '/stock'],
    ['/stock', { sku: 42 }, '/stock?sku=42'],
    ['/stock', { tag: ['a', 'b'], all: true }, '/stock?tag=a&tag=b&all=true'],
    ['/stock', { skipped: undefined, q: 'x y&z' }, '/stock?q=x+y%26z'],
    ['/stock?page=2', { size: 10 }, '/stock?page=2&size=10'],
    ['/stock', { 'a=b': 'c' }, '/stock?a%3Db=c'],
  ])('%s + %j → %s', (path, query, expected) => {
    expect(withQuery(path, query)).toBe(expected);
  });
});

describe('describeRequest', () => {
  it.each([
    ['GET', '/stock/42', 'GET /stock/42'],
    ['POST', '/login?token=secret', 'POST /login'],
  ])('%s %s → %s (never the query)', (method, path, expected) => {
    expect(describeRequest(method, path)).toBe(expected);
  });
});
