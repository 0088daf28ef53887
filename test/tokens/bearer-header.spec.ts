import { describe, expect, it } from 'vitest';
import { bearerToken, MAX_AUTHORIZATION_BYTES } from '../../lib/tokens/bearer-header.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl';
const raw = (...values: string[]) => ({ rawHeaders: values.flatMap((value) => ['Authorization', value]) });

describe('bearerToken', () => {
  it.each([
    ['Bearer', raw(`Bearer ${JWT}`), { token: JWT }],
    ['lower-case scheme', raw(`bearer ${JWT}`), { token: JWT }],
    ['mixed-case scheme and extra spaces', raw(`BeArEr   ${JWT}  `), { token: JWT }],
    ['lower-case header name', { rawHeaders: ['authorization', `Bearer ${JWT}`] }, { token: JWT }],
    ['no header', { rawHeaders: ['Host', 'x'] }, { problem: 'missing' }],
    ['an empty header', raw(''), { problem: 'missing' }],
    ['two headers', raw(`Bearer ${JWT}`, `Bearer ${JWT}`), { problem: 'duplicate_header' }],
    ['Basic', raw('Basic YTpi'), { problem: 'scheme' }],
    ['Bearer without a space', raw(`Bearer${JWT}`), { problem: 'scheme' }],
    ['Bearer alone', raw('Bearer'), { problem: 'scheme' }],
    ['two parts', raw('Bearer a.b'), { problem: 'malformed' }],
    ['four parts', raw('Bearer a.b.c.d'), { problem: 'malformed' }],
    ['an empty signature (alg none)', raw('Bearer a.b.'), { problem: 'malformed' }],
    ['padding', raw('Bearer a.b.c='), { problem: 'malformed' }],
    ['two tokens', raw(`Bearer ${JWT} ${JWT}`), { problem: 'malformed' }],
    ['non-ASCII', raw('Bearer a.é.c'), { problem: 'malformed' }],
    ['just over 16 KiB', raw(`Bearer ${'a'.repeat(MAX_AUTHORIZATION_BYTES)}.b.c`), { problem: 'too_large' }],
    ['16 KiB of multibyte characters', raw(`Bearer ${'é'.repeat(MAX_AUTHORIZATION_BYTES / 2)}`), { problem: 'too_large' }],
    ['parsed headers only', { headers: { authorization: `Bearer ${JWT}` } }, { token: JWT }],
    ['a parsed array of two', { headers: { authorization: ['Bearer a.b.c', 'Bearer d.e.f'] } }, { problem: 'duplicate_header' }],
    ['nothing at all', {}, { problem: 'missing' }],
  ])('%s', (_name, request, expected) => {
    expect(bearerToken(request)).toEqual(expected);
  });
});
