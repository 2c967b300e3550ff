// Every statement of the scheduler, named (the bench imports these too). The rules they keep:
// - a worker owns a task while `upstream_tasks.owner_id` is its `workers.id`; every write
//   about an owned task says `owner_id = <me>`, so a worker that was declared dead (its rows
//   freed in the same statement) or lost a task any other way writes nothing;
// - nothing is written for a poll that changed nothing: durable writes are a changed
//   snapshot, the first `processing`, a poll error's transitions, a task's end (with its
//   outbox rows, atomically), a checkpoint, a hand-back;
// - times travel as "ms from now" and become timestamps with the database's now(), so the
//   hosts' clocks never meet.
import type { Sql } from '../db/client.js';
import { outboxIdPrefix, type EventType } from '../delivery/outbox.js';

type Fragment = ReturnType<Sql>;

/** A task as a claim hands it over. */
export interface ClaimedRow {
  id: number;
  tenant_id: string;
  task_id: string;
  polls: number;
  unauthorized_streak: number;
  error_streak: number;
  processing_seen: boolean;
  last_poll_error: string | null;
  /** hash of the snapshot stored last (null: unknown) */
  snapshot_hash: number | null;
  age_ms: number;
  /** its checkpointed due time, ms from now (negative: overdue) */
  due_in_ms: number;
}

/** A new worker row; → its id. Also forgets workers dead for an hour that own nothing. */
export async function registerWorker(sql: Sql, w: { host: string; pid: number; version: string }): Promise<number> {
  await sql`
    delete from workers d where d.dead_at < now() - interval '1 hour'
       and not exists (select 1 from upstream_tasks u where u.owner_id = d.id)`;
  const [row] = await sql<{ id: number }[]>`
    insert into workers (host, pid, version) values (${w.host}, ${w.pid}, ${w.version}) returning id`;
  return Number(row!.id);
}

export interface Heartbeat {
  /** 0: this worker was declared dead (fenced); it must drop everything and register anew */
  alive: number;
  /** tasks of dead workers this statement freed */
  freed: number;
  /** deliveries leased by dead workers this statement made due */
  leases: number;
  /** live workers, and the tasks they own (as of their heartbeats) */
  workers: number;
  owned: number;
  /** unowned tasks (capped at UNOWNED_COUNT_CAP), or -1 when not counted this time */
  unowned: number;
}

/** The heartbeat counts unowned tasks (for the fair share) up to this many: bounded work. */
export const UNOWNED_COUNT_CAP = 200_000;

/**
 * One statement a second per worker: the heartbeat, and — only if this worker is itself
 * alive — declaring dead every worker whose heartbeat is older than the timeout and
 * freeing its tasks, due at their checkpointed time or spread over the next `spreadMs`,
 * and its leased deliveries, due at once (deliveries.leased_by, delivery/sql.ts claim).
 * (Two sweepers of one dead worker serialise on its row; the second finds it dead already.)
 *
 * It also frees any task still owned by a worker that was dead before it began. A claim
 * locks its worker row FOR SHARE, so the sweep that declares that worker dead waits for
 * the claim's commit — but one statement reads with the snapshot it began with, so the
 * rows that claim took still look unowned to it (test/worker-sweep.test.ts). The next
 * beat of any live worker, a fresh snapshot, frees them: a task is never left to the dead
 * for longer than one heartbeat. (A dead worker owns nothing after that, so this probes
 * the owner index once per dead row — rows deleted an hour after their death.)
 * Deliveries a claim leased in that race are not swept twice: their lease runs out.
 */
