// When to poll a task next: a pure function of what upstream just said, how old
// the watch is and a random draw, so every branch is testable without waiting.
// Two strategies (CONTRACT §5): `fixed`, every 3–6 s (slower for old tasks), and
// `adaptive`, which places polls where tasks of this kind end (see adaptiveDelayMs).
import { hazardAt, survivalAt, survivalIntegral, timeAfterDensityStep, timeWhenSurvival, binEdgeS, type Curve } from '../durations/histogram.js';

export const FIRST_POLL_DELAY_MS = 2_000;
/** The contract's minimum between two polls of one task (× the poll scale). */
export const BASE_MIN_MS = 3_000;
export const BASE_SPREAD_MS = 3_000;
/** Tasks older than this start being polled less often, up to SLOWDOWN_MAX× by SLOWDOWN_RAMP_MS later. */
const SLOWDOWN_AFTER_MS = 60_000;
const SLOWDOWN_RAMP_MS = 600_000;
const SLOWDOWN_MAX = 5;
const ERROR_BACKOFF_BASE_MS = 5_000;
const ERROR_BACKOFF_MAX_MS = 60_000;
export const RETRY_AFTER_CAP_MS = 3_600_000;

export type PollSignal =
  | { kind: 'ok' } // pending / processing, or a 404/401 we are still tolerating
  | { kind: 'error'; streak: number } // 5xx, timeout, malformed body
  | { kind: 'rate_limited'; retryAfterMs: number | undefined; streak: number };

export interface PollTiming {
  /** since the watch was registered (the row's created_at), in real ms */
  ageMs: number;
  random: number; // [0, 1)
  /**
   * TASKHOOK_POLL_SCALE: a time-compressed run is the real one in its own time, so every
   * delay is × scale and the age the cadence reads is ÷ scale (a watch 30 s old at 0.5 is
   * a minute old: the fixed cadence's slowdown starts there, as it would at scale 1)
   */
  scale?: number;
  /** what the adaptive strategy needs; absent (TASKHOOK_POLL_STRATEGY=fixed, or no answer yet) → the fixed cadence */
  adaptive?: AdaptiveTiming | undefined;
}

export interface AdaptiveTiming {
  /** now − the task's created_at as upstream reported it (ms; null: upstream did not say) */
  taskAgeMs: number | null;
  /** upstream's progress 0–1 while processing, else null */
  progress: number | null;
  /** what was learned about this kind of task (undefined: nothing yet) */
  curve: Curve | undefined;
  tuning: AdaptiveTuning;
}

/** The one knob and the placement rule (src/durations/tuning.ts documents the defaults). */
export interface AdaptiveTuning {
  /**
   * How polls are placed through the learned distribution:
   * `sqrt-hazard` (Keller: density ∝ √hazard, `step` = the G increment between polls) or
   * `ladder` (Munford–Shahani: each interval ends with probability `step`).
   */
  placement: 'sqrt-hazard' | 'ladder' | 'threshold';
  step: number;
  /** longest gap while a task may plausibly end (s, unscaled): the lag ceiling */
  bodyGapS: number;
  /** a gap is "where tasks may end" when it holds more than this share of the remaining mass */
  bodyMass: number;
  /**
   * at most this share of a kind's tasks may end more than bodyGapS before the poll that
   * sees them (their lag passes the ceiling), all of it before the body (lateEdge)
   */
  lateMass: number;
  /**
   * what one poll is worth in lag (s, unscaled) when the onset poll's time is searched
   * (onsetSearch): expected lag + pollCost × expected polls is what is minimized
   */
  pollCost: number;
  /** completions needed before a kind is scheduled from its distribution */
  minEvents: number;
  /** past this survival the distribution knows too little: the fixed cadence, with no gap under bodyGapS */
  tailSurvival: number;
}

/** Never two polls of one task closer than this (CONTRACT §5), nor further apart than MAX_GAP_MS (unscaled). */
export const MAX_GAP_MS = 60_000;

