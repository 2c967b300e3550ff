import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { curveOf, emptyHistogram, fold, survivalAt, timeWhenSurvival, type Curve, type Sample } from '../src/durations/histogram.js';
import { DECAY, tuningFor } from '../src/durations/tuning.js';
import { MAX_GAP_MS, nextPollDelayMs, type AdaptiveTiming, type PollSignal } from '../src/upstream/schedule.js';
import { lognormal, seeded } from '../bench/adaptive-model.js';

const ok: PollSignal = { kind: 'ok' };
const tuning = tuningFor(6.5);
const noDecay = { samples: 1e12, halfLifeMs: 1e15 };

function learned(median: number, sigma: number, n = 2_000, seed = 1, censoredShare = 0): Curve {
  const rand = seeded(seed);
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const s = lognormal(rand, median, sigma);
    samples.push(rand() < censoredShare ? { kind: 'censored', s: s * rand() } : { kind: 'completed', s });
  }
  return curveOf(fold(emptyHistogram(), samples, 0, noDecay));
}

const video90 = learned(90, 0.3);
const voice7 = learned(7, 0.2);
const at = (taskAgeS: number | null, curve: Curve | undefined, progress: number | null = null): AdaptiveTiming => ({
  taskAgeMs: taskAgeS === null ? null : taskAgeS * 1000,
  progress,
  curve,
  tuning,
});
const delay = (taskAgeS: number | null, curve: Curve | undefined, o: { ageMs?: number; random?: number; scale?: number; progress?: number | null } = {}) =>
  nextPollDelayMs(ok, { ageMs: o.ageMs ?? (taskAgeS ?? 0) * 1000, random: o.random ?? 0.5, scale: o.scale, adaptive: at(taskAgeS, curve, o.progress ?? null) });
const fixed = (ageMs: number, random = 0.5) => nextPollDelayMs(ok, { ageMs, random });

describe('adaptive schedule', () => {
  it.each([
    { why: 'no distribution for the kind', curve: undefined, age: 5 },
    { why: 'fewer completions than minEvents', curve: learned(20, 0.3, 10), age: 5 },
    { why: 'upstream gave no created_at', curve: video90, age: null },
  ])('falls back to the fixed cadence when $why', ({ curve, age }) => {
    for (const random of [0, 0.5, 0.99]) expect(delay(age, curve, { ageMs: 10_000, random })).toBe(fixed(10_000, random));
  });

  it.each([
    { watchAgeMs: 10_000, random: 0, want: tuning.bodyGapS * 1000 },
    { watchAgeMs: 10_000, random: 0.99, want: fixed(10_000, 0.99) },
    { watchAgeMs: 400_000, random: 0.5, want: fixed(400_000, 0.5) },
  ])('past what was learned (the tail): the fixed cadence, never under the lag ceiling (watch $watchAgeMs ms, draw $random)', ({ watchAgeMs, random, want }) => {
    expect(delay(40, voice7, { ageMs: watchAgeMs, random })).toBe(Math.round(Math.max(tuning.bodyGapS * 1000, want)));
  });

  it('skips the part of the distribution where tasks of the kind do not end (90 s video at 4 s: one long gap)', () => {
    const d = delay(4, video90);
    expect(d).toBeGreaterThan(30_000);
    expect(d).toBeLessThanOrEqual(MAX_GAP_MS);
    // the poll lands where ≤ bodyMass of the tasks has ended yet
    const alive = survivalAt(video90, 4 + d / 1000);
    expect(alive).toBeGreaterThanOrEqual(1 - tuning.bodyMass - 0.01);
  });

  it.each([{ age: 2 }, { age: 4 }, { age: 20 }])('the onset gap (90 s video, task $age s old) holds ≤ bodyMass, and ≤ lateMass end more than the lag ceiling before its poll', ({ age }) => {
    const c = video90;
    const d = delay(age, c) / 1000;
    expect(d).toBeGreaterThan(tuning.bodyGapS);
    const alive = survivalAt(c, age);
    expect(1 - survivalAt(c, age + d) / alive).toBeLessThanOrEqual(tuning.bodyMass + 0.01);
    expect(1 - survivalAt(c, age + d - tuning.bodyGapS) / alive).toBeLessThanOrEqual(tuning.lateMass + 0.005);
  });

  it('inside the body no gap exceeds the lag ceiling, and none is shorter than 3 s', () => {
    for (const age of [60, 75, 90, 105, 120]) {
      const d = delay(age, video90);
      expect(d).toBeGreaterThanOrEqual(3_000);
      expect(d).toBeLessThanOrEqual(tuning.bodyGapS * 1000);
    }
  });

  it('polls more densely where the hazard is higher (√hazard): later in the body the gaps shrink', () => {
    // (with a lag ceiling high enough not to decide instead)
    const loose = (age: number) => nextPollDelayMs(ok, { ageMs: age * 1000, random: 0.5, adaptive: { ...at(age, video90), tuning: { ...tuning, bodyGapS: 60 } } });
    expect(loose(110)).toBeLessThan(loose(90));
    expect(loose(90)).toBeLessThan(loose(70));
  });

  it('aligns to the task’s created_at, not to the registration: a watch registered 40 s after submit starts mid-distribution', () => {
    // same registration age (2 s), different task ages
    const fresh = delay(2, video90, { ageMs: 2_000 });
    const late = delay(42, video90, { ageMs: 2_000 });
    expect(fresh).toBeGreaterThan(late);
    expect(2 + fresh / 1000).toBeGreaterThan(42); // the fresh one's next poll is past where the late one is already
  });

  it('uses progress when upstream fills it: polls just after the end it implies', () => {
    // 20 s old at 50 %: the end is due at ~40 s
    const d = delay(20, video90, { progress: 0.5 });
    expect(d).toBeGreaterThanOrEqual(20_000);
    expect(d).toBeLessThanOrEqual(21_500);
    // almost done: never sooner than the minimum gap
    expect(delay(20, video90, { progress: 0.99 })).toBe(3_000);
    // progress 0 or absent says nothing: the distribution decides
    expect(delay(20, video90, { progress: 0 })).toBe(delay(20, video90));
  });

  it('scales with TASKHOOK_POLL_SCALE (durations learned in the same scaled seconds)', () => {
    const scaled = learned(9, 0.3); // a 90 s video at scale 0.1
    const d = delay(0.4, scaled, { scale: 0.1, ageMs: 200 });
    const full = delay(4, video90);
    expect(d / 100).toBeCloseTo(full / 1000, 0);
    for (const age of [6, 7.5, 9, 11]) expect(delay(age, scaled, { scale: 0.1 })).toBeGreaterThanOrEqual(300);
  });

  it('Retry-After and the tenant budget (rate_limited) win over the learned schedule', () => {
    const adaptive = at(4, video90);
    const retry = nextPollDelayMs({ kind: 'rate_limited', retryAfterMs: 120_000, streak: 1 }, { ageMs: 4_000, random: 0.5, adaptive });
    expect(retry).toBe(120_000);
    const err = nextPollDelayMs({ kind: 'error', streak: 3 }, { ageMs: 4_000, random: 0.5, adaptive });
    expect(err).toBe(nextPollDelayMs({ kind: 'error', streak: 3 }, { ageMs: 4_000, random: 0.5 }));
  });
});

