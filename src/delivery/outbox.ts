// The outbox's pieces: event types, give-up payloads, webhook body heads and ids. Rows
// are written by the statement that decided the event (a terminal poll, a give-up, a
// first `processing`), so an event exists iff its cause committed.
import { newId } from '../tenancy/keys.js';

export type EventType = 'task.completed' | 'task.failed' | 'task.cancelled' | 'task.processing' | 'watch.failed';
export type GiveUpCode = 'task_not_found' | 'upstream_unauthorized' | 'watch_expired';

export const GIVE_UP_MESSAGES: Record<GiveUpCode, string> = {
  task_not_found: 'upstream does not know this task_id (404) and the registration grace period has passed',
  upstream_unauthorized: 'upstream rejected the API key (401) three times in a row',
  watch_expired: 'the task did not reach a terminal status within TASKHOOK_MAX_WATCH_AGE_S',
};

/** The watch.failed `data` object of CONTRACT §4. */
export function giveUpData(taskId: string, code: GiveUpCode): string {
  return JSON.stringify({ task_id: taskId, status: 'failed', error: { code, message: GIVE_UP_MESSAGES[code], type: 'gateway' } });
}

/**
 * The webhook body is webhookHead() + watch id + `","metadata":` + the watch's metadata +
 * `,"data":` + upstream's object spliced in as text, so it reaches the receiver byte for
 * byte (no re-serialisation), unknown fields and all. The statement that decides the event
 * (src/poller/poller.ts, outboxCtes) stores the head and the data once per task and event
 * (event_bodies); the claim composes each watch's body (src/delivery/sql.ts, bodySql).
 * This is the body up to the watch id's opening quote.
 */
export function webhookHead(type: EventType, timestamp: Date): string {
  return `{"type":${JSON.stringify(type)},"timestamp":${JSON.stringify(timestamp.toISOString())},"watch_id":"`;
}

/** "msg_" + the time part of a sortable id; SQL appends 16 random hex characters (a subset of the id alphabet). */
export function outboxIdPrefix(at: Date): string {
  return newId('msg', at.getTime()).slice(0, 4 + 10);
}
