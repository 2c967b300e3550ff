// The claim loop's pacing, without a database: claim() is a fake that records its calls.
// idleMs is set to a minute throughout, so a test only passes if the loop came back for
// the reason under test (pace, next-due, refill), never by sleeping out its idle time.
import { describe, expect, it } from 'vitest';
import { ClaimLoop } from '../src/engine/loop.js';

const log = { warn() {}, error() {} };

/** A loop whose claims are answered by `answer(n, limit)`; resolves `calls[n]` as each claim happens. */
function rig(answer: (n: number, limit: number) => number[], opts: { nextDueMs?: () => Promise<number | null>; maxInFlight?: number; batchSize?: number; work?: (item: number) => Promise<void> } = {}) {
  const limits: number[] = [];
  const waiters: Array<(limit: number) => void> = [];
  const loop = new ClaimLoop<number>({
    name: 'test',
    async claim(limit) {
      const n = limits.push(limit) - 1;
      waiters[n]?.(limit);
      return answer(n, limit);
    },
    work: opts.work ?? (async () => {}),
    maxInFlight: opts.maxInFlight ?? 100,
    batchSize: opts.batchSize ?? 10,
    idleMs: 60_000,
    paceMs: 1,
    ...(opts.nextDueMs ? { nextDueMs: opts.nextDueMs } : {}),
    log,
  });
  const claimNo = (n: number) => (n < limits.length ? Promise.resolve(limits[n]!) : new Promise<number>((r) => (waiters[n] = r)));
  return { loop, limits, claimNo };
}

describe('ClaimLoop pacing', () => {
  it('after a partly full claim it pauses paceMs, not idleMs, and claims again', async () => {
    const { loop, claimNo } = rig((n) => (n === 0 ? [1, 2, 3] : []));
    loop.start();
    await claimNo(1);
    await loop.stop(1_000);
  });

  it('after a full claim it claims again at once', async () => {
    const { loop, claimNo } = rig((n, limit) => (n === 0 ? Array.from({ length: limit }, (_, i) => i) : []));
    loop.start();
    await claimNo(1);
    await loop.stop(1_000);
  });

  it('after an empty claim it sleeps until the next row is due (nextDueMs), not idleMs', async () => {
    const { loop, claimNo } = rig(() => [], { nextDueMs: async () => 5 });
    loop.start();
    await claimNo(1);
    await loop.stop(1_000);
  });

  it('with nothing scheduled (nextDueMs null) it sleeps idleMs, until woken', async () => {
    const { loop, limits, claimNo } = rig(() => [], { nextDueMs: async () => null });
    loop.start();
    await claimNo(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(limits).toHaveLength(1); // still asleep
    loop.wake();
    await claimNo(1);
    await loop.stop(1_000);
  });

  it('a full loop refills only once a quarter of a batch is free, and claims that many', async () => {
    const release: Array<() => void> = [];
    const { loop, limits, claimNo } = rig((n, limit) => (n === 0 ? Array.from({ length: limit }, (_, i) => i) : []), {
      maxInFlight: 8,
      batchSize: 8,
      work: () => new Promise<void>((r) => release.push(r)),
    });
    loop.start();
    await claimNo(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(release).toHaveLength(8);
    release[0]!(); // 1 free: below a quarter batch (2), no claim
    await new Promise((r) => setTimeout(r, 20));
    expect(limits).toHaveLength(1);
    release[1]!(); // 2 free: claim 2
    expect(await claimNo(1)).toBe(2);
    release.slice(2).forEach((r) => r());
    await loop.stop(1_000);
  });
});
