import { describe, expect, it } from 'vitest';
import { LinePrefixer, prefixLine } from '../../sample-app/common/log-prefix.js';

describe('sample --serve output', () => {
  it.each([
    [
      '[Nest] 4242  - 12/03/2026, 6:00:00 PM     LOG [MtlsModule] mTLS routes',
      '[inventory] 4242  - 12/03/2026, 6:00:00 PM     LOG [MtlsModule] mTLS routes',
    ],
    ['\x1b[32m[Nest] 4242  - \x1b[39mLOG', '\x1b[32m[inventory] 4242  - \x1b[39mLOG'],
    ['inventory listening on https://127.0.0.1:8443', '[inventory] inventory listening on https://127.0.0.1:8443'],
    [
      '  GET /stock/:sku  StockController.get  @AllowPeers(orders)',
      '[inventory]   GET /stock/:sku  StockController.get  @AllowPeers(orders)',
    ],
  ])('gives %j one prefix', (line, expected) => {
    expect(prefixLine('inventory', line)).toBe(expected);
  });

  it('prefixes a line split across chunks once', () => {
    const prefixer = new LinePrefixer('orders');
    expect(prefixer.push('[Nest] 1 - LOG one\n[Ne')).toBe('[orders] 1 - LOG one\n');
    expect(prefixer.push('st] 1 - LOG two\n')).toBe('[orders] 1 - LOG two\n');
  });
});