export async function heartbeat(sql: Sql, p: { worker: number; owned: number; timeoutMs: number; spreadMs: number; countUnowned: boolean }): Promise<Heartbeat> {
  const [row] = await sql<Heartbeat[]>`
    with me as (
      update workers set heartbeat_at = now(), owned = ${p.owned} where id = ${p.worker} and dead_at is null returning id
    ), dead as (
      update workers set dead_at = now()
       where dead_at is null and heartbeat_at < now() - ${p.timeoutMs} * interval '1 millisecond'
         and id <> ${p.worker} and exists (select 1 from me)
      returning id
    ), freed as (
      update upstream_tasks set owner_id = null,
             next_poll_at = greatest(next_poll_at, now() + random() * ${p.spreadMs} * interval '1 millisecond')
       where owner_id = any(array(select id from dead union all select id from workers where dead_at is not null))
         and exists (select 1 from me)
      returning 1
    ), leases as (
      -- their deliveries in flight are due now: the lease cleared, so a woken stale worker's
      -- completion (fenced by lease_token) records nothing; the attempt stays counted
      update deliveries set lease_token = null, next_attempt_at = now()
       where leased_by = any(array(select id from dead)) and lease_token is not null and status = 'pending'
      returning 1
    ), live as (
      select count(*)::int as workers, coalesce(sum(owned), 0)::int as owned from workers
       where dead_at is null and heartbeat_at >= now() - ${p.timeoutMs} * interval '1 millisecond'
    )
    select (select count(*) from me)::int as alive, (select count(*) from freed)::int as freed,
           (select count(*) from leases)::int as leases, live.workers, live.owned,
           case when ${p.countUnowned} then (select count(*) from (select 1 from upstream_tasks where owner_id is null limit ${UNOWNED_COUNT_CAP}) x)::int
                else -1 end as unowned
      from live`;
  return row!;
}

/**
 * Retires a worker: dead from now on, and whatever it still owns freed (due at its
 * checkpoint, spread a little). Graceful stop hands its tasks back with their true due
 * times first (releaseTasks); this frees the rest, and those of a worker that fenced itself.
 * Two statements in one transaction: the first waits for any claim of this worker still
 * running (it holds the row FOR SHARE) and makes every later one claim nothing; the second,
 * with a snapshot taken after that claim's commit, sees and frees what it took. (In one
 * statement those rows looked unowned: test/worker-sweep.test.ts.)
 */
export async function retireWorker(sql: Sql, p: { worker: number; spreadMs: number }): Promise<number> {
  return sql.begin(async (tx) => {
    const t = tx as unknown as Sql;
    await t`update workers set dead_at = coalesce(dead_at, now()) where id = ${p.worker}`;
    const freed = await t`
      update upstream_tasks set owner_id = null,
             next_poll_at = greatest(next_poll_at, now() + random() * ${p.spreadMs} * interval '1 millisecond')
       where owner_id = ${p.worker}`;
    return freed.count;
  });
}

/**
 * The claim: unowned tasks due within `aheadMs`, oldest due first, become this worker's —
 * one statement, SKIP LOCKED, through the partial index of unowned rows (O(batch) however
 * many rows are owned). The worker row is locked FOR SHARE: a retire or sweep declaring
 * this worker dead waits for the claim's commit, or the claim waits for it and claims
 * nothing. What a claim took while the sweep waited is freed by the retire's second
 * statement or by the next heartbeat (see those): never a task owned by the dead for good.
 * A row a previous-release process holds a live lease on (`lease_token`, due in the
 * future) is left to it.
 * (`= any(array(…))`, not a join: the claimed rows are fetched by primary key.)
 */
export const CLAIM_SQL = `
    with me as (
      select id from workers where id = $1 and dead_at is null for share
    ), due as (
      select id from upstream_tasks
       where owner_id is null and next_poll_at <= now() + $3 * interval '1 millisecond'
         and exists (select 1 from me)
       order by next_poll_at
       limit $2
       for update skip locked
    )
    update upstream_tasks t set owner_id = $1, lease_token = null
     where t.id = any(array(select id from due))
       and (t.lease_token is null or t.next_poll_at <= now())
    returning t.id::float8 as id, t.tenant_id, t.task_id, t.polls, t.unauthorized_streak, t.error_streak, t.processing_seen,
              t.last_poll_error, t.snapshot_hash::float8 as snapshot_hash,
              (extract(epoch from now() - t.created_at) * 1000)::float8 as age_ms,
              (extract(epoch from t.next_poll_at - now()) * 1000)::float8 as due_in_ms`;

