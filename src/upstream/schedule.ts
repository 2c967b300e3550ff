// When to poll a task next: a pure function of what upstream just said, how old
// the watch is and a random draw, so every branch is testable without waiting.
// Two strategies (CONTRACT §5): `fixed`, every 3–6 s (slower for old tasks), and
// `adaptive`, which places polls where tasks of this kind end (see adaptiveDelayMs).
import { hazardAt, survivalAt, timeAfterDensityStep, timeWhenSurvival, binEdgeS, type Curve } from '../durations/histogram.js';

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
  /** since the watch was registered (the row's created_at) */
  ageMs: number;
  random: number; // [0, 1)
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
  /** of the tasks that onset gap holds, at most this share may end more than bodyGapS before its end */
  lateMass: number;
  /** completions needed before a kind is scheduled from its distribution */
  minEvents: number;
  /** past this survival the distribution knows too little: fixed cadence */
  tailSurvival: number;
}

/** Never two polls of one task closer than this (CONTRACT §5), nor further apart than MAX_GAP_MS (unscaled). */
export const MAX_GAP_MS = 60_000;

export function nextPollDelayMs(signal: PollSignal, t: PollTiming): number {
  const scale = t.scale ?? 1;
  const normal = fixedDelayMs(t.ageMs, t.random);
  switch (signal.kind) {
    case 'ok': {
      const learned = t.adaptive ? adaptiveDelayMs(t.adaptive, scale) : undefined;
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
 * the kind has too few completions behind it, upstream gave no created_at, or the task
 * has outlived what was learned (its tail is unknown, so it is polled as before).
 *
 * Works in the task's own age (now − created_at, in the same scaled seconds the
 * durations were learned in): a watch registered 40 s after submit starts
 * mid-distribution. With progress, the end it implies (age / progress, linear from
 * created_at) decides instead. Bounds: ≥ 3 s, ≤ 60 s, and ≤ bodyGapS while the gap
 * holds a real share of the remaining mass, so no task waits longer for its poll than
 * with the fixed cadence's longest gap at that age.
 */
export function adaptiveDelayMs(a: AdaptiveTiming, scale: number): number | undefined {
  const { curve, tuning } = a;
  if (a.taskAgeMs === null || !curve || curve.events < tuning.minEvents) return undefined;
  const minS = (BASE_MIN_MS / 1000) * scale;
  const maxS = (MAX_GAP_MS / 1000) * scale;
  const age = Math.max(0, a.taskAgeMs / 1000);
  const clamp = (gap: number) => Math.min(maxS, Math.max(minS, gap)) * 1000;
  if (a.progress !== null && a.progress >= PROGRESS_MIN && a.progress < 1) {
    // Poll just after the end progress implies; never sooner than the minimum gap.
    return clamp(age / a.progress - age + minS / 3);
  }
  const alive = survivalAt(curve, age);
  if (alive <= tuning.tailSurvival || age >= binEdgeS(curve.lastEventEdge)) return undefined;
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
  // Past the onset the lag ceiling applies to every gap: only the one gap that jumps to
  // where tasks of the kind start ending (nothing has ended yet) may be longer, and hold
  // up to bodyMass of them. Measured: letting later gaps skip where the learned
  // histogram is empty put the tail tasks — whose few samples leave holes — 20 s late,
  // the whole p99 (bench/README.md, adaptive).
  // (not stretched for old watches as the fixed cadence is: measured, that put the
  // 90 s video's p99 lag 20 % above fixed's — bench/adaptive-model.ts)
  const bodyS = tuning.bodyGapS * scale;
  if (gap > bodyS) {
    if (alive < 1 - tuning.bodyMass / 2) gap = bodyS;
    else {
      // the onset: the largest g ≥ bodyS whose gap holds ≤ bodyMass, else bodyS
      // and of those it holds, at most lateMass may end more than bodyS before it (their lag
      // would pass the ceiling): for a long kind the jump is long, and its early part is the mix's lag p99
      let until = timeWhenSurvival(curve, alive * (1 - tuning.bodyMass));
      const late = timeWhenSurvival(curve, alive * (1 - tuning.lateMass));
      if (until !== undefined && late !== undefined) until = Math.min(until, late + bodyS);
      gap = until === undefined ? bodyS : Math.max(bodyS, Math.min(gap, until - age));
    }
  }
  return clamp(gap);
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
