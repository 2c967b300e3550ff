// Housekeeping, about once a second: the rolling checkpoint (each owned task polled since
// its last write, at most every `checkpointMs`, its poll count, due time and streaks in
// batches: tuning.ts CHECKPOINT_MS) and the hand-backs of what this worker owns over its
// capacity or its fair share (ownership.ts). One tick at a time.
//
// The checkpoint writes most of what a worker ever writes, so it allocates next to nothing
// per task: one pass over the owned tasks, the batch in reused buffers (its tasks in one
// array, its columns as array literals: db/int-array-text.ts), and only the ids that were
// not written come back. (Row objects and postgres.js arrays of every batch, alive while
// its statement ran, were most of what the gateway's heap promoted: bench/README "round 4".)
import type { Sql } from '../db/client.js';
import { IntArrayText } from '../db/int-array-text.js';
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
  now: () => number;
}

/** One checkpoint statement's tasks and their columns, reused from batch to batch. */
class CheckpointBatch {
  private readonly tasks: (Owned | undefined)[];
  private n = 0;
  private readonly cols = { id: new IntArrayText(), dueInMs: new IntArrayText(), polls: new IntArrayText(), unauthorized: new IntArrayText(), errors: new IntArrayText(), processing: new IntArrayText() };

  constructor(readonly capacity: number) {
    this.tasks = new Array<Owned | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.n;
  }

  add(t: Owned, now: number): void {
    const c = this.cols;
    this.tasks[this.n++] = t;
    c.id.push(t.id);
    c.dueInMs.push(t.due - now);
    c.polls.push(t.polls);
    c.unauthorized.push(t.unauthorized_streak);
    c.errors.push(t.error_streak);
    c.processing.push(t.processing_seen ? 1 : 0);
  }

  columns(): q.CheckpointColumns {
    const c = this.cols;
    return { id: c.id.text(), dueInMs: c.dueInMs.text(), polls: c.polls.text(), unauthorized: c.unauthorized.text(), errors: c.errors.text(), processing: c.processing.text() };
  }

  /** After the statement: the written ones are clean; one not written is no longer ours (unless a poll of it is running: its own write finds out). */
  settle(tasks: Ownership, missed: number[]): void {
    const notOurs = missed.length > 0 ? new Set(missed) : undefined;
    for (let i = 0; i < this.n; i++) {
      const t = this.tasks[i]!;
      if (notOurs === undefined || !notOurs.has(t.id)) tasks.written(t);
      else if (!t.busy) tasks.drop(t);
    }
  }

  clear(): void {
    this.tasks.fill(undefined, 0, this.n);
    this.n = 0;
    for (const col of Object.values(this.cols)) col.reset();
  }
}

export function createKeeper(o: KeepOptions) {
  const { sql, log, tasks } = o;
  let busy = false;
  /** tasks dropped from memory whose rows are still to be freed (due times as when dropped) */
  const handBack: q.ScheduleState[] = [];
  const batch = new CheckpointBatch(WRITE_CHUNK);
  async function checkpoint(worker: number): Promise<void> {
    try {
      batch.settle(tasks, await q.checkpointTasks(sql, worker, batch.columns()));
    } finally {
      batch.clear();
    }
  }
  async function tick(): Promise<void> {
    const worker = o.worker();
    if (busy || worker === null) return;
    busy = true;
    try {
      // (a live view of the owned tasks: those dropped while a batch is written are skipped)
      for (const t of tasks.checkpointDue(o.checkpointMs)) {
        if (t.owner !== worker) continue;
        batch.add(t, o.now());
        if (batch.size >= batch.capacity) await checkpoint(worker);
      }
      if (batch.size > 0) await checkpoint(worker);
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