/** CLAIM_SQL's parameters, in order (the bench EXPLAINs the same text). */
export const claimParams = (p: { worker: number; limit: number; aheadMs: number }) => [p.worker, p.limit, p.aheadMs];

export function claimTasks(sql: Sql, p: { worker: number; limit: number; aheadMs: number }): Promise<ClaimedRow[]> {
  return sql.unsafe<ClaimedRow[]>(CLAIM_SQL, claimParams(p)) as unknown as Promise<ClaimedRow[]>;
}

/**
 * The tasks the table says this worker owns (by the owner index). Read only after a claim
 * of this worker failed: its commit may have landed with the answer lost, and the rows it
 * took are this worker's in the table but not in its memory (poller.ts, reconcile).
 */
export async function ownedTaskIds(sql: Sql, worker: number): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`select id::float8 as id from upstream_tasks where owner_id = ${worker}`;
  return rows.map((r) => Number(r.id));
}

/** Frees tasks of this worker as they are (due when the claim found them): unowned, claimable. → how many. */
export async function freeTasks(sql: Sql, worker: number, ids: number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const res = await sql`update upstream_tasks set owner_id = null where id = any(${ids}::bigint[]) and owner_id = ${worker}`;
  return res.count;
}

/** What a write knows of a task's schedule (also the whole of a checkpoint). */
export interface ScheduleState {
  id: number;
  /** next due, ms from now */
  dueInMs: number;
  polls: number;
  unauthorized: number;
  errors: number;
}

export interface TaskWrite extends ScheduleState {
  processing: boolean;
  /** the snapshot, only when it differs from the stored one (its hash is `hash`) */
  status: string | null;
  raw: string | null;
  hash: number | null;
  /** 1: set last_poll_error to pollError (null clears it); 0: leave it (poll-error.ts) */
  pollErrorChanged: number;
  pollError: string | null;
}

/**
 * Writes owned tasks' state, fenced by ownership: a changed snapshot (upserted into
 * task_snapshots), a poll error's transition, and every time the schedule and poll count
 * (a checkpoint is this with nothing else changed). → the ids written; a missing id is a
 * task this worker no longer owns.
 * (processing goes as int[]: postgres.js does not serialise bool[] parameters)
 */
export async function writeTasks(sql: Sql, worker: number, rows: TaskWrite[]): Promise<Set<number>> {
  const col = <K extends keyof TaskWrite>(k: K) => rows.map((r) => r[k]);
  const done = await sql<{ id: number }[]>`
    with r as (
      select * from unnest(
        ${col('id')}::bigint[], ${col('dueInMs')}::float8[], ${col('polls')}::int[],
        ${col('unauthorized')}::int[], ${col('errors')}::int[], ${rows.map((r) => (r.processing ? 1 : 0))}::int[],
        ${col('status')}::text[], ${col('raw')}::text[], ${col('hash')}::float8[],
        ${col('pollErrorChanged')}::int[], ${col('pollError')}::text[]
      ) as r(id, due_ms, polls, unauthorized, errors, processing, status, raw, hash, pe_changed, pe)
    ), t as (
      update upstream_tasks u
         set next_poll_at = now() + r.due_ms * interval '1 millisecond', polls = greatest(u.polls, r.polls),
             unauthorized_streak = r.unauthorized, error_streak = r.errors, processing_seen = r.processing <> 0,
             snapshot_hash = coalesce(r.hash::bigint, u.snapshot_hash),
             last_poll_error = case when r.pe_changed <> 0 then r.pe else u.last_poll_error end,
             last_poll_error_at = case when r.pe_changed = 0 then u.last_poll_error_at when r.pe is not null then now() end
        from r
       where u.id = r.id and u.owner_id = ${worker}
      returning u.id, u.tenant_id, u.task_id, u.polls
    ), snap as (
      insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
      select t.tenant_id, t.task_id, r.status, r.raw, t.polls from t join r on r.id = t.id where r.raw is not null
      on conflict (tenant_id, task_id) do update
        set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
        where task_snapshots.snapshot is distinct from excluded.snapshot
    )
    select id::float8 as id from t`;
  return new Set(done.map((d) => Number(d.id)));
}

