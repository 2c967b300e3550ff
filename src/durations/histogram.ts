// How long one kind of task takes: a fixed log-spaced histogram of
// `completed_at − created_at`, with right-censored observations kept apart so the
// estimate stays honest (a life table: Kaplan–Meier over bins). Pure: folding,
// decay and every question asked of it take their inputs, nothing else.
//
// Bins: 8 per octave from 1/16 s to 2^18 s (~3 days), 176 of them. 9 % wide at any
// scale, so a 7 s voice task and a 90 s video are resolved alike (and so are the
// same tasks in a time-compressed run, TASKHOOK_POLL_SCALE).

import type { Drift } from './drift.js';

export const BINS_PER_OCTAVE = 8;
export const BIN_LO_S = 1 / 16;
export const BIN_COUNT = 8 * 22;
const RATIO = 2 ** (1 / BINS_PER_OCTAVE);

/** The edges in seconds, computed once (the schedule reads them on every poll). */
const EDGES = Float64Array.from({ length: BIN_COUNT + 1 }, (_, b) => BIN_LO_S * RATIO ** b);

/** Seconds at the lower edge of bin b (b = BIN_COUNT is the upper edge of the last). */
export const binEdgeS = (b: number): number => (b >= 0 && b <= BIN_COUNT && Number.isInteger(b) ? EDGES[b]! : BIN_LO_S * RATIO ** b);

export function binOf(seconds: number): number {
  if (!(seconds > BIN_LO_S)) return 0;
  const b = Math.floor(Math.log2(seconds / BIN_LO_S) * BINS_PER_OCTAVE);
  return Math.min(BIN_COUNT - 1, Math.max(0, b));
}

/** Decayed weights per bin: `events` ended (completed) there, `censored` were known to run at least that long. */
export interface Histogram {
  events: number[];
  censored: number[];
  /** the change detector's state (drift.ts), stored alongside */
  drift?: Drift;
}

export const emptyHistogram = (): Histogram => ({ events: new Array(BIN_COUNT).fill(0), censored: new Array(BIN_COUNT).fill(0) });

/**
 * One observation of a task's duration, in seconds since its `created_at`.
 * - `completed`: it completed at `s` (exactly, from completed_at), or somewhere in
 *   `(lo, s]` when only the poll that saw it is known (interval-censored: spread evenly).
 * - `censored`: it was still running at `s` and then left for another reason (failed,
 *   cancelled, the watch expired): says only "longer than s" about completion.
 */
export type Sample = ({ kind: 'completed'; s: number; lo?: number } | { kind: 'censored'; s: number }) & {
  /** how long before the fold it was observed (ms): it enters already faded by that much */
  agoMs?: number;
};

/** How fast old samples fade (see DECAY in learner config). */
export interface Decay {
  /** the memory in samples: each new one multiplies the old weight by (1 − 1/n) */
  samples: number;
  /** and the old weight halves every this many ms, whatever the traffic */
  halfLifeMs: number;
}

/** Old weights × the decay for `samples.length` new ones arriving `elapsedMs` after the last fold, then the samples added. */
export function fold(h: Histogram, samples: readonly Sample[], elapsedMs: number, decay: Decay): Histogram {
  const keep = (1 - 1 / decay.samples) ** samples.length * 0.5 ** (Math.max(0, elapsedMs) / decay.halfLifeMs);
  const events = h.events.map((w) => w * keep);
  const censored = h.censored.map((w) => w * keep);
  for (const x of samples) {
    if (!Number.isFinite(x.s) || x.s < 0) continue;
    const w = 0.5 ** (Math.max(0, x.agoMs ?? 0) / decay.halfLifeMs);
    if (x.kind === 'censored') {
      censored[binOf(x.s)]! += w;
    } else if (x.lo !== undefined && x.lo < x.s) {
      const a = binOf(Math.max(0, x.lo));
      const b = binOf(x.s);
      for (let i = a; i <= b; i++) events[i]! += w / (b - a + 1);
    } else {
      events[binOf(x.s)]! += w;
    }
  }
  return { events: events.map(round), censored: censored.map(round) };
}

