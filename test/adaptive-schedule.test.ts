import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { curveOf, emptyHistogram, fold, survivalAt, survivalIntegral, timeWhenSurvival, type Curve, type Sample } from '../src/durations/histogram.js';
import { DECAY, tuningFor } from '../src/durations/tuning.js';
import { MAX_GAP_MS, adaptiveDelayMs, nextPollDelayMs, upperPoint, type AdaptiveTiming, type AdaptiveTuning, type PollSignal } from '../src/upstream/schedule.js';
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

  it.each([{ age: 2 }, { age: 4 }, { age: 20 }])('the onset gap (90 s video, task $age s old) holds ≤ bodyMass, and ≤ lateMass of the kind end more than the lag ceiling before its poll', ({ age }) => {
    const c = video90;
    const d = delay(age, c) / 1000;
    expect(d).toBeGreaterThan(tuning.bodyGapS);
    const alive = survivalAt(c, age);
    expect(1 - survivalAt(c, age + d) / alive).toBeLessThanOrEqual(tuning.bodyMass + 0.01);
    // counted from the task's start (the kind's share), not from what is left at this age
    expect(1 - survivalAt(c, age + d - tuning.bodyGapS)).toBeLessThanOrEqual(tuning.lateMass + 0.002);
  });

  it.each([
    { kind: 'voice 7 s', curve: voice7, lagS: 5.7 },
    { kind: 'voice 7 s', curve: voice7, lagS: 3 },
    { kind: 'image 16 s', curve: learned(16, 0.25), lagS: 5.7 },
    { kind: 'video 25 s', curve: learned(25, 0.3), lagS: 5.7 },
    { kind: 'video 90 s', curve: video90, lagS: 5.7 },
    { kind: 'video 90 s', curve: video90, lagS: 3 },
  ])('over a whole schedule ($kind, lag $lagS s) at most lateMass of the kind ends more than the ceiling before its poll — once per task, not once per onset gap', ({ curve, lagS }) => {
    const t = tuningFor(lagS);
    let late = 0;
    for (let p = 2, i = 0; i < 200 && survivalAt(curve, p) > 0.001; i++) {
      const next = p + adaptiveDelayMs({ taskAgeMs: p * 1000, progress: null, curve, tuning: t }, 1, 0)! / 1000;
      // the tasks ending in (p, next − ceiling] wait longer than the ceiling
      if (next - t.bodyGapS > p) late += survivalAt(curve, p) - survivalAt(curve, next - t.bodyGapS);
      p = next;
    }
    expect(late).toBeLessThanOrEqual(t.lateMass + 0.002);
  });

  it('reads the lower tail as a log-normal where that is earlier: a kind learned from 50 completions jumps no later than the log-normal’s lateMass point + the ceiling', () => {
    // (seed 14: 50 samples whose earliest ones sit late, as a few dozen often do)
    const few = learned(90, 0.3, 50, 14);
    const q10 = timeWhenSurvival(few, 0.9)!;
    const q50 = timeWhenSurvival(few, 0.5)!;
    const logNormalLate = q50 * (q10 / q50) ** (upperPoint(tuning.lateMass) / upperPoint(0.1));
    const histogramLate = timeWhenSurvival(few, 1 - tuning.lateMass)!;
    expect(logNormalLate).toBeLessThan(histogramLate); // the few samples put the histogram's point too late
    const onset = 2 + delay(2, few) / 1000;
    expect(onset).toBeLessThanOrEqual(logNormalLate + tuning.bodyGapS + 0.01);
    expect(onset).toBeGreaterThan(logNormalLate + tuning.bodyGapS - 1);
  });

  it('searches the onset poll’s time: the 7 s voice kind at the 3 s knob is polled again at ~7 s, not 5.6 s, for less lag and fewer polls', () => {
    const t = tuningFor(3);
    const rand = seeded(11);
    const durations = Array.from({ length: 4_000 }, () => lognormal(rand, 7, 0.2));
    const run = (search: boolean) => {
      let lag = 0;
      let polls = 0;
      for (const d of durations) {
        let p = 2;
        polls++;
        while (p < d) {
          p += adaptiveDelayMs({ taskAgeMs: p * 1000, progress: null, curve: voice7, tuning: t }, 1, 0, search)! / 1000;
          polls++;
        }
        lag += p - d;
      }
      return { lag: lag / durations.length, polls: polls / durations.length };
    };
    const rule = adaptiveDelayMs({ taskAgeMs: 2_000, progress: null, curve: voice7, tuning: t }, 1, 0, false)! / 1000;
    const searched = adaptiveDelayMs({ taskAgeMs: 2_000, progress: null, curve: voice7, tuning: t }, 1, 0)! / 1000;
    expect(searched).toBeGreaterThan(rule);
    expect(1 - survivalAt(voice7, 2 + searched)).toBeGreaterThan(0.4);
    const [without, withSearch] = [run(false), run(true)];
    // measured: lag 1.52 → 1.47 s, polls 3.0 → 2.55 per task
    expect(withSearch.lag).toBeLessThan(without.lag - 0.03);
    expect(withSearch.polls).toBeLessThan(without.polls * 0.9);
  });

  it.each([
    { p: 0.1, z: 1.2816 },
    { p: 0.05, z: 1.6449 },
    { p: 0.015, z: 2.1701 },
    { p: 0.01, z: 2.3263 },
    { p: 0.0075, z: 2.4324 },
    { p: 0.001, z: 3.0902 },
  ])('upperPoint($p) is the standard normal’s upper $p point ($z)', ({ p, z }) => {
    expect(upperPoint(p)).toBeCloseTo(z, 3);
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

  it.each([
    { t: 0.5, want: 0.5 },
    { t: 2, want: 2 },
    { t: 6, want: 4 + 1.5 }, // S = 1 up to 4 s, then linearly to 0 at 7 s (within its bins): ∫ = 4 + 2 × (1 + 1/3) / 2
    { t: 10, want: 4 + 1.5 },
  ])('integrates the survival curve exactly where it is linear: ∫₀^$t S = $want', ({ t, want }) => {
    // every completion spread evenly over (4, 7] s: S falls linearly there (bins 9 % wide, so
    // the edges do not fall on 4 and 7 exactly: compare against the curve's own S)
    const c = curveOf(fold(emptyHistogram(), [{ kind: 'completed', s: 7, lo: 4 }], 0, noDecay));
    let numeric = 0;
    for (let i = 0; i < t * 1000; i++) numeric += survivalAt(c, (i + 0.5) / 1000) / 1000;
    expect(survivalIntegral(c, t)).toBeCloseTo(numeric, 3);
    expect(survivalIntegral(c, t)).toBeCloseTo(want, 0);
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
