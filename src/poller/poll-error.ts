// `last_poll_error` of a watch (the API's `{at, message}`): what the last polls of its
// task ran into while they keep failing, and null once one succeeds. Kept on the
// task's `upstream_tasks` row (one poll serves every watch of the task), so it goes
// with the row when the task ends.
//
// Semantics (ported as they are by any poller):
// - a failed poll is a 5xx, a timeout, a DNS or connection error, a malformed or
//   unknown answer (upstream client's `error`), a 401 still tolerated, a 429, or a 404
//   still inside the not-found grace: each has its message (pollErrorOf);
// - a poll that got a task answer (pending/processing/terminal) clears it;
// - no request made (tenant paused, over its polls/s, lease lost) changes nothing;
// - it is written only on a transition — first failure, a different message, recovery
//   (pollErrorWrite) — so polls that keep succeeding, or keep failing the same way,
//   write nothing new; `at` is when the current message first appeared;
// - every failed poll is logged at warn, at most one line per tenant a minute
//   (PollErrorLog), with how many failed since the last line.
import type { Logger } from '../log.js';
import type { PollResult } from '../upstream/client.js';

/** The message for a failed poll; null for a poll that got the task's status. */
export function pollErrorOf(result: PollResult): string | null {
  switch (result.kind) {
    case 'task':
      return null;
    case 'error':
      return result.message;
    case 'unauthorized':
      return 'upstream refused the API key (HTTP 401)';
    case 'not_found':
      return 'upstream does not know this task (HTTP 404)';
    case 'rate_limited':
      return 'upstream is rate-limiting polls (HTTP 429)';
  }
}

/**
 * What to write, given the stored message and this poll's (undefined: no request was
 * made): `undefined` = nothing; otherwise the new value, null to clear.
 */
export function pollErrorWrite(stored: string | null, polled: string | null | undefined): { message: string | null } | undefined {
  if (polled === undefined || polled === stored) return undefined;
  return { message: polled };
}

/** At most one warn line per tenant in this long: a dead upstream must not flood the log. */
export const POLL_ERROR_LOG_INTERVAL_MS = 60_000;
/** Tenants remembered by the limiter; past this the oldest is forgotten (and may log again early). */
const MAX_TENANTS = 10_000;

export class PollErrorLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = POLL_ERROR_LOG_INTERVAL_MS,
  ) {}

  /** One failed poll of a tenant's task. → whether a line was written. */
  failed(tenant: string, taskId: string, message: string): boolean {
    const at = this.now();
    const seen = this.last.get(tenant);
    if (seen && at - seen.at < this.intervalMs) {
      seen.suppressed++;
      return false;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.delete(tenant); // re-insert: the map stays in least-recently-logged order
    this.last.set(tenant, { at, suppressed: 0 });
    if (this.last.size > MAX_TENANTS) this.last.delete(this.last.keys().next().value!);
    this.log.warn({ tenant, task_id: taskId, error: message, ...(suppressed ? { unlogged_failures: suppressed } : {}) }, 'upstream poll failed');
    return true;
  }
}
