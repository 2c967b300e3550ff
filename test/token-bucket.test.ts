import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../src/engine/token-bucket.js';

describe('TokenBuckets', () => {
  it('allows a burst, then one token per 1/rate seconds', () => {
    const b = new TokenBuckets();
    const taken = Array.from({ length: 5 }, () => b.take('t', 2, 3, 0));
    expect(taken).toEqual([0, 0, 0, 500, 500]);
    expect(b.take('t', 2, 3, 500)).toBe(0);
    expect(b.take('t', 2, 3, 500)).toBe(500);
  });

  it.each([
    [10, 1, 0, 100],
    [1, 1, 999, 1],
    [0.5, 1, 0, 2000],
  ])('rate %d/s, burst %d: after waiting %d ms the next token is %d ms away', (rate, burst, wait, expected) => {
    const b = new TokenBuckets();
    expect(b.take('t', rate, burst, 0)).toBe(0);
    expect(b.take('t', rate, burst, wait)).toBe(expected);
  });

  it('keeps keys apart and treats rate 0 as unlimited', () => {
    const b = new TokenBuckets();
    expect(b.take('a', 1, 1, 0)).toBe(0);
    expect(b.take('a', 1, 1, 0)).toBeGreaterThan(0);
    expect(b.take('b', 1, 1, 0)).toBe(0);
    for (let i = 0; i < 1000; i++) expect(b.take('c', 0, 0, 0)).toBe(0);
  });
});
