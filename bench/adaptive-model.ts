// Offline model of the poll placements (no HTTP, no database): the same durations,
// polled by the fixed cadence and by each adaptive placement, counting polls and the
// lag between a task's end and the poll that sees it. Used to pick the placement and
// the knob (bench/README.md quotes its output); `npm run bench -- --adaptive` measures
// the real thing end to end.
import { curveOf, emptyHistogram, fold, type Curve, type Sample } from '../src/durations/histogram.js';
import { FIRST_POLL_DELAY_MS, nextPollDelayMs, type AdaptiveTuning } from '../src/upstream/schedule.js';

export interface ModelKind {
  name: string;
  medianS: number;
  sigma: number;
  share: number;
}

/** Seeded PRNG (mulberry32): the same tasks for every strategy. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function lognormal(rand: () => number, median: number, sigma: number): number {
  const u = Math.max(1e-12, rand());
  const v = rand();
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}

/** A duration of `k`, with a long tail: 3 % of tasks take 2–5× as long. */
export function drawDuration(rand: () => number, k: ModelKind): number {
  const d = lognormal(rand, k.medianS, k.sigma);
  return rand() < 0.03 ? d * (2 + 3 * rand()) : d;
}

export function learnedCurve(k: ModelKind, n: number, seed: number): Curve {
  const rand = seeded(seed);
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) samples.push({ kind: 'completed', s: drawDuration(rand, k) });
  return curveOf(fold(emptyHistogram(), samples, 0, { samples: 1e9, halfLifeMs: 1e15 }));
}

export interface Run {
  polls: number;
  lagsS: number[];
}

/** Polls one task (ends at `durationS` after creation, registered `registerS` after) until a poll sees it. */
export function pollOne(durationS: number, registerS: number, rand: () => number, curve: Curve | undefined, tuning: AdaptiveTuning | undefined) {
  let t = registerS + FIRST_POLL_DELAY_MS / 1000;
  let polls = 0;
  for (;;) {
    polls++;
    if (t >= durationS) return { polls, lagS: t - durationS };
    const ageMs = (t - registerS) * 1000;
    const delay = nextPollDelayMs(
      { kind: 'ok' },
      { ageMs, random: rand(), adaptive: tuning ? { taskAgeMs: t * 1000, progress: null, curve, tuning } : undefined },
    );
    t += delay / 1000;
  }
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
