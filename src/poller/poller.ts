// The poller: claims due tasks in batches under a lease, asks upstream once per
// task (however many watches share it), and records what it learned. A terminal
// status or a give-up writes the outbox rows in the same transaction that removes
// the task from the schedule, so no outcome is ever decided without its webhook.
import type { Sql } from '../db/client.js';
import { ClaimLoop } from '../engine/loop.js';
import type { TenantDirectory } from '../tenancy/directory.js';
import { TERMINAL_STATUSES, type PollResult, type UpstreamClient } from '../upstream/client.js';
import { nextPollDelayMs, type PollSignal } from '../upstream/schedule.js';
import { giveUpData, outboxIdPrefix, webhookHead, type EventType, type GiveUpCode } from '../delivery/outbox.js';
import type { Logger } from '../log.js';
import { Breaker, overranDeadline } from '../engine/breaker.js';
import { TokenBuckets } from '../engine/token-bucket.js';
import { BatchWriter } from '../engine/batch.js';
import { snapshotHash } from './snapshot-hash.js';
import { PollErrorLog, pollErrorOf, pollErrorWrite } from './poll-error.js';
import { noFaults, type Fault } from '../faults.js';
import type { Metrics, PollOutcome } from '../metrics.js';
import type { DurationCache } from '../durations/cache.js';

export interface ClaimedTask {
  id: number;
  tenant_id: string;
  task_id: string;
  lease_token: string;
  unauthorized_streak: number;
  error_streak: number;
  processing_seen: boolean;
  /** hash of the snapshot stored last (null: unknown) */
  snapshot_hash: number | null;
  age_ms: number;
  /** seconds between the row's due time and this claim */
  lateness_s: number;
  /** local clock at claim, to notice a lease lost while this process was paused */
  claimed_at: number;
  /** the watch's last_poll_error as stored (poll-error.ts) */
  last_poll_error: string | null;
  /** this poll's failure (null: it got the task), once a request was made */
  poll_error?: string | null;
}

export interface PollerOptions {
  sql: Sql;
  tenants: TenantDirectory;
  upstream: UpstreamClient;
  log: Logger;
  notFoundGraceMs: number;
  maxWatchAgeMs: number;
  pollScale?: number;
  /** Called after events were committed, to wake the deliverer in this process. */
  onEnqueued?: () => void;
  batchSize?: number;
  maxInFlight?: number;
  idleMs?: number;
  /** Longer than the upstream request deadline (see leaseFor): an expired lease makes the task due again. */
  leaseMs: number;
  /** the upstream request deadline: no request is started unless it can finish inside the lease */
  requestTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
  fault?: Fault;
  /** counters and histograms (src/metrics.ts); absent → nothing is measured */
  metrics?: Metrics;
  /** learned task durations (adaptive strategy); absent → the fixed cadence */
  durations?: Pick<DurationCache, 'timing'>;
}

const UNAUTHORIZED_LIMIT = 3;

const pollOutcome = (r: PollResult): PollOutcome =>
  r.kind === 'task' ? (TERMINAL_STATUSES.has(r.status) ? 'terminal' : 'running') : r.kind;