export function nextPollDelayMs(signal: PollSignal, t: PollTiming): number {
  const scale = t.scale ?? 1;
  const normal = fixedDelayMs(t.ageMs / scale, t.random);
  switch (signal.kind) {
    case 'ok': {
      const learned = t.adaptive ? adaptiveDelayMs(t.adaptive, scale, normal * scale) : undefined;
      return Math.round(learned ?? normal * scale);
    }
    case 'error':
      return Math.round(errorBackoff(signal.streak, t.random) * scale);
    case 'rate_limited':
      if (signal.retryAfterMs === undefined) return Math.round(errorBackoff(signal.streak, t.random) * scale);
      return Math.round(Math.max(Math.min(signal.retryAfterMs, RETRY_AFTER_CAP_MS), normal * scale));
  }
}

/** The fixed cadence (unscaled ms): 3–6 s, stretched up to 5× for watches older than a minute. */
function fixedDelayMs(ageMs: number, random: number): number {
  return (BASE_MIN_MS + random * BASE_SPREAD_MS) * slowdown(ageMs);
}

const slowdown = (ageMs: number): number =>
  1 + Math.min(SLOWDOWN_MAX - 1, Math.max(0, ageMs - SLOWDOWN_AFTER_MS) / (SLOWDOWN_RAMP_MS / (SLOWDOWN_MAX - 1)));

/**
 * The adaptive delay (scaled ms), or undefined when the fixed cadence should decide:
 * the kind has too few completions behind it, or upstream gave no created_at. A task that
 * has outlived what was learned (its tail is unknown) gets the fixed cadence's delay
 * (`fixedMs`, scaled) but never less than the lag ceiling: there the fixed cadence's
 * 3–6 s spent more polls than the ceiling on the same tasks (bench/README.md, adaptive).
 *
 * Works in the task's own age (now − created_at, in the same scaled seconds the
 * durations were learned in): a watch registered 40 s after submit starts
 * mid-distribution. With progress, the end it implies (age / progress, linear from
 * created_at) decides instead. Bounds: ≥ 3 s, ≤ 60 s, and ≤ bodyGapS while the gap
 * holds a real share of the remaining mass, so no task waits longer for its poll than
 * with the fixed cadence's longest gap at that age.
 */
export function adaptiveDelayMs(a: AdaptiveTiming, scale: number, fixedMs = 0, search = true): number | undefined {
  const { curve, tuning } = a;
  if (a.taskAgeMs === null || !curve || curve.events < tuning.minEvents) return undefined;
  const minS = (BASE_MIN_MS / 1000) * scale;
  const maxS = (MAX_GAP_MS / 1000) * scale;
  const bodyS = tuning.bodyGapS * scale;
  const age = Math.max(0, a.taskAgeMs / 1000);
  const clamp = (gap: number) => Math.min(maxS, Math.max(minS, gap)) * 1000;
  if (a.progress !== null && a.progress >= PROGRESS_MIN && a.progress < 1) {
    // Poll just after the end progress implies; never sooner than the minimum gap.
    return clamp(age / a.progress - age + minS / 3);
  }
  const alive = survivalAt(curve, age);
  if (alive <= tuning.tailSurvival || age >= binEdgeS(curve.lastEventEdge)) return clamp(Math.max(bodyS, fixedMs / 1000));
  const next =
    tuning.placement === 'ladder'
      ? timeWhenSurvival(curve, alive * (1 - tuning.step))
      : tuning.placement === 'threshold'
        ? hazardAt(curve, age) * scale >= tuning.step
          ? age + minS
          : alive >= 1 - tuning.bodyMass / 2
            ? undefined
            : age + tuning.bodyGapS * scale
        : timeAfterDensityStep(curve, age, tuning.step * Math.sqrt(scale));
  let gap = next === undefined ? maxS : next - age;
  // Past the onset the lag ceiling applies to every gap: only the gaps that jump to where
  // tasks of the kind start ending (while fewer than bodyMass / 2 have) may be longer.
  // Measured: letting later gaps skip where the learned histogram is empty put the tail
  // tasks — whose few samples leave holes — 20 s late, the whole p99 (bench/README.md,
  // adaptive). (Not stretched for old watches as the fixed cadence is: measured, that put
  // the 90 s video's p99 lag 20 % above fixed's — bench/adaptive-model.ts.)
  const onset = alive >= 1 - tuning.bodyMass / 2;
  if (gap > bodyS) {
    if (!onset) gap = bodyS;
    else {
      // the onset: the largest g ≥ bodyS whose gap holds ≤ bodyMass, else bodyS, ending
      // no later than lateMass allows (lateEdge)
      let until = timeWhenSurvival(curve, alive * (1 - tuning.bodyMass));
      const late = lateEdge(curve, tuning.lateMass);
      if (until !== undefined && late !== undefined) until = Math.min(until, Math.max(late, age) + bodyS);
      gap = until === undefined ? bodyS : Math.max(bodyS, Math.min(gap, until - age));
    }
  }
  if (search && onset) gap = onsetSearch(a, scale, age, alive, gap);
  return clamp(gap);
}

