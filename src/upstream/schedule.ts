// When to poll a task next: a pure function of what upstream just said, how old
// the watch is and a random draw, so every branch is testable without waiting.
export const FIRST_POLL_DELAY_MS = 2_000;
/** The contract's minimum between two polls of one task (× the poll scale). */
export const BASE_MIN_MS = 3_000;
const BASE_SPREAD_MS = 3_000;
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
  ageMs: number;
  random: number; // [0, 1)
  scale?: number;
}

export function nextPollDelayMs(signal: PollSignal, t: PollTiming): number {
  const scale = t.scale ?? 1;
  const slowdown = 1 + Math.min(SLOWDOWN_MAX - 1, Math.max(0, t.ageMs - SLOWDOWN_AFTER_MS) / (SLOWDOWN_RAMP_MS / (SLOWDOWN_MAX - 1)));
  const normal = (BASE_MIN_MS + t.random * BASE_SPREAD_MS) * slowdown;
  switch (signal.kind) {
    case 'ok':
      return Math.round(normal * scale);
    case 'error':
      return Math.round(errorBackoff(signal.streak, t.random) * scale);
    case 'rate_limited':
      if (signal.retryAfterMs === undefined) return Math.round(errorBackoff(signal.streak, t.random) * scale);
      return Math.round(Math.max(Math.min(signal.retryAfterMs, RETRY_AFTER_CAP_MS), normal * scale));
  }
}

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