describe('learned distribution', () => {
  it('counts failed/cancelled tasks as censored: they lengthen the estimate instead of shortening it', () => {
    // half the tasks fail early (at a random share of their duration): as censored they do not pull the median down
    const honest = learned(20, 0.2, 4_000, 3, 0.5);
    const median = timeWhenSurvival(honest, 0.5)!;
    expect(median).toBeGreaterThan(18);
    expect(median).toBeLessThan(22);
  });

  it('spreads a completion seen only between two polls over that interval', () => {
    const h = fold(emptyHistogram(), [{ kind: 'completed', s: 12, lo: 6 }], 0, noDecay);
    const c = curveOf(h);
    expect(survivalAt(c, 5.5)).toBe(1);
    expect(survivalAt(c, 9)).toBeGreaterThan(0.3);
    expect(survivalAt(c, 9)).toBeLessThan(0.7);
    expect(survivalAt(c, 13.5)).toBe(0);
  });

  it('decays: after a kind’s durations double, a few hundred new completions move the median there', () => {
    const rand = seeded(5);
    let h = emptyHistogram();
    const batch = (median: number) => Array.from({ length: 50 }, () => ({ kind: 'completed' as const, s: lognormal(rand, median, 0.2) }));
    for (let i = 0; i < 20; i++) h = fold(h, batch(16), 5_000, DECAY);
    expect(timeWhenSurvival(curveOf(h), 0.5)).toBeCloseTo(16, -0.5);
    for (let i = 0; i < 6; i++) h = fold(h, batch(32), 5_000, DECAY);
    const after = timeWhenSurvival(curveOf(h), 0.5)!;
    expect(after).toBeGreaterThan(28);
    expect(after).toBeLessThan(36);
  });

  it('fades with time alone: a quiet kind halves its weight every half-life', () => {
    const h = fold(emptyHistogram(), [{ kind: 'completed', s: 5 }], 0, DECAY);
    const later = fold(h, [], DECAY.halfLifeMs, DECAY);
    expect(curveOf(later).events).toBeCloseTo(0.5, 5);
  });

  it('ignores samples that are not durations (negative, NaN)', () => {
    const h = fold(emptyHistogram(), [{ kind: 'completed', s: -1 }, { kind: 'completed', s: Number.NaN }, { kind: 'censored', s: Infinity }], 0, noDecay);
    expect(curveOf(h).events).toBe(0);
  });
});

describe('property: whatever was learned, no two polls of a task closer than 3 s or further apart than the maximum', () => {
  const sample = fc.record({
    kind: fc.constantFrom<'completed' | 'censored'>('completed', 'completed', 'censored'),
    s: fc.double({ min: 0, max: 5_000, noNaN: true }),
  });
  it('holds for random distributions, ages, progress, scales and knob settings', () => {
    fc.assert(
      fc.property(
        fc.array(sample, { minLength: 0, maxLength: 300 }),
        fc.double({ min: 0, max: 20_000, noNaN: true }), // task age at registration (s)
        fc.constantFrom(1, 0.1, 0.05, 2),
        fc.double({ min: 1, max: 30, noNaN: true }), // the knob
        fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (samples, startS, scale, lagS, progress, seed) => {
          const curve = curveOf(fold(emptyHistogram(), samples, 0, noDecay));
          const rand = seeded(seed);
          let taskAge = startS;
          let watchAge = 2_000 * scale;
          for (let i = 0; i < 40; i++) {
            const d = nextPollDelayMs(ok, {
              ageMs: watchAge,
              random: rand(),
              scale,
              adaptive: { taskAgeMs: taskAge * 1000, progress, curve, tuning: { ...tuningFor(lagS), minEvents: 1 } },
            });
            expect(d).toBeGreaterThanOrEqual(Math.floor(3_000 * scale));
            expect(d).toBeLessThanOrEqual(Math.ceil(MAX_GAP_MS * scale));
            taskAge += d / 1000;
            watchAge += d;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