/**
 * A checkpoint batch as columns, one element per task, each an integer array literal
 * (db/int-array-text.ts): due ms from now, the poll count, the streaks, processing as 0/1.
 */
export interface CheckpointColumns {
  id: string;
  dueInMs: string;
  polls: string;
  unauthorized: string;
  errors: string;
  processing: string;
}

/**
 * The rolling checkpoint (keep.ts): owned tasks' schedule, poll count and streaks, nothing
 * else, fenced by ownership. → the ids NOT written (no longer this worker's): usually none,
 * so a batch of thousands of rows comes back as no rows at all.
 */
export async function checkpointTasks(sql: Sql, worker: number, c: CheckpointColumns): Promise<number[]> {
  const missed = await sql<{ id: number }[]>`
    with r as (
      select * from unnest(
        ${c.id}::bigint[], ${c.dueInMs}::float8[], ${c.polls}::int[], ${c.unauthorized}::int[], ${c.errors}::int[], ${c.processing}::int[]
      ) as r(id, due_ms, polls, unauthorized, errors, processing)
    ), t as (
      update upstream_tasks u
         set next_poll_at = now() + r.due_ms * interval '1 millisecond', polls = greatest(u.polls, r.polls),
             unauthorized_streak = r.unauthorized, error_streak = r.errors, processing_seen = r.processing <> 0
        from r
       where u.id = r.id and u.owner_id = ${worker}
      returning u.id
    )
    select r.id::float8 as id from r where not exists (select 1 from t where t.id = r.id)`;
  return missed.map((m) => Number(m.id));
}

/**
 * Hands tasks back (graceful stop, balancing, over capacity): unowned again, due when this
 * worker would have polled them, their poll count and streaks kept. → how many.
 */
export async function releaseTasks(sql: Sql, worker: number, rows: ScheduleState[]): Promise<number> {
  if (rows.length === 0) return 0;
  const col = <K extends keyof ScheduleState>(k: K) => rows.map((r) => r[k]);
  const res = await sql`
    update upstream_tasks u
       set owner_id = null, next_poll_at = now() + r.due_ms * interval '1 millisecond', polls = greatest(u.polls, r.polls),
           unauthorized_streak = r.unauthorized, error_streak = r.errors
      from unnest(${col('id')}::bigint[], ${col('dueInMs')}::float8[], ${col('polls')}::int[], ${col('unauthorized')}::int[], ${col('errors')}::int[])
           as r(id, due_ms, polls, unauthorized, errors)
     where u.id = r.id and u.owner_id = ${worker}`;
  return res.count;
}

/**
 * The outbox of one batch, as two CTEs (`bodies`, `ins`) over a CTE `ws` of (id, tenant_id,
 * task_id, callback_url, …) per watch: the event's answer stored once per task
 * (event_bodies: the body head and upstream's JSON, `data`, verbatim), and one small
 * deliveries row per watch — a webhook id, the origin the per-host caps count, and the
 * body's reference; the deliverer composes each watch's body from it (delivery/sql.ts,
 * bodySql). `ins` returns 1 per row.
 */
const outboxCtes = (sql: Sql, at: Date, type: Fragment, terminal: boolean, data: Fragment, where: Fragment = sql``) => sql`
  bodies as (
    insert into event_bodies (tenant_id, task_id, event_type, head, data)
    select distinct on (tenant_id, task_id) tenant_id, task_id, ${type}, head, ${data} from ws ${where}
    returning id, tenant_id, task_id
  ), ins as (
    insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload, body_id)
    select ${outboxIdPrefix(at)} || substr(md5(gen_random_uuid()::text), 1, 16), ws.tenant_id, ws.id, ${type}, ${terminal}, ws.callback_url,
           substring(ws.callback_url from '^[a-z][a-z0-9+.-]*://[^/?#]+'), '', b.id
      from ws join bodies b on b.tenant_id = ws.tenant_id and b.task_id = ws.task_id ${where}
    returning 1
  )`;

