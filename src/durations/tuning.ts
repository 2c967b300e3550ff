// The adaptive strategy's constants, named once with why (measured with
// bench/adaptive-model.ts and bench/adaptive-replay.ts on the bench's mix; bench/README.md
// quotes the sweeps and the live runs).
import type { AdaptiveTuning } from '../upstream/schedule.js';
import type { Decay } from './histogram.js';

/**
 * Default of TASKHOOK_POLL_LAG_S, the one knob: the longest gap while a task may be ending.
 * The mix's lag p99 follows it (≈ the ceiling + delivery). Measured against the fixed
 * cadence as it runs at scale 1 (since round 3b a compressed run slows old watches down at
 * their age in its own time; before, the bench's fixed baseline slowed down only past
 * 60/scale s, which flattered adaptive's request ratio by ~0.02): the replay of the bench's
 * run (bench/adaptive-replay.ts) at 6 s 0.593× the requests, lag p50 0.93×, p99 0.99×
 * (24 other task sets: 0.583×, 0.96×, 0.98×); at 5.7 s 0.614×, 0.89×, 0.94× — over the
 * 0.6× line, so 6 s (bench/README.md, round 3b, with the live runs).
 */
export const DEFAULT_LAG_S = 6;

/**
 * The tuning for a lag ceiling of `lagS` seconds. Keller's √hazard placement, with its
 * step tied to the ceiling (step = lagS / 3.25), so the one knob moves everything. The
 * bench's run replayed (bench/adaptive-replay.ts, its own tasks, 16 draws of the
 * cadence's randomness, round 3b's baseline): at 6 s 0.593× the fixed cadence's requests
 * at 0.93× its lag p50 and 0.99× its p99; at 3 s 0.97× the requests for 0.61× the lag p50
 * (bench/README.md quotes these, the live runs and the model's sweep).
 */
export function tuningFor(lagS: number): AdaptiveTuning {
  const step = lagS / 3.25;
  return {
    placement: 'sqrt-hazard',
    step,
    bodyGapS: lagS,
    // the gap that jumps to where tasks start ending may hold 15 % of what is left. Measured
    // (model, lag 6.5, bench/README.md): 4 % → 0.62× requests; 10 % → 0.58× but the 90 s
    // video's p99 lag 15 s (its jump is ~60 s long: the live run's mix p99 1.17×) — hence lateMass.
    bodyMass: 0.15,
    // at most this share of a kind may end more than lagS before the poll that sees it,
    // counted once per task from its start, the lower tail read as a log-normal where that
    // is earlier (schedule.ts lateEdge): those tasks are most of the mix's lag p99. 1.6 % at
    // 6 s, 0.8 % at 3 s. Measured (replay, the run's tasks, round 3's baseline): at 5.7 s, 1 % → 0.608×
    // requests, p99 1.01×; 1.5 % → 0.597×, 1.02×; 2 % → 0.588×, 1.04× (over 1.05× of fixed's
    // p99 for 0.94 % of all tasks in 24 other task sets: at the p99's edge); at 3 s, 1.5 %
    // → lag p50 0.65× at 0.91× requests, 0.8 % → 0.62× at 0.94× (what that end is for: lag)
    lateMass: Math.min(0.03, lagS / 380),
    // the onset poll's time is searched for the least expected lag + pollCost × polls
    // (schedule.ts onsetSearch): half Keller's price of a poll for this step (step² / 2,
    // the cost at which √hazard with this step is the mean-lag optimum). Measured (replay,
    // 5.7 s, the run's tasks, round 3's baseline): no cost → 0.600× requests at lag p50 0.892×; half → 0.597×,
    // 0.894×; the whole → 0.593×, 0.908× (24 other task sets: 0.593/0.953, 0.589/0.963, 0.586/0.981)
    pollCost: step ** 2 / 4,
    // below 20 completions a kind is polled on the fixed cadence
    minEvents: 20,
    // the last 1 % of the learned distribution is its least known part: fixed cadence
    // there, never under lagS
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