export function createPoller(o: PollerOptions) {
  const { sql, log } = o;
  const leaseMs = o.leaseMs;
  const random = o.random ?? Math.random;
  const now = o.now ?? Date.now;
  const fault = o.fault ?? noFaults;
  const metrics = o.metrics;
  // Per-tenant upstream health: a 429 or a run of errors pauses that tenant's polling
  // (every process honours it through the deferred next_poll_at), not anyone else's.
  const pollBuckets = new TokenBuckets();
  const upstreamBreaker = new Breaker({ threshold: 5, baseOpenMs: 5_000 * (o.pollScale ?? 1), maxOpenMs: 300_000 });
  const pollErrors = new PollErrorLog(log, now);

  const claim = async (limit: number) => {
    const rows = await claimSql(limit);
    const at = now();
    for (const r of rows) r.claimed_at = at;
    if (metrics) {
      metrics.claimed('poller', rows.length);
      for (const r of rows) metrics.pollLateness(r.lateness_s);
    }
    return rows;
  };

  /** Push a tenant's waiting tasks past `ms` (spread a little, so they don't all return at once). */
  async function deferTenant(tenantId: string, ms: number) {
    const spread = Math.min(5_000, ms * 0.1);
    const moved = await sql`
      update upstream_tasks
         set next_poll_at = greatest(next_poll_at, now() + (${ms} + random() * ${spread}) * interval '1 millisecond')
       where tenant_id = ${tenantId} and lease_token is null`;
    log.warn({ tenant: tenantId, pause_ms: Math.round(ms), tasks: moved.count }, 'pausing polls for tenant');
  }

  async function release(tasks: ClaimedTask[]) {
    await sql`
      update upstream_tasks u set lease_token = null, next_poll_at = now()
        from unnest(${tasks.map((t) => t.id)}::bigint[], ${tasks.map((t) => t.lease_token)}::uuid[]) as r(id, token)
       where u.id = r.id and u.lease_token = r.token`;
  }

  // The update's `returning` sees the new next_poll_at (the lease expiry); the due time
  // it replaced, for the lateness metric, comes from the locked rows themselves (`due`),
  // joined to the claimed ones afterwards: two CTEs of one batch each, a hash join of a
  // few hundred rows. (EXPLAIN ANALYZE at a million rows: the same pkey index scan, and
  // the same ~5 ms per 250-row claim as without the join.)
  const claimSql = (limit: number) => sql<ClaimedTask[]>`
    with due as (
      select id, next_poll_at from upstream_tasks
       where next_poll_at <= now()
       order by next_poll_at
       limit ${limit}
       for update skip locked
    ), claimed as (
      update upstream_tasks t
         set lease_token = gen_random_uuid(),
             next_poll_at = now() + ${leaseMs} * interval '1 millisecond',
             polls = t.polls + 1
       -- = any(array(…)) rather than a join: the planner then fetches the claimed rows by
       -- primary key instead of hash-joining against a scan of the whole table, which
       -- keeps the claim O(batch) at a million rows (seen in EXPLAIN ANALYZE).
       where t.id = any(array(select id from due))
      returning t.id, t.tenant_id, t.task_id, t.lease_token, t.unauthorized_streak, t.error_streak,
                t.processing_seen, t.last_poll_error, t.snapshot_hash::float8 as snapshot_hash, (extract(epoch from now() - t.created_at) * 1000)::float8 as age_ms)
    select c.*, extract(epoch from now() - due.next_poll_at)::float8 as lateness_s from claimed c join due on due.id = c.id`;

  /** Lease-guarded reschedule, recording the snapshot (if any) in the same statement. */
  interface Reschedule {
    id: number;
    token: string;
    delayMs: number;
    unauthorized: number;
    errors: number;
    processing: boolean;
    status: string | null;
    /** the snapshot, only when it differs from the stored one (its hash is `hash`) */
    raw: string | null;
    hash: number | null;
    /** 1: set last_poll_error to pollError (null clears it); 0: leave it (poll-error.ts) */
    pollErrorChanged: number;
    pollError: string | null;
  }

  /**
   * Every non-final poll outcome goes through one statement per batch: the
   * lease-guarded reschedule of all of them, and the snapshots that changed.
   * At thousands of polls a second this is the difference between one write per
   * poll and one per few hundred.
   */
  // (processing goes as int[]: postgres.js does not serialise bool[] parameters)
  const rescheduler = new BatchWriter<Reschedule, void>(async (rows) => {
    await sql`
      with r as (
        select * from unnest(
          ${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.token)}::uuid[], ${rows.map((r) => r.delayMs)}::float8[],
          ${rows.map((r) => r.unauthorized)}::int[], ${rows.map((r) => r.errors)}::int[], ${rows.map((r) => (r.processing ? 1 : 0))}::int[],
          ${rows.map((r) => r.status)}::text[], ${rows.map((r) => r.raw)}::text[], ${rows.map((r) => r.hash)}::float8[],
          ${rows.map((r) => r.pollErrorChanged)}::int[], ${rows.map((r) => r.pollError)}::text[]
        ) as r(id, token, delay_ms, unauthorized, errors, processing, status, raw, hash, pe_changed, pe)
      ), t as (
        update upstream_tasks u
           set lease_token = null, next_poll_at = now() + r.delay_ms * interval '1 millisecond',
               unauthorized_streak = r.unauthorized, error_streak = r.errors, processing_seen = r.processing <> 0,
               snapshot_hash = coalesce(r.hash::bigint, u.snapshot_hash),
               last_poll_error = case when r.pe_changed <> 0 then r.pe else u.last_poll_error end,
               last_poll_error_at = case when r.pe_changed = 0 then u.last_poll_error_at when r.pe is not null then now() end
          from r
         where u.id = r.id and u.lease_token = r.token
        returning u.id, u.tenant_id, u.task_id, u.polls)
      insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
      select t.tenant_id, t.task_id, r.status, r.raw, t.polls from t join r on r.id = t.id where r.raw is not null
      on conflict (tenant_id, task_id) do update
        set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
        where task_snapshots.snapshot is distinct from excluded.snapshot`;
    return rows.map(() => undefined);
  }, 500, 10);

  function reschedule(task: ClaimedTask, signal: PollSignal, changes: Partial<ClaimedTask>, snapshot?: { status: string; raw: string; body?: Record<string, unknown> }) {
    // Most polls of a running task get the same answer as last time: then only the schedule moves.
    // (A snapshot written by a process of an older release leaves the hash stale; the
    // worst that does is skip storing one answer that equals the one hashed.)
    const hash = snapshot ? snapshotHash(snapshot.raw) : null;
    const changed = snapshot !== undefined && hash !== task.snapshot_hash;
    const pollError = pollErrorWrite(task.last_poll_error, task.poll_error);
    return rescheduler.add({
      id: task.id,
      token: task.lease_token,
      delayMs: nextPollDelayMs(signal, { ageMs: task.age_ms, random: random(), scale: o.pollScale, adaptive: o.durations?.timing(task.tenant_id, snapshot?.body) }),
      unauthorized: changes.unauthorized_streak ?? 0,
      errors: changes.error_streak ?? 0,
      processing: changes.processing_seen ?? task.processing_seen,
      status: changed ? snapshot.status : null,
      raw: changed ? snapshot.raw : null,
      hash: changed ? hash : null,
      pollErrorChanged: pollError ? 1 : 0,
      pollError: pollError?.message ?? null,
    });
  }

  /**
   * The outbox rows of one batch, from a CTE `ws` of (id, tenant_id, callback_url, metadata,
   * head) per watch: a webhook id, the origin the per-endpoint caps count, and the body as
   * outbox.ts describes it, upstream's JSON (`data`) spliced in verbatim. Returns 1 per row.
   */
  const outboxInsert = (type: ReturnType<Sql>, terminal: boolean, data: ReturnType<Sql>, where: ReturnType<Sql> = sql``) => sql`
    insert into deliveries (id, tenant_id, watch_id, event_type, terminal, callback_url, endpoint, payload)
    select ${outboxIdPrefix(new Date(now()))} || substr(md5(gen_random_uuid()::text), 1, 16), tenant_id, id, ${type}, ${terminal}, callback_url,
           substring(callback_url from '^[a-z][a-z0-9+.-]*://[^/?#]+'),
           head || id || '","metadata":' || metadata::text || ',"data":' || ${data} || '}'
      from ws ${where}
    returning 1`;

  interface Finish {
    id: number;
    token: string;
    type: EventType;
    head: string;
    data: string;
    status: string | null;
    raw: string | null;
  }

  /**
   * Ends tasks, many per statement (one round trip and one commit for a whole batch of
   * terminal polls): removes each from the schedule if we still hold its lease, stores
   * the final snapshot, locks the task's active watches, writes one outbox row per
   * subscribed watch and moves every watch on — atomically. The body is assembled as
   * outbox.ts describes it, upstream's data spliced in verbatim.
   * (`id = any(ids) and lease_token = any(tokens)` equals matching pairs, since every
   * claim mints its own token, and keeps the delete an index scan at a million rows.)
   */
  const finisher = new BatchWriter<Finish, void>(async (rows) => {
    const col = <K extends keyof Finish>(k: K) => rows.map((r) => r[k]);
    const [row] = await sql<{ enqueued: number }[]>`
      with r as (
        select * from unnest(
          ${col('id')}::bigint[], ${col('token')}::uuid[], ${col('type')}::text[], ${col('head')}::text[],
          ${col('data')}::text[], ${col('status')}::text[], ${col('raw')}::text[]
        ) as r(id, token, type, head, data, status, raw)
      ), gone as (
        delete from upstream_tasks
         where id = any(${col('id')}::bigint[]) and lease_token = any(${col('token')}::uuid[])
        returning id, tenant_id, task_id, polls
      ), snap as (
        insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
        select g.tenant_id, g.task_id, r.status, r.raw, g.polls from gone g join r on r.id = g.id where r.raw is not null
        on conflict (tenant_id, task_id) do update
          set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
      ), ws as (
        select w.id, w.tenant_id, w.callback_url, w.metadata, r.type, r.head, r.data, r.type = any(w.events) as subscribed
          from watches w join gone g on w.tenant_id = g.tenant_id and w.task_id = g.task_id join r on r.id = g.id
         where w.status = 'watching'
         for update of w
      ), ins as (
        ${outboxInsert(sql`type`, true, sql`data`, sql`where subscribed`)}
      ), moved as (
        -- a watch that did not subscribe to this outcome has nothing left to send
        update watches w set status = case when ws.subscribed then 'delivering' else 'delivered' end, outcome = ws.type, updated_at = now()
          from ws where w.id = ws.id
      )
      select (select count(*)::int from ins) as enqueued`;
    if ((row?.enqueued ?? 0) > 0) o.onEnqueued?.();
    return rows.map(() => undefined);
  }, 500, 5);

  function finish(task: ClaimedTask, type: EventType, dataJson: string, snapshot?: { status: string; raw: string }) {
    return finisher.add({
      id: task.id,
      token: task.lease_token,
      type,
      head: webhookHead(type, new Date(now())),
      data: dataJson,
      status: snapshot?.status ?? null,
      raw: snapshot?.raw ?? null,
    });
  }

  async function giveUp(task: ClaimedTask, code: GiveUpCode) {
    log.info({ tenant: task.tenant_id, task_id: task.task_id, code }, 'giving up on task');
    await finish(task, 'watch.failed', giveUpData(task.task_id, code));
    metrics?.giveUp(code);
  }

  /** First `processing` answer: record it and send task.processing to the watches that asked. */
  interface Started {
    id: number;
    token: string;
    delayMs: number;
    status: string;
    raw: string;
    hash: number;
    head: string;
  }

  /**
   * First `processing` answers, many per statement (every task has one, so at thousands
   * of registrations a second this is as hot as the rest): reschedule under the lease,
   * store the snapshot, and send task.processing once to the watches that asked for it.
   */
  const starter = new BatchWriter<Started, void>(async (rows) => {
    const col = <K extends keyof Started>(k: K) => rows.map((r) => r[k]);
    const [row] = await sql<{ enqueued: number }[]>`
      with r as (
        select * from unnest(
          ${col('id')}::bigint[], ${col('token')}::uuid[], ${col('delayMs')}::float8[], ${col('status')}::text[],
          ${col('raw')}::text[], ${col('hash')}::float8[], ${col('head')}::text[]
        ) as r(id, token, delay_ms, status, raw, hash, head)
      ), kept as (
        update upstream_tasks u
           set lease_token = null, next_poll_at = now() + r.delay_ms * interval '1 millisecond',
               unauthorized_streak = 0, error_streak = 0, processing_seen = true, snapshot_hash = r.hash::bigint,
               last_poll_error = null, last_poll_error_at = null
          from r
         where u.id = r.id and u.lease_token = r.token
        returning u.id, u.tenant_id, u.task_id, u.polls
      ), snap as (
        insert into task_snapshots (tenant_id, task_id, status, snapshot, polls)
        select k.tenant_id, k.task_id, r.status, r.raw, k.polls from kept k join r on r.id = k.id
        on conflict (tenant_id, task_id) do update
          set status = excluded.status, snapshot = excluded.snapshot, polls = excluded.polls, updated_at = now()
      ), ws as (
        select w.id, w.tenant_id, w.callback_url, w.metadata, r.raw, r.head
          from watches w join kept k on w.tenant_id = k.tenant_id and w.task_id = k.task_id join r on r.id = k.id
         where w.status = 'watching' and not w.processing_sent and 'task.processing' = any(w.events)
         for update of w
      ), flagged as (
        update watches w set processing_sent = true, updated_at = now() from ws where w.id = ws.id
      ), ins as (
        ${outboxInsert(sql`'task.processing'`, false, sql`raw`)}
      )
      select (select count(*)::int from ins) as enqueued`;
    if ((row?.enqueued ?? 0) > 0) o.onEnqueued?.();
    return rows.map(() => undefined);
  }, 500, 10);

  /** First `processing` answer: record it and send task.processing to the watches that asked. */
  function processingStarted(task: ClaimedTask, snapshot: { status: string; raw: string; body?: Record<string, unknown> }) {
    return starter.add({
      id: task.id,
      token: task.lease_token,
      delayMs: nextPollDelayMs({ kind: 'ok' }, { ageMs: task.age_ms, random: random(), scale: o.pollScale, adaptive: o.durations?.timing(task.tenant_id, snapshot.body) }),
      status: snapshot.status,
      raw: snapshot.raw,
      hash: snapshotHash(snapshot.raw),
      head: webhookHead('task.processing', new Date(now())),
    });
  }

  async function work(task: ClaimedTask): Promise<void> {
    fault('poll.after-claim');
    const tenant = await o.tenants.get(task.tenant_id);
    if (!tenant) {
      // Disabled or deleted tenant: nothing to poll with. Check back later rather than guess.
      metrics?.poll('skipped');
      await reschedule(task, { kind: 'error', streak: 7 }, {});
      return;
    }
    const paused = upstreamBreaker.openFor(task.tenant_id, now());
    if (paused > 0) {
      metrics?.poll('throttled');
      await reschedule(task, { kind: 'rate_limited', retryAfterMs: paused, streak: task.error_streak }, { error_streak: task.error_streak, unauthorized_streak: task.unauthorized_streak });
      return;
    }
    const rate = tenant.limits.maxPollsPerS;
    if (rate !== null) {
      const waitMs = pollBuckets.take(task.tenant_id, rate, Math.max(1, rate), now());
      if (waitMs > 0) {
        // Over the tenant's polls/s: come back when a token is due, without asking upstream.
        metrics?.poll('throttled');
        await reschedule(task, { kind: 'rate_limited', retryAfterMs: waitMs + random() * 1000, streak: task.error_streak }, { error_streak: task.error_streak, unauthorized_streak: task.unauthorized_streak });
        return;
      }
    }
    // Paused (SIGSTOP, a long GC) past the lease? Someone else owns the task now.
    if (now() - task.claimed_at > leaseMs - (o.requestTimeoutMs ?? 0)) {
      metrics?.poll('skipped');
      return;
    }
    const asked = now();
    const result: PollResult = await o.upstream.fetchTask(tenant.upstreamBaseUrl, tenant.upstreamApiKey, task.task_id);
    metrics?.poll(pollOutcome(result));
    task.poll_error = pollErrorOf(result);
    if (task.poll_error !== null) pollErrors.failed(task.tenant_id, task.task_id, task.poll_error);
    fault('poll.before-commit');
    // (a failure that overran its deadline: this process was paused, which says nothing about upstream)
    const wePaused = o.requestTimeoutMs !== undefined && overranDeadline(now() - asked, o.requestTimeoutMs);
    if (!(wePaused && result.kind === 'error')) await trackUpstreamHealth(task.tenant_id, result);
    const expired = task.age_ms > o.maxWatchAgeMs;
    switch (result.kind) {
      case 'task': {
        const snapshot = { status: result.status, raw: result.raw, body: result.body };
        if (TERMINAL_STATUSES.has(result.status)) {
          log.info({ tenant: task.tenant_id, task_id: task.task_id, status: result.status }, 'task finished');
          return finish(task, `task.${result.status}` as EventType, result.raw, snapshot);
        }
        if (expired) return giveUp(task, 'watch_expired');
        if (result.status === 'processing' && !task.processing_seen) return processingStarted(task, snapshot);
        return reschedule(task, { kind: 'ok' }, {}, snapshot);
      }
      case 'unauthorized': {
        const streak = task.unauthorized_streak + 1;
        if (streak >= UNAUTHORIZED_LIMIT) return giveUp(task, 'upstream_unauthorized');
        if (expired) return giveUp(task, 'watch_expired');
        return reschedule(task, { kind: 'ok' }, { unauthorized_streak: streak });
      }
      case 'not_found':
        if (task.age_ms > o.notFoundGraceMs) return giveUp(task, 'task_not_found');
        return reschedule(task, { kind: 'ok' }, {});
      case 'rate_limited': {
        if (expired) return giveUp(task, 'watch_expired');
        const streak = task.error_streak + 1;
        return reschedule(task, { kind: 'rate_limited', retryAfterMs: result.retryAfterMs, streak }, { error_streak: streak });
      }
      case 'error': {
        if (expired) return giveUp(task, 'watch_expired');
        const streak = Math.min(task.error_streak + 1, 30);
        return reschedule(task, { kind: 'error', streak }, { error_streak: streak });
      }
    }
  }

  async function trackUpstreamHealth(tenantId: string, result: PollResult) {
    if (result.kind === 'rate_limited') {
      const ms = result.retryAfterMs ?? 5_000 * (o.pollScale ?? 1);
      if (upstreamBreaker.block(tenantId, now(), ms)) await deferTenant(tenantId, ms);
    } else if (result.kind === 'error') {
      const ms = upstreamBreaker.failure(tenantId, now());
      if (ms > 0) await deferTenant(tenantId, ms);
    } else {
      upstreamBreaker.success(tenantId);
    }
  }

  const nextDueMs = async () => {
    const [row] = await sql<{ ms: number | null }[]>`
      select (extract(epoch from min(next_poll_at) - now()) * 1000)::float8 as ms from upstream_tasks`;
    return row?.ms ?? null;
  };

  return new ClaimLoop<ClaimedTask>({
    name: 'poller',
    claim,
    work,
    release,
    nextDueMs,
    maxInFlight: o.maxInFlight ?? 1024,
    batchSize: o.batchSize ?? 250,
    idleMs: o.idleMs ?? 250,
    log,
  });
}
