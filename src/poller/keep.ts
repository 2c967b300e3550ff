// Housekeeping, about once a second: the rolling checkpoint (each owned task polled since
// its last write, at most every `checkpointMs`, its poll count, due time and streaks in
// batches: tuning.ts CHECKPOINT_MS) and the hand-backs of what this worker owns over its
// capacity or its fair share (ownership.ts). One tick at a time.
import type { Sql } from '../db/client.js';
import type { Logger } from '../log.js';
import type { Ownership, Owned } from './ownership.js';
import * as q from './sql.js';
import { WRITE_CHUNK } from './tuning.js';

export interface KeepOptions {
  sql: Sql;
  log: Logger;
  tasks: Ownership;
  checkpointMs: number;
  /** this worker's id while it may write, else null */
  worker: () => number | null;
  scheduleState: (t: Owned) => q.ScheduleState;
}

export function createKeeper(o: KeepOptions) {
  const { sql, log, tasks } = o;
  let busy = false;
  /** tasks dropped from memory whose rows are still to be freed (due times as when dropped) */
  const handBack: q.ScheduleState[] = [];
  async function tick(): Promise<void> {
    const worker = o.worker();
    if (busy || worker === null) return;
    busy = true;
    try {
      const due = tasks.checkpointDue(o.checkpointMs);
      for (let i = 0; i < due.length; i += WRITE_CHUNK) {
        const chunk = due.slice(i, i + WRITE_CHUNK).filter((t) => t.owner === worker);
        const done = await q.writeTasks(
          sql,
          worker,
          chunk.map((t) => ({ ...o.scheduleState(t), processing: t.processing_seen, status: null, raw: null, hash: null, pollErrorChanged: 0, pollError: null })),
        );
        for (const t of chunk) if (done.has(t.id)) tasks.written(t); else if (!t.busy) tasks.drop(t);
      }
      // Hand-backs leave memory first, so none of them starts a poll while its row is being
      // freed (another worker — or this one — may claim it the moment it is); one that
      // cannot be written yet is retried next tick, still unowned in memory.
      for (const t of tasks.excess()) {
        tasks.drop(t);
        handBack.push(o.scheduleState(t));
      }
      if (handBack.length > 0) {
        const rows = handBack.splice(0, WRITE_CHUNK);
        try {
          const n = await q.releaseTasks(sql, worker, rows);
          log.info({ handed_back: n, owned: tasks.size, cap: tasks.cap }, 'handed back tasks over this worker\'s share or capacity');
        } catch (err) {
          handBack.unshift(...rows);
          throw err;
        }
      }
    } catch (err) {
      log.warn({ err }, 'checkpoint failed; retrying next tick');
    } finally {
      busy = false;
    }
  }
  return {
    tick,
    /** everything owned was lost: the pending hand-backs' rows were freed with the rest */
    forget(): void {
      handBack.length = 0;
    },
  };
}
