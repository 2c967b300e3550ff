// db/int-array-text.ts: integer array literals written into a reused buffer, in the text
// form Postgres reads for `::int[]` / `::bigint[]` / `::float8[]` parameters.
import { describe, expect, it } from 'vitest';
import { IntArrayText } from '../src/db/int-array-text.js';

const literal = (xs: number[]) => {
  const a = new IntArrayText(64);
  for (const x of xs) a.push(x);
  return a.text();
};

describe('IntArrayText', () => {
  it.each([
    [[], '{}'],
    [[0], '{0}'],
    [[7, 10, 100, 1_000_001], '{7,10,100,1000001}'],
    [[-1, -250, 0], '{-1,-250,0}'],
    [[1.4, 1.5, -1.4, -2.6, 1e-9], '{1,2,-1,-3,0}'],
    [[Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER], '{9007199254740991,-9007199254740991}'],
  ])('%j → %s', (xs, text) => {
    expect(literal(xs)).toBe(text);
  });

  it('grows past its first buffer and starts over on reset', () => {
    const a = new IntArrayText(64);
    const xs = Array.from({ length: 5_000 }, (_, i) => (i % 3 === 0 ? -i : i * 1_234_567));
    for (const x of xs) a.push(x);
    expect(a.size).toBe(5_000);
    expect(a.text()).toBe(`{${xs.join(',')}}`);
    a.reset();
    a.push(42);
    expect(a.size).toBe(1);
    expect(a.text()).toBe('{42}');
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY], [2 ** 60]])('refuses %s', (x) => {
    expect(() => new IntArrayText().push(x)).toThrow(RangeError);
  });
});
