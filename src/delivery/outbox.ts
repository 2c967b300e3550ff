// Writing events into the outbox. Called inside the transaction that decided the
// event (a terminal poll, a give-up), so an event exists iff its cause committed.
import type { TransactionSql } from 'postgres';
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
 * The webhook body. `dataJson` is spliced in as text so upstream's object reaches
 * the receiver byte for byte (no re-serialisation), unknown fields and all.
 */
export function webhookBody(type: EventType, timestamp: Date, watchId: string, metadata: unknown, dataJson: string): string {
  return `${webhookHead(type, timestamp)}${watchId}","metadata":${JSON.stringify(metadata ?? {})},"data":${dataJson}}`;
}

/** The body up to the watch id's opening quote; SQL that builds bodies in bulk continues from here. */
export function webhookHead(type: EventType, timestamp: Date): string {
  return `{"type":${JSON.stringify(type)},"timestamp":${JSON.stringify(timestamp.toISOString())},"watch_id":"`;
}

/** "msg_" + the time part of a sortable id; SQL appends 16 random hex characters (a subset of the id alphabet). */
export function outboxIdPrefix(at: Date): string {
  return newId('msg', at.getTime()).slice(0, 4 + 10);
}

export interface WatchTarget {
  id: string;
  tenant_id: string;
  callback_url: string;
  metadata: unknown;
}

/** Inserts one delivery per watch; returns how many. */
export async function enqueue(
  tx: TransactionSql,
  type: EventType,
  watches: WatchTarget[],
  dataJson: string,
  now: Date,
): Promise<number> {
  if (watches.length === 0) return 0;
  const rows = watches.map((w) => ({
    id: newId('msg', now.getTime()),
    tenant_id: w.tenant_id,
    watch_id: w.id,
    event_type: type,
    terminal: type !== 'task.processing',
    callback_url: w.callback_url,
    endpoint: new URL(w.callback_url).origin,
    payload: webhookBody(type, now, w.id, w.metadata, dataJson),
  }));
  await tx`insert into deliveries ${tx(rows)}`;
  return rows.length;
}
