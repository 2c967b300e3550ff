// The soak's plan is a pure function of its seed (so `--seed` replays a run's choices),
// and keeps the shape the checker relies on: a calm start without crash faults, no
// crash fault at all with --no-crash, faults only inside the fault phase.
import { describe, expect, it } from 'vitest';
import { CRASH_KINDS, makePlan, NEMESIS_KINDS, type SoakOptions } from '../soak/plan.js';
import { Rng } from '../soak/rng.js';

const base: SoakOptions = {
  seed: 1,
  watches: 2_000,
  durationMs: 120_000,
  processes: 3,
  tenants: 2,
  scale: 0.1,
  faultEveryMs: 1_000,
  kinds: NEMESIS_KINDS,
  maxWatchAgeS: 30,
  deliveryTimeoutS: 5,
  upstreamTimeoutS: 1,
};

describe('soak plan', () => {
  it('is the same for the same seed and differs for another', () => {
    expect(makePlan(base)).toEqual(makePlan(base));
    const other = makePlan({ ...base, seed: 2 });
    expect(other.nemesis).not.toEqual(makePlan(base).nemesis);
    expect(other.watches.map((w) => w.kind)).not.toEqual(makePlan(base).watches.map((w) => w.kind));
  });

  it('plans every watch, in time order, inside the fault phase, and every kind of task', () => {
    const p = makePlan(base);
    expect(p.watches).toHaveLength(base.watches);
    expect(p.watches.every((w, i) => i === 0 || w.atMs >= p.watches[i - 1]!.atMs)).toBe(true);
    expect(Math.max(...p.watches.map((w) => w.atMs))).toBeLessThanOrEqual(base.durationMs);
    expect(new Set(p.watches.map((w) => w.kind))).toEqual(new Set(['completed', 'failed', 'cancelled', 'unknown', 'late', 'never', 'unauthorized']));
    // a task that never ends is registered early enough to expire inside the run
    for (const w of p.watches.filter((x) => x.kind === 'never')) expect(w.atMs).toBeLessThan(base.durationMs - base.maxWatchAgeS * 1000);
    // twins share a task and its tenant, on another URL
    const twins = p.watches.filter((w) => w.twinOf !== undefined);
    expect(twins.length).toBeGreaterThan(0);
    for (const t of twins) {
      const first = p.watches.find((w) => w.i === t.twinOf)!;
      expect([t.taskId, t.tenant]).toEqual([first.taskId, first.tenant]);
      expect(t.url).not.toBe(first.url);
    }
  });

  it('starts calm, then uses every nemesis kind; --no-crash leaves crashes out', () => {
    const p = makePlan(base);
    expect(new Set(p.nemesis.map((a) => a.kind))).toEqual(new Set(NEMESIS_KINDS));
    expect(p.nemesis.filter((a) => CRASH_KINDS.has(a.kind) && a.atMs < p.calmUntilMs)).toEqual([]);
    expect(p.nemesis.every((a) => a.atMs < base.durationMs)).toBe(true);
    const calm = makePlan({ ...base, kinds: NEMESIS_KINDS.filter((k) => !CRASH_KINDS.has(k)) });
    expect(calm.nemesis.length).toBeGreaterThan(0);
    expect(calm.nemesis.filter((a) => CRASH_KINDS.has(a.kind))).toEqual([]);
  });

  it('the seeded generator is stable (a seed replays across versions of this file only if this holds)', () => {
    const r = new Rng(42);
    expect([r.u32(), r.u32(), r.u32()]).toEqual([1028872839, 2516511472, 400437680]);
    const a = new Rng(42);
    const b = new Rng(42);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    expect(new Rng(42).fork('nemesis').next()).not.toBe(new Rng(42).fork('workload').next());
  });
});
