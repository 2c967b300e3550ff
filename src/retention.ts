// Retention: finished watches (delivered, undeliverable, cancelled) whose last change
// is older than TASKHOOK_RETENTION_DAYS leave the database with their deliveries and
// delivery attempts (and the event bodies no delivery refers to any more), then so do
// the task snapshots no watch refers to any more. (Two purgers splitting one task's
// watches between them in the same instant could each leave its body to the other:
// a body row left behind, never a body missing.)
// Idempotency keys of submits (task_submissions) go once past their 24 h whatever
// TASKHOOK_RETENTION_DAYS says, even 0 (an accepted one stays while its watch does:
// the dashboard shows what upstream first answered).
//
// Everything goes in small batches, one short statement each, taking only rows nobody
// else holds (SKIP LOCKED) and giving up quickly on a lock it would have to wait for:
// the poller, the deliverer and the API never queue behind a purge. Several worker
// processes may purge at once; they simply split the rows.
import type postgres from 'postgres';
import type { Sql } from './db/client.js';
import { periodic, type Periodic } from './engine/periodic.js';
import type { Logger } from './log.js';
import { purgeExpiredSubmissions } from './submit/store.js';

export interface PurgeResult {
  watches: number;
  deliveries: number;
  attempts: number;
  snapshots: number;
  /** statements run */
  batches: number;
}

/** One batch statement; the lock timeout means a row somebody holds makes us fail and retry next pass, not wait. */
async function short<T>(sql: Sql, run: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx`set local lock_timeout = '2s'`;
    await tx`set local statement_timeout = '10s'`;
    return run(tx);
  })) as T;
}

/**
 * Purge everything past retention once, `batch` watches (or snapshots) per statement,
 * until a batch comes back short. `shouldStop` is checked between batches so a
 * stopping process finishes within one statement.
 */
export async function purgeOnce(sql: Sql, retentionMs: number, batch = 500, shouldStop: () => boolean = () => false): Promise<PurgeResult> {
  const total: PurgeResult = { watches: 0, deliveries: 0, attempts: 0, snapshots: 0, batches: 0 };
  if (retentionMs <= 0) return total;

  for (;;) {
    if (shouldStop()) return total;
    // One statement per batch: a watch goes with its deliveries and their attempts
    // atomically, so a crash never leaves half a watch behind. The watch rows are
    // locked first (SKIP LOCKED): cancel and redeliver lock the watch before its
    // deliveries, so they wait for us (and then find nothing) rather than deadlock.
    // A watch with a pending delivery (a task.processing event still retrying) stays.
    // `status in (…) order by updated_at` walks watches_finished_idx.
    const [r] = await short(
      sql,
      (tx) => tx<{ watches: number; deliveries: number; attempts: number }[]>`
        with w as (
          select id from watches
           where status in ('delivered', 'undeliverable', 'cancelled')
             and updated_at < now() - ${retentionMs} * interval '1 millisecond'
             and not exists (select 1 from deliveries p where p.watch_id = watches.id and p.status = 'pending')
           order by updated_at
           limit ${batch}
           for update skip locked),
        d as (delete from deliveries where watch_id in (select id from w) returning id, body_id),
        a as (delete from delivery_attempts where delivery_id in (select id from d) returning 1),
        -- an event's stored answer goes with the last delivery that refers to it (the
        -- subquery sees the deliveries as they were before this statement: hence not in d)
        b as (delete from event_bodies e
               where e.id in (select body_id from d where body_id is not null)
                 and not exists (select 1 from deliveries x where x.body_id = e.id and x.id not in (select id from d))),
        gone as (delete from watches where id in (select id from w) returning 1)
        select (select count(*) from gone)::int as watches, (select count(*) from d)::int as deliveries,
               (select count(*) from a)::int as attempts`,
    );
    total.batches++;
    total.watches += r!.watches;
    total.deliveries += r!.deliveries;
    total.attempts += r!.attempts;
    if (r!.watches < batch) break;
  }

  for (;;) {
    if (shouldStop()) return total;
    // A snapshot's last change precedes its watches' last change, so the age bound
    // never keeps a snapshot whose watches were just purged; it does keep the
    // snapshot of a task being registered right now (it has no committed watch yet).
    // Should one slip through anyway, the next poll of that task writes it again.
    // `updated_at < … order by updated_at` walks task_snapshots_updated_idx.
    const gone = await short(
      sql,
      (tx) => tx`
        with s as (
          select tenant_id, task_id from task_snapshots ts
           where updated_at < now() - ${retentionMs} * interval '1 millisecond'
             and not exists (select 1 from watches w where w.tenant_id = ts.tenant_id and w.task_id = ts.task_id)
             and not exists (select 1 from upstream_tasks u where u.tenant_id = ts.tenant_id and u.task_id = ts.task_id)
           order by updated_at
           limit ${batch}
           for update skip locked)
        delete from task_snapshots t using s
         where t.tenant_id = s.tenant_id and t.task_id = s.task_id
        returning 1`,
    );
    total.batches++;
    total.snapshots += gone.length;
    if (gone.length < batch) break;
  }
  return total;
}

/** Idempotency keys past their 24 h, `batch` per statement, until a batch comes back short. → keys deleted. */
export async function purgeExpiredKeys(sql: Sql, batch = 500, shouldStop: () => boolean = () => false): Promise<number> {
  let total = 0;
  while (!shouldStop()) {
    const n = await short(sql, (tx) => purgeExpiredSubmissions(tx, batch));
    total += n;
    if (n < batch) break;
  }
  return total;
}

export interface RetentionOptions {
  sql: Sql;
  log: Logger;
  /** 0 = keep watches forever (the engine then only drops expired idempotency keys) */
  retentionMs: number;
  /** between passes, ±20 % jitter; the first pass comes at a random point of the first interval */
  intervalMs?: number;
  batchSize?: number;
  random?: () => number;
}

export type Retention = Periodic;

export function createRetention(o: RetentionOptions): Retention {
  const intervalMs = o.intervalMs ?? 5 * 60_000;
  const batch = o.batchSize ?? 500;
  const random = o.random ?? Math.random;
  return periodic(
    async (stopping) => {
      const started = Date.now();
      try {
        const r = await purgeOnce(o.sql, o.retentionMs, batch, stopping);
        if (r.watches + r.snapshots > 0) o.log.info({ ...r, duration_ms: Date.now() - started }, 'retention: purged finished watches past retention');
        const keys = await purgeExpiredKeys(o.sql, batch, stopping);
        if (keys > 0) o.log.info({ keys }, 'retention: dropped idempotency keys past their 24 h');
      } catch (err) {
        // Usually a lock we declined to wait for, or the database being away: next pass.
        o.log.warn({ err: String(err) }, 'retention pass failed; retrying next pass');
      }
      return intervalMs * (0.8 + 0.4 * random());
    },
    // Processes started together by a deploy spread their passes over the interval.
    () => random() * intervalMs,
  );
}
