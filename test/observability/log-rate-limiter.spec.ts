import { describe, expect, it } from 'vitest';
import { LogRateLimiter, RateLimitedLogger } from '../../lib/observability/log-rate-limiter.js';

describe('LogRateLimiter', () => {
  it('admits `limit` items per window, then counts the rest and reports them with the next admitted one', () => {
    let now = 0;
    const limiter = new LogRateLimiter(2, 1000, () => now);
    expect([limiter.admit(), limiter.admit(), limiter.admit(), limiter.admit()]).toEqual([0, 0, undefined, undefined]);
    now = 1000;
    expect([limiter.admit(), limiter.admit()]).toEqual([2, 0]);
  });
});

describe('RateLimitedLogger', () => {
  it('logs up to its limit per minute, builds no line over it, and says how many it dropped', () => {
    const lines: string[] = [];
    let now = 0;
    const logger = new RateLimitedLogger({ warn: (line: string) => lines.push(line) }, 2, () => now);
    let built = 0;
    for (let i = 0; i < 5; i++) {
      logger.warn(() => {
        built++;
        return `line ${i}`;
      });
    }
    expect(lines).toEqual(['line 0', 'line 1']);
    expect(built).toBe(2);
    now = 60_000;
    logger.warn(() => 'line 5');
    expect(lines.at(-1)).toBe('line 5 (3 similar lines suppressed)');
  });
});
