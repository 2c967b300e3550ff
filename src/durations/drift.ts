// Change detection for a kind's durations: a kind that suddenly takes twice as long (a
// new model version, an overloaded upstream) is followed within a minute or two instead
// of the many half-lives decay alone would need. Pure.
//
// Each new completion is scored against what was learned before it: u = F(s), its
// quantile under the learned distribution. While nothing changes u is uniform on (0, 1);
// after a shift it piles up near 1 (slower) or 0 (faster). Two one-sided CUSUMs (Page)
// add up u − ½ beyond a slack k; when either reaches h, the learned shape is stretched
// by the ratio of the alarm's completions' median to the learned median, at half its
// weight, and those completions are added: a kind that became uniformly slower or
// faster is scheduled from its new scale at once, and new completions correct the rest.
// Measured (bench/adaptive-model.ts --shift, the image kind ×2): requests and lag back
// within 10 % of the new optimum 60 s after the shift at 18 completions a minute, 120 s
// at 9; forgetting instead (old × 0.05, the fixed cadence until 20 new completions)
// took 180 s and 330 s.
import { BIN_COUNT, BINS_PER_OCTAVE, curveOf, emptyHistogram, fold, survivalAt, timeWhenSurvival, type Curve, type Decay, type Histogram, type Sample } from './histogram.js';

/** The detector's state, stored with the histogram (task_durations.histogram, key `d`). */
export interface Drift {
  /** the CUSUMs: evidence that tasks now end later (`up`) / sooner (`down`) than learned */
  up: number;
  down: number;
  /** the latest completions (seconds), newest last, at most KEEP */
  recent: number[];
  /** how many of the latest completions each CUSUM has been above 0 for (what a rebuild keeps) */
  runUp: number;
  runDown: number;
  /** alarms so far (for tests and the log) */
  alarms: number;
}

export const DRIFT = {
  /** slack per sample: a uniform u adds −k on average, a u near 1 adds ½ − k */
  k: 0.15,
  /**
   * alarm threshold: ~8 completions in a row near the learned tail's end (a doubling)
   * set it off. Measured (test/duration-drift.test.ts): no alarm in
   * 120,000 completions of four stable kinds; a doubling or halving caught after 7–18.
   * (k 0.25 missed a third of the doublings: the new completions folded in dilute the
   * scores, u ≈ 0.85 after a few.)
   */
  h: 2.5,
  /** completions remembered */
  keep: 24,
  /** of them, the latest this many of the climb are what a rebuild is made from */
  since: 8,
  /** what is left of the old weights after an alarm */
  forget: 0.05,
  /**
   * On an alarm, keep the learned shape stretched by the ratio of the alarm's completions'
   * median to the learned one (× RESCALE_WEIGHT of its weight) instead of forgetting it:
   * a kind that gets uniformly slower or faster — the usual shift — is scheduled from
   * its new scale at once, tail included, and the new completions correct the rest.
   */
  rescale: true,
  rescaleWeight: 0.5,
  /** below this many learned completions there is nothing to test against */
  minEvents: 20,
} as const;

export const emptyDrift = (): Drift => ({ up: 0, down: 0, recent: [], runUp: 0, runDown: 0, alarms: 0 });

const NO_DECAY: Decay = { samples: 1e12, halfLifeMs: 1e15 };
const scaled = (h: Histogram, f: number): Histogram => ({ events: h.events.map((w) => w * f), censored: h.censored.map((w) => w * f), drift: h.drift });

/** The old histogram's weights moved by the log-ratio of medians (8 bins an octave), × rescaleWeight. */
function rescaled(old: Histogram, curve: Curve, kept: readonly Sample[]): Histogram {
  const learned = timeWhenSurvival(curve, 0.5);
  const xs = kept.map((x) => x.s).sort((a, b) => a - b);
  const recent = xs.length ? (xs[(xs.length - 1) >> 1]! + xs[xs.length >> 1]!) / 2 : undefined;
  if (!learned || !recent || !(recent > 0)) return scaled(old, DRIFT.forget);
  const by = Math.round(Math.log2(recent / learned) * BINS_PER_OCTAVE);
  const move = (ws: number[]) => ws.map((_, b) => (b - by >= 0 && b - by < BIN_COUNT ? ws[b - by]! : 0) * DRIFT.rescaleWeight);
  return { events: move(old.events), censored: move(old.censored) };
}

/** The point a completion is scored at: exact, or the middle of the interval it is known to lie in. */
const pointOf = (x: Sample): number => (x.kind === 'completed' && x.lo !== undefined && x.lo < x.s ? (x.lo + x.s) / 2 : x.s);

/**
 * fold() with change detection: the samples (in the order they were observed) are folded
 * as usual; each completion is first scored against the curve learned before this batch.
 * On an alarm the histogram becomes old × FORGET plus the completions the alarm was
 * made of, and the rest of the batch is folded on top.
 */
export function learn(h: Histogram, samples: readonly Sample[], elapsedMs: number, decay: Decay): Histogram {
  const d: Drift = h.drift ? { ...h.drift, recent: [...h.drift.recent] } : emptyDrift();
  let curve: Curve | undefined = curveOf(h);
  if (curve.events < DRIFT.minEvents) curve = undefined;
  let start = 0;
  let base = h;
  let elapsed = elapsedMs;
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i]!;
    if (x.kind !== 'completed' || !Number.isFinite(x.s) || x.s < 0) continue;
    const s = pointOf(x);
    d.recent.push(Number(s.toPrecision(5)));
    if (d.recent.length > DRIFT.keep) d.recent.shift();
    if (!curve) continue;
    const u = 1 - survivalAt(curve, s);
    const up = Math.max(0, d.up + u - 0.5 - DRIFT.k);
    const down = Math.max(0, d.down + 0.5 - u - DRIFT.k);
    d.runUp = up > 0 ? d.runUp + 1 : 0;
    d.runDown = down > 0 ? d.runDown + 1 : 0;
    d.up = up;
    d.down = down;
    if (up >= DRIFT.h || down >= DRIFT.h) {
      // rebuild: the old, nearly forgotten, plus the completions of the climb
      const run = up >= DRIFT.h ? d.runUp : d.runDown;
      // (the climb may have begun on old completions that happened to score high: its last
      // `since` are the ones surely after the change — a doubling raises h in ~8)
      const kept = d.recent.slice(-Math.min(run, DRIFT.since)).map((t): Sample => ({ kind: 'completed', s: t }));
      const old = fold(base, [], elapsed, decay);
      base = fold(DRIFT.rescale ? rescaled(old, curve, kept) : scaled(old, DRIFT.forget), kept, 0, NO_DECAY);
      elapsed = 0;
      start = i + 1;
      Object.assign(d, { up: 0, down: 0, runUp: 0, runDown: 0, recent: [] });
      d.alarms++;
      // nothing to test against until the kind has enough completions again
      curve = undefined;
    }
  }
  // (a batch's completions before an alarm are in it as `kept` when they were part of the climb;
  // those before the climb went with the old weights)
  const out = fold(base, samples.slice(start), elapsed, decay);
  out.drift = { ...d, up: Number(d.up.toFixed(4)), down: Number(d.down.toFixed(4)) };
  return out;
}
