// The adaptive strategy's constants, named once with why (measured with
// bench/adaptive-model.ts on the bench's mix; bench/README.md quotes the sweep).
import type { AdaptiveTuning } from '../upstream/schedule.js';
import type { Decay } from './histogram.js';

/**
 * Default of TASKHOOK_POLL_LAG_S, the one knob: the longest gap while a task may be ending.
 * 6 s, the fixed cadence's own longest gap: the mix's lag p99 follows it (live, 6.5 s put
 * it at 1.15× fixed's; bench/README.md).
 */
export const DEFAULT_LAG_S = 5.7;

/**
 * The tuning for a lag ceiling of `lagS` seconds. Keller's √hazard placement, with
 * its step tied to the ceiling (step = lagS / 3.25), so the one knob moves both: at
 * 6 s the model spends 0.61× the fixed cadence's requests at 0.92× its lag p50 and
 * 0.99× its p99 (6.5 s: 0.585×, 0.97×, 1.07×); at 3 s, 0.90× the requests for 0.67× the
 * lag p50
 * (bench/adaptive-model.ts; bench/README.md quotes the sweep).
 */
export function tuningFor(lagS: number): AdaptiveTuning {
  const step = lagS / 3.25;
  return {
    placement: 'sqrt-hazard',
    step,
    bodyGapS: lagS,
    // the gap that jumps to where tasks start ending may hold 15 % of what is left, of
    // which at most 1 % may end more than lagS before that poll. Measured (model, lag 6.5,
    // bench/README.md): 4 % alone → 0.62× requests; 10 % alone → 0.58× but the 90 s video's
    // p99 lag 15 s (its jump is ~60 s long: the live run's mix p99 1.17×); 15 % with the
    // 1 % rule → 0.585× at lag p50 0.97×, p99 1.07×, that kind's p99 10 s. (Where the
    // onset gap is short — voice, image — only the 15 % binds.)
    bodyMass: 0.15,
    lateMass: Math.min(0.03, lagS / 380),
    pollCost: step ** 2 / 4,
    // below 20 completions a kind is polled on the fixed cadence
    minEvents: 20,
    // the last 1 % of the learned distribution is its least known part: fixed cadence there
    tailSurvival: 0.01,
  };
}

/**
 * Old samples fade both ways: each new completion of a kind multiplies the old weight by
 * (1 − 1/50) — a kind finishing ~10 tasks a minute follows a shift within ~5 minutes,
 * a busier one sooner — and every 30 minutes halve it, so a quiet kind forgets too (and
 * falls back to the fixed cadence once fewer than minEvents are left). Measured (bench
 * --adaptive, bench/README.md): 1/100 was too slow to follow the doubled image kind; a
 * 5 min half-life starved the rarer 90 s video kind below minEvents (requests 0.98× fixed).
 */
export const DECAY: Decay = { samples: 50, halfLifeMs: 30 * 60_000 };

/**
 * The timings of learning under TASKHOOK_POLL_SCALE (a time-compressed run learns as
 * often, in its own time, as a real one): the fold and refresh intervals and the decay's
 * half-life shrink with the scale (never grow), the settle wait stays ≥ 0.5 s (it covers
 * real commits).
 */
export function learningTimes(pollScale = 1) {
  const f = Math.min(1, pollScale);
  return {
    learnEveryMs: LEARN_EVERY_MS * f,
    settleMs: Math.max(500, LEARN_SETTLE_MS * f),
    refreshMs: CACHE_REFRESH_MS * f,
    decay: { samples: DECAY.samples, halfLifeMs: DECAY.halfLifeMs * f } satisfies Decay,
  };
}

/** The learner folds what finished since its watermark this often (ms). */
export const LEARN_EVERY_MS = 5_000;
/** Rows read per fold; the rest wait for the next round. */
export const LEARN_BATCH = 5_000;
/** Terminal snapshots younger than this are left for the next round (transactions still committing). */
export const LEARN_SETTLE_MS = 2_000;
/** Every process re-reads the learned distributions this often (ms). */
export const CACHE_REFRESH_MS = 5_000;
/** At most this many kinds per tenant are learned (upstream strings are not ours to bound). */
export const MAX_KINDS_PER_TENANT = 200;
/** Kind fields longer than this are not learned. */
export const MAX_KIND_FIELD = 100;