/**
 * Locks the owned rows of `ids` (in id order) in a transaction, so that the statement that
 * follows, with a snapshot taken after the lock, sees every watch registered up to then:
 * a registration upserts the task's row, so it either committed before the lock (and its
 * watch is seen) or waits for this commit (and, the row gone, schedules the task afresh).
 * Without it a watch registered while its task was being finished was never ended (the
 * soak found that with leases; ownership would have reopened it).
 */
const lockOwned = (tx: Sql, worker: number, ids: number[]) => tx<{ id: number }[]>`
  select id::float8 as id from upstream_tasks where id = any(${ids}::bigint[]) and owner_id = ${worker} order by id for update`;

export interface Finish {
  id: number;
  /** polls made (memory is ahead of the row's checkpoint) */
  polls: number;
  type: EventType;
  head: string;
  data: string;
  status: string | null;
  raw: string | null;
}

/**
 * Ends owned tasks, many per transaction: removes each from the schedule, stores the final
 * snapshot, locks the task's active watches, writes one outbox row per subscribed watch and
 * moves every watch on — atomically. → the ids ended (missing: no longer ours) and how many
 * outbox rows were written.
 */
export async function finishTasks(sql: Sql, worker: number, rows: Finish[], now: Date): Promise<{ done: Set<number>; enqueued: number }> {
  return sql.begin(async (tx) => {
    const locked = await lockOwned(tx as unknown as Sql, worker, rows.map((r) => r.id));
    const mine = new Set(locked.map((l) => Number(l.id)));
    const go = rows.filter((r) => mine.has(r.id));
    if (go.length === 0) return { done: mine, enqueued: 0 };
    const col = <K extends keyof Finish>(k: K) => go.map((r) => r[k]);
    const t = tx as unknown as Sql;
    const [row] = await t<{ enqueued: number }[]>`
      with r as (
        select * from unnest(
          ${col('id')}::bigint[], ${col('polls')}::int[], ${col('type')}::text[], ${col('head')}::text[],
          ${col('data')}::text[], ${col('status')}::text[], ${col('raw')}::text[]
        ) as r(id, polls, type, head, data, status, raw)
      ), gone as (
        delete from upstream_tasks where id = any(${col('id')}::bigint[]) and owner_id = ${worker}
        returning id, tenant_id, task_id, polls
      ), snap as (
        insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
        select g.tenant_id, g.task_id, r.status, r.raw, greatest(g.polls, r.polls) from gone g join r on r.id = g.id where r.raw is not null
        on conflict (tenant_id, task_id) do update
          set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
      ), ws as (
        select w.id, w.tenant_id, w.task_id, w.callback_url, w.metadata, r.type, r.head, r.data, r.type = any(w.events) as subscribed
          from watches w join gone g on w.tenant_id = g.tenant_id and w.task_id = g.task_id join r on r.id = g.id
         where w.status = 'watching'
         for update of w
      ), ${outboxCtes(t, now, t`type`, true, t`data`, t`where subscribed`)}, moved as (
        -- a watch that did not subscribe to this outcome has nothing left to send
        update watches w set status = case when ws.subscribed then 'delivering' else 'delivered' end, outcome = ws.type, updated_at = now()
          from ws where w.id = ws.id
      )
      select (select count(*)::int from ins) as enqueued`;
    return { done: mine, enqueued: row?.enqueued ?? 0 };
  });
}

export interface Started extends ScheduleState {
  status: string;
  raw: string;
  hash: number;
  head: string;
}

/**
 * First `processing` answers, many per transaction: record them (schedule, snapshot) and
 * send task.processing once to the watches that asked for it. → the ids written.
 */