/**
 * The time up to which a kind's tasks may end more than the lag ceiling before the poll
 * that sees them: the lateMass point of the whole distribution (so the share is counted
 * once per task, however many gaps its onset takes), or earlier where a log-normal
 * through the 10 % and 50 % points puts it. Measured (bench/adaptive-replay.ts, lag 5.7 s,
 * lateMass 1 %): with each onset gap counting its own 1 % of what was left, 2.5 % of the
 * 90 s video ended more than the ceiling before their poll — most of the mix's lag p99;
 * counted once but from the histogram alone, 1.4 % (the 1 % point of ~50 samples sits
 * near the earliest of them, later than the truth); both, 0.8 %.
 */
function lateEdge(curve: Curve, lateMass: number): number | undefined {
  // a function of the curve alone (rebuilt on every cache refresh): computed once per curve
  const memo = lateEdges.get(curve);
  if (memo && memo.lateMass === lateMass) return memo.at;
  const at = lateEdgeOf(curve, lateMass);
  lateEdges.set(curve, { lateMass, at });
  return at;
}

const lateEdges = new WeakMap<Curve, { lateMass: number; at: number | undefined }>();

function lateEdgeOf(curve: Curve, lateMass: number): number | undefined {
  const late = timeWhenSurvival(curve, 1 - lateMass);
  const q10 = timeWhenSurvival(curve, 0.9);
  const q50 = timeWhenSurvival(curve, 0.5);
  if (late === undefined || q10 === undefined || q50 === undefined || !(q10 > 0) || !(q50 > q10)) return late;
  return Math.min(late, q50 * (q10 / q50) ** (upperPoint(lateMass) / Z10));
}

/** The standard normal's 90 % point. */
const Z10 = 1.2815515655446004;

/**
 * −Φ⁻¹(p) for 0 < p < 0.5, the standard normal's (1 − p) point: Acklam's rational
 * approximation below 0.02425 (|error| < 1.2e-9), Abramowitz–Stegun 26.2.23 above (< 4.5e-4).
 */
export function upperPoint(p: number): number {
  const q = Math.sqrt(-2 * Math.log(p));
  if (p < 0.02425) {
    return (
      -(((((-7.784894002430293e-3 * q - 3.223964580411365e-1) * q - 2.400758277161838) * q - 2.549732539343734) * q + 4.374664141464968) * q + 2.938163982698783) /
      ((((7.784695709041462e-3 * q + 3.224671290700398e-1) * q + 2.445134137142996) * q + 3.754408661907416) * q + 1)
    );
  }
  return q - (2.515517 + 0.802853 * q + 0.010328 * q * q) / (1 + 1.432788 * q + 0.189269 * q * q + 0.001308 * q * q * q);
}

/** The onset search's horizon: where this share of the tasks alive now is left. */
const SEARCH_UNTIL = 0.05;
/** Onset times tried after the rule's own, evenly up to the latest allowed. */
const SEARCH_STEPS = 12;

/**
 * Where the poll before the body lands, searched: its time decides where the polls after
 * it fall against the density (their phase). Tried from `gap` (the rule's) to the latest
 * lateMass allows, each followed by the schedule from there, scored by expected lag +
 * pollCost × expected polls over the tasks ending before the 95 % point. Measured
 * (bench/adaptive-replay.ts): at the 3 s knob the 7 s voice kind was polled at 5.8 s and
 * 8.8 s, after most of it had ended (its lag p50 1.9 s at 3 s gaps); searched, at 7.3 s
 * and 10.3 s.
 */