// 6 significant digits are plenty for weights and keep the stored JSON small.
const round = (w: number): number => (w < 1e-6 ? 0 : Number(w.toPrecision(6)));

export const totalWeight = (h: Histogram): number => h.events.reduce((a, b) => a + b, 0) + h.censored.reduce((a, b) => a + b, 0);
export const eventWeight = (h: Histogram): number => h.events.reduce((a, b) => a + b, 0);

/**
 * The survival curve S(t) = P(not completed by t) at every bin edge, from the life
 * table: hazard in bin b = events_b / (at risk at b − censored_b / 2). Past the last
 * event S stays where it got (the tail is unknown; the schedule falls back there).
 * Computed once per cache refresh, never per poll.
 */
export interface Curve {
  /** S at binEdgeS(b), b = 0..BIN_COUNT; non-increasing, S[0] = 1 */
  S: number[];
  /** the decayed number of completions behind it */
  events: number;
  /** edge index just past the last bin with any completion */
  lastEventEdge: number;
  /**
   * ∫₀ᵗ √h(u) du at every edge (h the hazard, constant within a bin): Keller's
   * checking density. Equal steps of G place polls ∝ √hazard.
   */
  G: number[];
  /** ∫₀ᵗ S(u) du at every edge (S linear within a bin): expected lags without sampling */
  I: number[];
}

export function curveOf(h: Histogram): Curve {
  const S = new Array<number>(BIN_COUNT + 1);
  let atRisk = totalWeight(h);
  let s = 1;
  let lastEventEdge = 0;
  const G = new Array<number>(BIN_COUNT + 1);
  const I = new Array<number>(BIN_COUNT + 1);
  S[0] = 1;
  G[0] = 0;
  I[0] = 0;
  for (let b = 0; b < BIN_COUNT; b++) {
    const e = h.events[b] ?? 0;
    const c = h.censored[b] ?? 0;
    const r = atRisk - c / 2;
    const before = s;
    if (e > 0 && r > 0) {
      s *= Math.max(0, 1 - e / r);
      lastEventEdge = b + 1;
    }
    S[b + 1] = s;
    // cumulative hazard of the bin, capped where S reaches 0 (h infinite there)
    const H = before > 0 ? Math.min(MAX_BIN_HAZARD, -Math.log(Math.max(s, 1e-300) / before)) : MAX_BIN_HAZARD;
    const width = binEdgeS(b + 1) - (b === 0 ? 0 : binEdgeS(b));
    G[b + 1] = G[b]! + Math.sqrt(H * width);
    I[b + 1] = I[b]! + (width * (before + s)) / 2;
    atRisk -= e + c;
  }
  return { S, events: eventWeight(h), lastEventEdge, G, I };
}

const MAX_BIN_HAZARD = 20;

/** Seconds t where the Keller density has gone `step` past its value at `from`: G(t) = G(from) + step. */
export function timeAfterDensityStep(c: Curve, from: number, step: number): number | undefined {
  const target = cumulativeAt(c.G, from) + step;
  const G = c.G;
  if (G[BIN_COUNT]! < target) return undefined;
  let lo = 0;
  let hi = BIN_COUNT;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (G[mid]! < target) lo = mid;
    else hi = mid;
  }
  const a = lo === 0 ? 0 : binEdgeS(lo);
  const b = binEdgeS(hi);
  const span = G[hi]! - G[lo]!;
  return span > 0 ? a + (b - a) * ((target - G[lo]!) / span) : b;
}

/** A cumulative table over the edges (S or G) read at t seconds, linear within a bin. */
function cumulativeAt(T: number[], t: number): number {
  if (!(t >= binEdgeS(1))) return T[0]! + (T[1]! - T[0]!) * (Math.max(0, t) / binEdgeS(1));
  const b = Math.floor(Math.log2(t / BIN_LO_S) * BINS_PER_OCTAVE);
  if (b >= BIN_COUNT) return T[BIN_COUNT]!;
  const lo = binEdgeS(b);
  const hi = binEdgeS(b + 1);
  return T[b]! + (T[b + 1]! - T[b]!) * ((t - lo) / (hi - lo));
}