export async function startTasks(sql: Sql, worker: number, rows: Started[], now: Date): Promise<{ done: Set<number>; enqueued: number }> {
  return sql.begin(async (tx) => {
    const t = tx as unknown as Sql;
    const locked = await lockOwned(t, worker, rows.map((r) => r.id));
    const mine = new Set(locked.map((l) => Number(l.id)));
    const go = rows.filter((r) => mine.has(r.id));
    if (go.length === 0) return { done: mine, enqueued: 0 };
    const col = <K extends keyof Started>(k: K) => go.map((r) => r[k]);
    const [row] = await t<{ enqueued: number }[]>`
      with r as (
        select * from unnest(
          ${col('id')}::bigint[], ${col('dueInMs')}::float8[], ${col('polls')}::int[], ${col('status')}::text[],
          ${col('raw')}::text[], ${col('hash')}::float8[], ${col('head')}::text[]
        ) as r(id, due_ms, polls, status, raw, hash, head)
      ), kept as (
        update upstream_tasks u
           set next_poll_at = now() + r.due_ms * interval '1 millisecond', polls = greatest(u.polls, r.polls),
               unauthorized_streak = 0, error_streak = 0, processing_seen = true, snapshot_hash = r.hash::bigint,
               last_poll_error = null, last_poll_error_at = null
          from r
         where u.id = r.id and u.owner_id = ${worker}
        returning u.id, u.tenant_id, u.task_id, u.polls
      ), snap as (
        insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
        select k.tenant_id, k.task_id, r.status, r.raw, k.polls from kept k join r on r.id = k.id
        on conflict (tenant_id, task_id) do update
          set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
      ), ws as (
        select w.id, w.tenant_id, w.task_id, w.callback_url, w.metadata, r.raw, r.head
          from watches w join kept k on w.tenant_id = k.tenant_id and w.task_id = k.task_id join r on r.id = k.id
         where w.status = 'watching' and not w.processing_sent and 'task.processing' = any(w.events)
         for update of w
      ), flagged as (
        update watches w set processing_sent = true, updated_at = now() from ws where w.id = ws.id
      ), ${outboxCtes(t, now, t`'task.processing'`, false, t`raw`)}
      select (select count(*)::int from ins) as enqueued`;
    return { done: mine, enqueued: row?.enqueued ?? 0 };
  });
}

/**
 * Pushes a tenant's unowned tasks past `ms` (spread a little, so they don't all return at
 * once): the shared half of a tenant's upstream pause (owned tasks honour this worker's
 * breaker in memory; every other worker's breaker trips on its own first 429s). → how many.
 */
export async function deferTenant(sql: Sql, tenantId: string, ms: number): Promise<number> {
  const spread = Math.min(5_000, ms * 0.1);
  const moved = await sql`
    update upstream_tasks
       set next_poll_at = greatest(next_poll_at, now() + (${ms} + random() * ${spread}) * interval '1 millisecond')
     where tenant_id = ${tenantId} and owner_id is null and lease_token is null`;
  return moved.count;
}

/**
 * The channel on which a task's removal by someone other than its owner (the last watch
 * cancelled) is announced, payload the task's id: its owner drops it from memory at once
 * instead of polling it until its next write finds the row gone (≤ a checkpoint). A lost
 * notification (the listening connection was down) only falls back to that.
 */
export const TASK_GONE_CHANNEL = 'taskhook_task_gone';

/** Removes a task's schedule row (in the caller's transaction) and tells its owner. */
export async function removeTask(tx: Sql, id: number): Promise<void> {
  await tx`
    with gone as (delete from upstream_tasks where id = ${id} returning id, owner_id)
    select pg_notify(${TASK_GONE_CHANNEL}, id::text) from gone where owner_id is not null`;
}

/** ms until the next unowned task falls due (≤ 0: due now; null: none). */
export async function nextUnownedDueMs(sql: Sql): Promise<number | null> {
  const [row] = await sql<{ ms: number | null }[]>`
    select (extract(epoch from min(next_poll_at) - now()) * 1000)::float8 as ms from upstream_tasks where owner_id is null`;
  return row?.ms ?? null;
}
