// The poller's durable writes (sql.ts), batched: many polls' writes per statement, each row
// fenced by the worker id its task was claimed under (a batch may hold rows of an old id
// and a new one after a re-registration: one statement per id). Each add() settles with
// whether the task was still this worker's.
import type { Sql } from '../db/client.js';
import { BatchWriter } from '../engine/batch.js';
import * as q from './sql.js';
import { WRITE_CHUNK } from './tuning.js';

type Item<T> = T & { owner: number };

async function byOwner<T extends { owner: number }, R>(rows: T[], write: (owner: number, rows: T[]) => Promise<R[]>): Promise<R[]> {
  const groups = new Map<number, number[]>();
  rows.forEach((r, i) => {
    const g = groups.get(r.owner);
    if (g) g.push(i);
    else groups.set(r.owner, [i]);
  });
  const out = new Array<R>(rows.length);
  for (const [owner, idx] of groups) {
    const res = await write(owner, idx.map((i) => rows[i]!));
    idx.forEach((i, k) => (out[i] = res[k]!));
  }
  return out;
}

export function createTaskWrites(sql: Sql, now: () => number, onEnqueued?: () => void) {
  const ended = (res: { done: Set<number>; enqueued: number }, ids: number[]) => {
    if (res.enqueued > 0) onEnqueued?.();
    return ids.map((id) => res.done.has(id));
  };
  /** a changed snapshot, a poll error's transition (with the schedule and poll count) */
  const writer = new BatchWriter<Item<q.TaskWrite>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => {
      const done = await q.writeTasks(sql, owner, rs);
      return rs.map((r) => done.has(r.id));
    }),
    WRITE_CHUNK,
    10,
  );
  /** a task's end, with its outbox rows */
  const finisher = new BatchWriter<Item<q.Finish>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => ended(await q.finishTasks(sql, owner, rs, new Date(now())), rs.map((r) => r.id))),
    500,
    5,
  );
  /** the first `processing`, with its task.processing rows */
  const starter = new BatchWriter<Item<q.Started>, boolean>(
    (rows) => byOwner(rows, async (owner, rs) => ended(await q.startTasks(sql, owner, rs, new Date(now())), rs.map((r) => r.id))),
    500,
    10,
  );
  return {
    write: (row: Item<q.TaskWrite>) => writer.add(row),
    finish: (row: Item<q.Finish>) => finisher.add(row),
    start: (row: Item<q.Started>) => starter.add(row),
    drain: () => Promise.all([writer.drain(), finisher.drain(), starter.drain()]),
  };
}
