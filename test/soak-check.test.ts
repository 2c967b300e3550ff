// The soak checker's rule for which signing secrets a webhook may carry (soak/check.ts):
// judged at signing time (webhook-timestamp, whole seconds), not when a starved receiver read it.
import { describe, expect, it } from 'vitest';
import { validSecrets } from '../soak/check.js';

// tenant's rotations: #1 sent 100 s done 101 s, #2 sent 200 s done 202 s, #3 sent 300 s done 300.5 s
const rs = [
  { secret: 1, sentAt: 100_000, doneAt: 101_000 },
  { secret: 2, sentAt: 200_000, doneAt: 202_000 },
  { secret: 3, sentAt: 300_000, doneAt: 300_500 },
];
const lag = 30_000;

describe('validSecrets', () => {
  it.each([
    ['before any rotation: only the first secret', 50_000, 51_000, [0]],
    ['while rotation #1 may be taking effect: #0 and #1', 99_500, 100_500, [0, 1]],
    ['after rotation #1: #1 current, #0 previous', 150_000, 151_000, [0, 1]],
    ['after rotation #2 and a cache lag: #2 current, #1 previous (#0 dropped)', 240_000, 241_000, [1, 2]],
    ['within a cache lag of rotation #2: #0 may still be cached', 220_000, 221_000, [0, 1, 2]],
    ['signed just before rotation #3 was sent, read later: #1 and #2 still count', 299_000, 300_000, [1, 2, 3]],
    ['long after the last rotation: #3 and #2', 400_000, 401_000, [2, 3]],
  ])('%s', (_name, from, to, want) => {
    expect([...validSecrets(rs, from, to, lag)].sort()).toEqual(want);
  });

  it('with no rotation the first secret is always valid', () => {
    expect([...validSecrets([], 0, 1_000_000, lag)]).toEqual([0]);
  });
});
