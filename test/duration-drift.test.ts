// Change detection (src/durations/drift.ts), pure: a stable kind never raises an alarm;
// a kind whose durations double (or halve) does within a few completions, its learned
// shape is stretched to the new scale at once and settles there; the detector's state survives the stored form.
import { describe, expect, it } from 'vitest';
import { DRIFT, learn } from '../src/durations/drift.js';
import { curveOf, decodeHistogram, emptyHistogram, encodeHistogram, timeWhenSurvival, type Histogram, type Sample } from '../src/durations/histogram.js';
import { DECAY } from '../src/durations/tuning.js';
import { drawDuration, seeded } from '../bench/adaptive-model.js';

const kind = (medianS: number, sigma: number) => ({ name: 'k', medianS, sigma, share: 1 });

/** Feeds `n` completions of the kind in batches of 1–4 (a learner round every 5 s), through the stored form each round. */
function feed(h: Histogram, k: ReturnType<typeof kind>, n: number, rand: () => number, o: { intervalCensored?: boolean; untilAlarm?: boolean } = {}) {
  let alarmAt: number | undefined;
  const alarms0 = h.drift?.alarms ?? 0;
  for (let i = 0; i < n; ) {
    const m = Math.min(n - i, 1 + Math.floor(rand() * 4));
    const batch: Sample[] = [];
    for (let j = 0; j < m; j++) {
      const s = drawDuration(rand, k);
      batch.push(o.intervalCensored ? { kind: 'completed', s: s + rand() * 6, lo: s - 6 + rand() * 6 } : { kind: 'completed', s });
    }
    h = decodeHistogram(encodeHistogram(learn(h, batch, 5_000, DECAY)));
    i += m;
    if (alarmAt === undefined && (h.drift?.alarms ?? 0) > alarms0) {
      alarmAt = i;
      if (o.untilAlarm) break;
    }
  }
  return { h, alarmAt };
}
const median = (h: Histogram) => timeWhenSurvival(curveOf(h), 0.5)!;

describe('change detection', () => {
  it.each([
    { medianS: 7, sigma: 0.2 },
    { medianS: 16, sigma: 0.25 },
    { medianS: 90, sigma: 0.3 },
    { medianS: 30, sigma: 0.8 },
    { medianS: 16, sigma: 0.25, intervalCensored: true },
  ])('a stable kind (median $medianS s, σ $sigma, interval-censored: $intervalCensored) raises no alarm in 10,000 completions', ({ medianS, sigma, intervalCensored }) => {
    const rand = seeded(medianS * 100 + sigma * 10);
    const { h, alarmAt } = feed(emptyHistogram(), kind(medianS, sigma), 10_000, rand, { intervalCensored });
    expect(alarmAt).toBeUndefined();
    expect(h.drift?.alarms).toBe(0);
  });

  it.each([
    { from: 16, to: 32, sigma: 0.25 },
    { from: 7, to: 14, sigma: 0.2 },
    { from: 90, to: 180, sigma: 0.3 },
    { from: 32, to: 16, sigma: 0.25 },
    { from: 25, to: 12.5, sigma: 0.3 },
  ])('durations $from s → $to s: an alarm within 20 completions, rescaled to the new median at once, at it 60 completions later (one alarm)', ({ from, to, sigma }) => {
    const rand = seeded(from + to);
    const warm = feed(emptyHistogram(), kind(from, sigma), 500, rand).h;
    expect(median(warm)).toBeGreaterThan(from * 0.9);
    expect(median(warm)).toBeLessThan(from * 1.1);
    const { h, alarmAt } = feed(warm, kind(to, sigma), 20, rand, { untilAlarm: true });
    expect(alarmAt).toBeDefined();
    expect(alarmAt!).toBeLessThanOrEqual(20);
    // rebuilt at once from the learned shape stretched to the new scale: scheduled from it (≥ minEvents),
    // its median already near the new one (from the ~10 completions of the alarm)
    expect(curveOf(h).events).toBeGreaterThanOrEqual(20);
    expect(Math.abs(median(h) - to)).toBeLessThan(0.2 * to);
    const after = feed(h, kind(to, sigma), 60, rand).h;
    expect(curveOf(after).events).toBeGreaterThanOrEqual(20);
    // within 10 %, or 2.5 standard errors of a median from the ~50 completions the decay keeps (σ 0.3: 13 %)
    const tolerance = Math.max(0.1, (2.5 * 1.2533 * sigma) / Math.sqrt(DECAY.samples));
    expect(Math.abs(median(after) - to)).toBeLessThan(tolerance * to);
    expect(after.drift?.alarms).toBe(1);
  });

  it('a small drift (+15 %) raises no alarm: decay follows it', () => {
    const rand = seeded(3);
    const warm = feed(emptyHistogram(), kind(16, 0.25), 500, rand).h;
    const { alarmAt } = feed(warm, kind(18.4, 0.25), 300, rand);
    expect(alarmAt).toBeUndefined();
  });

  it('censored samples (failed, cancelled) are folded but not scored', () => {
    const rand = seeded(4);
    const warm = feed(emptyHistogram(), kind(16, 0.25), 200, rand).h;
    let h = warm;
    for (let i = 0; i < 50; i++) h = learn(h, [{ kind: 'censored', s: 200 }], 5_000, DECAY);
    expect(h.drift?.alarms).toBe(0);
    expect(h.drift?.up).toBe(warm.drift?.up);
  });

  it('keeps its state in the stored form; a malformed state reads as none', () => {
    const rand = seeded(5);
    const { h } = feed(emptyHistogram(), kind(16, 0.25), 100, rand);
    const back = decodeHistogram(encodeHistogram(h));
    expect(back.drift).toEqual(h.drift);
    expect(back.drift!.recent.length).toBeLessThanOrEqual(DRIFT.keep);
    expect(decodeHistogram(JSON.stringify({ e: [1], c: [], d: { up: 'x' } })).drift).toBeUndefined();
    expect(decodeHistogram(JSON.stringify({ e: [1], c: [] })).drift).toBeUndefined();
  });
});
