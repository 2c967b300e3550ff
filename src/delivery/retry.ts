// What happens after a delivery attempt: acknowledged, given up, or retried when.
// Pure; the durable schedule comes from TASKHOOK_RETRY_SCHEDULE.
import { RETRY_AFTER_CAP_MS } from '../upstream/schedule.js';

export type AttemptOutcome =
  | { kind: 'response'; status: number; retryAfterMs?: number | undefined }
  | { kind: 'error'; message: string };

export type NextStep =
  | { status: 'delivered' }
  | { status: 'undeliverable'; reason: string }
  | { status: 'pending'; delayMs: number; retryStep: number };

export function decideAfterAttempt(
  outcome: AttemptOutcome,
  retryStep: number,
  scheduleMs: readonly number[],
  random: number,
): NextStep {
  if (outcome.kind === 'response') {
    if (outcome.status >= 200 && outcome.status < 300) return { status: 'delivered' };
    if (outcome.status === 410) return { status: 'undeliverable', reason: 'receiver answered 410 Gone' };
  }
  if (retryStep >= scheduleMs.length) {
    return { status: 'undeliverable', reason: `gave up after ${retryStep + 1} attempts` };
  }
  const honoured =
    outcome.kind === 'response' && (outcome.status === 429 || outcome.status === 503) && outcome.retryAfterMs !== undefined
      ? Math.min(outcome.retryAfterMs, RETRY_AFTER_CAP_MS)
      : undefined;
  const delayMs = honoured ?? Math.round(scheduleMs[retryStep]! * (0.8 + 0.4 * random));
  return { status: 'pending', delayMs, retryStep: retryStep + 1 };
}
