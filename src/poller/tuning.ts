// The scheduler's tuning constants, in one place, each with why (docs/guarantees.md
// quotes the bounds they give). Only the worker timeout is configurable
// (TASKHOOK_WORKER_TIMEOUT_S); the others follow from it or from the contract.

/** A worker writes its heartbeat this often: one statement a second per process. */
export const HEARTBEAT_MS = 1_000;

/**
 * Default worker timeout: a heartbeat older than this and the worker is dead; any live
 * worker fences it and frees its tasks. Takeover of a killed worker's tasks takes at most
 * this + HEARTBEAT_MS (the sweep) + TAKEOVER_SPREAD_MS + a claim: ≈ 11 s by default,
 * inside the contract's "about 10 s plus one poll interval".
 */
export const DEFAULT_WORKER_TIMEOUT_MS = 8_000;

/**
 * A worker that has had no heartbeat acknowledged for this share of the timeout stops
 * polling; if its heartbeat then still fails it drops everything it owns. Half: the others
 * can only declare it dead a whole timeout after its last acknowledged heartbeat, so it
 * has stopped long before anyone else starts (clock-rate differences are far smaller).
 */
export const SELF_FENCE_SHARE = 0.5;

/**
 * The tasks of a dead worker come due again spread over this long (their checkpointed
 * due time if later), so the survivors' claims come in batches, not as one herd.
 */
export const TAKEOVER_SPREAD_MS = 1_500;

/**
 * Every owned task that was polled since it was last written has its poll count, next due
 * time and streaks written this often, in batches: the API's `polls` and `next_poll_at`
 * lag the truth by at most this (+ the time of the write), and a takeover resumes the
 * cadence from there. 30 s at 3–6 s between polls is ≤ 1 write per ~7 polls.
 */
export const CHECKPOINT_MS = 30_000;

/** Rows per checkpoint / hand-back statement. */
export const WRITE_CHUNK = 5_000;

/** A claim takes tasks due within this long, so they are in memory before they are due. */
export const CLAIM_AHEAD_MS = 2_000;

/** Tasks per claim statement. */
export const CLAIM_BATCH = 500;

/**
 * The most tasks one worker keeps in memory (≈ 0.35 KB each, bench/owned-bytes.ts: ~71 MB at the cap), however
 * many wait in the table. The working cap below it follows the measured lateness.
 */
export const MAX_OWNED = 200_000;
/** The working cap never shrinks below this. */
export const MIN_OWNED = 1_000;

/**
 * Capacity (capacity.ts): a poll that starts more than LATE_MS after it was due is late.
 * Over a CAPACITY_WINDOW_MS window, more than LATE_SHARE of the starts late and the worker
 * owns more than it can poll on time: the cap is cut to what the window's rate keeps on
 * time (−5 to −20 %), the latest-due excess handed back for others. At most ON_TIME_SHARE
 * late with the cap nearly used, the cap grows: by half while nothing was cut, else up to
 * the size the cut settled on; there it holds for CAPACITY_HOLD_MS, then probes (+5 % first).
 */
export const LATE_MS = 1_000;
export const CAPACITY_WINDOW_MS = 5_000;
export const LATE_SHARE = 0.1;
export const ON_TIME_SHARE = 0.01;
/** A churn bound: an overloaded worker re-probes its limit (and hands back ~5 %) about once per this + ~3 windows. */
export const CAPACITY_HOLD_MS = 30_000;

/**
 * Balancing: a worker that owns more than this factor of the live workers' average hands
 * the excess back (latest due first, with their due times), so a worker that joins gets
 * its share within a few checkpoints of the hand-backs, not only new registrations.
 */
export const BALANCE_FACTOR = 1.25;
/** … and not for a difference smaller than this many tasks. */
export const BALANCE_SLACK = 200;

/**
 * Concurrent upstream requests per worker, over all origins. Per origin the poller runs at
 * most the upstream pool's connections (upstream/client.ts, 64) at once: the rest wait in
 * the heap's lane (engine/heap-dispatch.ts), not in undici's queue, where a poll (its
 * request, handler, promises: ~3 KB) outlived a scavenge — at 1,024 queued over 64
 * connections the young generation promoted ~1.5 KB per poll (~40 MB/s at saturation), the
 * largest part of the gateway's RSS (bench/README "round 4"). So this bound is for many
 * slow origins at once (1,024 at 300 ms ≈ 3,400 polls/s), and costs nothing while unused.
 */
export const MAX_IN_FLIGHT = 1_024;

/** 401s in a row that give a task up (upstream_unauthorized). */
export const UNAUTHORIZED_LIMIT = 3;
