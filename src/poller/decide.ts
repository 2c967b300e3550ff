// What one poll of a task comes to: a pure function of what the worker knows of the task,
// what upstream answered (or why it was not asked) and the time. No I/O, no randomness
// (the delay is drawn by the caller from `signal`, upstream/schedule.ts), so every branch
// is a row of a table test (test/decide.test.ts).
import { TERMINAL_STATUSES, type PollResult } from '../upstream/client.js';
import type { PollSignal } from '../upstream/schedule.js';
import { giveUpData, type EventType, type GiveUpCode } from '../delivery/outbox.js';
import { pollErrorOf, pollErrorWrite } from './poll-error.js';
import { snapshotHash } from './snapshot-hash.js';
import { UNAUTHORIZED_LIMIT } from './tuning.js';

/** What a worker knows of a task it owns (as claimed, then as it polled it). */
export interface TaskState {
  tenant_id: string;
  task_id: string;
  /** local clock (ms) when the watch's task was registered */
  createdAt: number;
  unauthorized_streak: number;
  error_streak: number;
  processing_seen: boolean;
  /** hash of the snapshot stored last (null: unknown) */
  snapshot_hash: number | null;
  /** the watch's last_poll_error as stored (poll-error.ts) */
  last_poll_error: string | null;
}

export interface Limits {
  notFoundGraceMs: number;
  maxWatchAgeMs: number;
}

/** A poll that made no request, and why. */
export type NotAsked =
  | { kind: 'no_tenant' } // disabled or deleted tenant: nothing to poll with
  | { kind: 'throttled'; retryAfterMs: number }; // the tenant's upstream is paused, or it is over its polls/s

/** What upstream answered: a PollResult, or `unchanged` — a 200 whose bytes hash as the stored snapshot's. */
export type Answer = PollResult | { kind: 'unchanged' } | NotAsked;

export interface Snapshot {
  status: string;
  raw: string;
  hash: number;
}

export type Decision =
  /** the task ended (terminal status or give-up): outbox rows and removal, in one transaction */
  | { kind: 'finish'; event: EventType; data: string; snapshot: Snapshot | null; giveUp?: GiveUpCode }
  /** keep polling; `write` says whether anything durable changed (else the poll writes nothing) */
  | {
      kind: 'continue';
      signal: PollSignal;
      unauthorized_streak: number;
      error_streak: number;
      processing_seen: boolean;
      /** the first `processing`: record it and send task.processing */
      startProcessing: boolean;
      /** the snapshot, when it differs from the stored one */
      snapshot: Snapshot | null;
      /** last_poll_error to write (null clears it); undefined: unchanged */
      pollError: { message: string | null } | undefined;
      write: boolean;
    };

const giveUp = (task: TaskState, code: GiveUpCode): Decision => ({
  kind: 'finish',
  event: 'watch.failed',
  data: giveUpData(task.task_id, code),
  snapshot: null,
  giveUp: code,
});

function keepPolling(
  task: TaskState,
  signal: PollSignal,
  o: { unauthorized?: number; errors?: number; processing?: boolean; start?: boolean; snapshot?: Snapshot | null; polled?: string | null | undefined },
): Decision {
  const pollError = pollErrorWrite(task.last_poll_error, o.polled);
  const snapshot = o.snapshot ?? null;
  const startProcessing = o.start ?? false;
  return {
    kind: 'continue',
    signal,
    unauthorized_streak: o.unauthorized ?? 0,
    error_streak: o.errors ?? 0,
    processing_seen: o.processing ?? task.processing_seen,
    startProcessing,
    snapshot,
    pollError,
    write: snapshot !== null || startProcessing || pollError !== undefined,
  };
}

export function decide(task: TaskState, answer: Answer, now: number, limits: Limits): Decision {
  const ageMs = now - task.createdAt;
  const expired = ageMs > limits.maxWatchAgeMs;
  const polled = answer.kind === 'unchanged' ? null : answer.kind === 'no_tenant' || answer.kind === 'throttled' ? undefined : pollErrorOf(answer);
  switch (answer.kind) {
    case 'no_tenant':
      // check back later rather than guess; nothing was learned
      return keepPolling(task, { kind: 'error', streak: 7 }, { unauthorized: task.unauthorized_streak, errors: task.error_streak });
    case 'throttled':
      return keepPolling(
        task,
        { kind: 'rate_limited', retryAfterMs: answer.retryAfterMs, streak: task.error_streak },
        { unauthorized: task.unauthorized_streak, errors: task.error_streak },
      );
    case 'unchanged':
      // the same bytes as the stored (non-terminal) snapshot: only the clock moves
      if (expired) return giveUp(task, 'watch_expired');
      return keepPolling(task, { kind: 'ok' }, { polled });
    case 'task': {
      const hash = answer.hash ?? snapshotHash(answer.raw);
      const snapshot: Snapshot = { status: answer.status, raw: answer.raw, hash };
      if (TERMINAL_STATUSES.has(answer.status)) return { kind: 'finish', event: `task.${answer.status}` as EventType, data: answer.raw, snapshot };
      if (expired) return giveUp(task, 'watch_expired');
      if (answer.status === 'processing' && !task.processing_seen) {
        return keepPolling(task, { kind: 'ok' }, { processing: true, start: true, snapshot, polled });
      }
      return keepPolling(task, { kind: 'ok' }, { snapshot: hash === task.snapshot_hash ? null : snapshot, polled });
    }
    case 'unauthorized': {
      const streak = task.unauthorized_streak + 1;
      if (streak >= UNAUTHORIZED_LIMIT) return giveUp(task, 'upstream_unauthorized');
      if (expired) return giveUp(task, 'watch_expired');
      return keepPolling(task, { kind: 'ok' }, { unauthorized: streak, polled });
    }
    case 'not_found':
      if (ageMs > limits.notFoundGraceMs) return giveUp(task, 'task_not_found');
      return keepPolling(task, { kind: 'ok' }, { polled });
    case 'rate_limited': {
      if (expired) return giveUp(task, 'watch_expired');
      const streak = task.error_streak + 1;
      return keepPolling(task, { kind: 'rate_limited', retryAfterMs: answer.retryAfterMs, streak }, { errors: streak, polled });
    }
    case 'error': {
      if (expired) return giveUp(task, 'watch_expired');
      const streak = Math.min(task.error_streak + 1, 30);
      return keepPolling(task, { kind: 'error', streak }, { errors: streak, polled });
    }
  }
}