/** The hazard (1/s) of the bin holding t: −ln(S_b+1 / S_b) / its width (0 where nothing ends, capped where S reaches 0). */
export function hazardAt(c: Curve, t: number): number {
  const b = binOf(t);
  const before = c.S[b]!;
  if (!(before > 0)) return MAX_BIN_HAZARD;
  const after = c.S[b + 1]!;
  const width = binEdgeS(b + 1) - (b === 0 ? 0 : binEdgeS(b));
  return Math.min(MAX_BIN_HAZARD, -Math.log(Math.max(after, 1e-300) / before)) / width;
}

/** ∫₀ᵗ S(u) du (seconds), exact for S linear within each bin. */
export function survivalIntegral(c: Curve, t: number): number {
  if (!(t > 0)) return 0;
  const b = t < binEdgeS(1) ? 0 : Math.floor(Math.log2(t / BIN_LO_S) * BINS_PER_OCTAVE);
  if (b >= BIN_COUNT) return c.I[BIN_COUNT]! + (t - binEdgeS(BIN_COUNT)) * c.S[BIN_COUNT]!;
  const lo = b === 0 ? 0 : binEdgeS(b);
  const w = binEdgeS(b + 1) - lo;
  const x = Math.min(w, t - lo);
  return c.I[b]! + x * c.S[b]! + ((c.S[b + 1]! - c.S[b]!) * x * x) / (2 * w);
}

/** S(t) for t in seconds, linear between edges (uniform density within a bin). */
export function survivalAt(c: Curve, t: number): number {
  // bin 0 reaches down to 0 s (binOf puts everything shorter there)
  return cumulativeAt(c.S, t);
}

/**
 * The earliest t (seconds) with S(t) ≤ target, or undefined when the curve never gets
 * that low (past what was ever seen end). Binary search over the edges, then linear.
 */
export function timeWhenSurvival(c: Curve, target: number): number | undefined {
  const S = c.S;
  if (target >= 1) return 0;
  if (S[BIN_COUNT]! > target) return undefined;
  let lo = 0;
  let hi = BIN_COUNT;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (S[mid]! > target) lo = mid;
    else hi = mid;
  }
  // S[lo] > target ≥ S[hi]
  const a = lo === 0 ? 0 : binEdgeS(lo);
  const b = binEdgeS(hi);
  const f = (S[lo]! - target) / (S[lo]! - S[hi]!);
  return a + (b - a) * f;
}

/** The histogram as stored (task_durations.histogram): dense arrays, trailing zeros trimmed. */
export function encodeHistogram(h: Histogram): string {
  const trim = (xs: number[]) => {
    let n = xs.length;
    while (n > 0 && xs[n - 1] === 0) n--;
    return xs.slice(0, n);
  };
  return JSON.stringify(h.drift ? { e: trim(h.events), c: trim(h.censored), d: h.drift } : { e: trim(h.events), c: trim(h.censored) });
}

/** The stored form back; anything malformed reads as empty (a bad row never stops polling). */
export function decodeHistogram(v: unknown): Histogram {
  const h = emptyHistogram();
  const o = (typeof v === 'string' ? safeParse(v) : v) as { e?: unknown; c?: unknown; d?: unknown } | null;
  const fill = (into: number[], xs: unknown) => {
    if (!Array.isArray(xs)) return;
    for (let i = 0; i < Math.min(xs.length, BIN_COUNT); i++) {
      const x = xs[i];
      into[i] = typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : 0;
    }
  };
  if (o && typeof o === 'object') {
    fill(h.events, o.e);
    fill(h.censored, o.c);
    const d = decodeDrift(o.d);
    if (d) h.drift = d;
  }
  return h;
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/** The stored detector state, or undefined when absent or malformed (it then starts afresh). */
function decodeDrift(v: unknown): Drift | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const d = v as Record<string, unknown>;
  if (!finite(d.up) || !finite(d.down) || !finite(d.runUp) || !finite(d.runDown) || !finite(d.alarms) || !Array.isArray(d.recent)) return undefined;
  const recent = d.recent.filter(finite).slice(-64);
  return { up: d.up, down: d.down, runUp: d.runUp, runDown: d.runDown, alarms: d.alarms, recent };
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