function onsetSearch(a: AdaptiveTiming, scale: number, age: number, alive: number, gap: number): number {
  const curve = a.curve!;
  const bodyS = a.tuning.bodyGapS * scale;
  const late = lateEdge(curve, a.tuning.lateMass);
  const hi = Math.min((MAX_GAP_MS / 1000) * scale, late === undefined ? gap : Math.max(late, age) + bodyS - age);
  if (!(hi > gap)) return gap;
  const H = Math.min(timeWhenSurvival(curve, alive * SEARCH_UNTIL) ?? Infinity, age + hi + 4 * bodyS);
  const cost = a.tuning.pollCost * scale;
  let best = gap;
  let bestScore = onsetScore(a, scale, age, age + gap, H, cost);
  for (let j = 1; j <= SEARCH_STEPS; j++) {
    const g = gap + ((hi - gap) * j) / SEARCH_STEPS;
    const s = onsetScore(a, scale, age, age + g, H, cost);
    if (s < bestScore) {
      bestScore = s;
      best = g;
    }
  }
  return best;
}

/**
 * Over the tasks alive at `age` that end before H: expected lag + cost × expected polls
 * (both × the share alive), the next poll at `first` and the (unsearched) schedule after
 * it. A task ending in (lo, hi] waits for the poll at p ≥ hi: ∫ (p − u) f(u) du =
 * (p − lo) S(lo) − (p − hi) S(hi) − ∫ S; the poll at p is asked if alive at lo.
 */
function onsetScore(a: AdaptiveTiming, scale: number, age: number, first: number, H: number, cost: number): number {
  const c = a.curve!;
  let lo = age;
  let p = first;
  let total = 0;
  for (let k = 0; lo < H && k < 60; k++) {
    const hi = Math.min(p, H);
    const sLo = survivalAt(c, lo);
    total += cost * sLo + (p - lo) * sLo - (p - hi) * survivalAt(c, hi) - (survivalIntegral(c, hi) - survivalIntegral(c, lo));
    lo = p;
    p += (adaptiveDelayMs({ ...a, taskAgeMs: p * 1000 }, scale, 0, false) ?? a.tuning.bodyGapS * scale * 1000) / 1000;
  }
  return total;
}

/** Progress below this says too little about the end (a task that just started). */
const PROGRESS_MIN = 0.05;

function errorBackoff(streak: number, random: number): number {
  const raw = Math.min(ERROR_BACKOFF_MAX_MS, ERROR_BACKOFF_BASE_MS * 2 ** Math.max(0, streak - 1));
  return raw * (0.8 + 0.4 * random);
}

// RFC 9110 §5.6.7 HTTP-date: IMF-fixdate, obsolete RFC 850 and asctime forms. Date.parse
// alone also reads garbage ("soon 5", "x 2030") as some date.
const HTTP_DATE =
  /^(?:[A-Za-z]{3},\s+\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}:\d{2}\s+GMT|[A-Za-z]{6,9},\s+\d{1,2}-[A-Za-z]{3}-\d{2}\s+\d{2}:\d{2}:\d{2}\s+GMT|[A-Za-z]{3}\s+[A-Za-z]{3}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\s+\d{4})$/;

/**
 * Retry-After as delta-seconds or an HTTP date; anything else is ignored (undefined).
 * Capped at an hour so a hostile or broken server can't park work for days.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const trimmed = v.trim();
  let ms: number | undefined;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else if (HTTP_DATE.test(trimmed)) {
    // asctime carries no zone but means GMT; Date.parse would read it as local time.
    const at = Date.parse(/GMT$/.test(trimmed) ? trimmed : `${trimmed} GMT`);
    if (!Number.isNaN(at)) ms = Math.max(0, at - nowMs);
  }
  return ms === undefined ? undefined : Math.min(ms, RETRY_AFTER_CAP_MS);
}
