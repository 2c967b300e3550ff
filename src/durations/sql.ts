// Every statement of the duration learner and its cache, named.
import type { Sql } from '../db/client.js';

export interface FinishedRow {
  tenant_id: string;
  task_id: string;
  status: string;
  snapshot: string;
  polls: number;
  /** ms since epoch */
  seen_at: number;
  /** updated_at to the microsecond, for the watermark */
  seen_at_exact: string;
}

export interface DurationRow {
  tenant_id: string;
  capability: string;
  action: string;
  model: string;
  histogram: unknown;
  samples: number;
  /** ms since epoch */
  updated_at: number;
}

export interface Watermark {
  /** a timestamptz as text, to the microsecond (sent as ::text: postgres.js would serialise a timestamptz parameter through Date, to the millisecond) */
  at: string;
  tenant: string;
  task: string;
}

export const durationSql = (sql: Sql) => ({
  /** The row the learners take turns on; created on first start, an hour back so recent history is learned. */
  ensureWatermark: () => sql`
    insert into duration_learner (id, watermark_at) values (1, now() - interval '1 hour') on conflict (id) do nothing`,

  /**
   * Terminal snapshots after the watermark, oldest first, leaving the last `settleMs`
   * for the next round (a transaction that began earlier may still commit rows stamped
   * before now). Walks task_snapshots_updated_idx from the watermark.
   */
  finishedSince: (tx: Sql, w: Watermark, settleMs: number, limit: number) => tx<FinishedRow[]>`
    select tenant_id, task_id, status, snapshot, polls, (extract(epoch from updated_at) * 1000)::float8 as seen_at, updated_at::text as seen_at_exact
      from task_snapshots
     where updated_at >= ${w.at}::text::timestamptz
       and (updated_at, tenant_id, task_id) > (${w.at}::text::timestamptz, ${w.tenant}::text, ${w.task}::text)
       and updated_at <= now() - ${settleMs} * interval '1 millisecond'
       and status in ('completed', 'failed', 'cancelled')
     order by updated_at, tenant_id, task_id
     limit ${limit}`,

  /** Locks the watermark for this fold; none when another process is folding (skip this round). */
  lockWatermark: (tx: Sql) => tx<{ at: string; tenant: string; task: string; now: Date }[]>`
    select watermark_at::text as at, watermark_tenant as tenant, watermark_task as task, now() as now
      from duration_learner where id = 1 for update skip locked`,

  /** Where the next round starts: the last row read, or (when the batch was short) the settle horizon. */
  moveWatermark: (tx: Sql, w: Watermark | { horizonMs: number }) =>
    'horizonMs' in w
      ? tx`update duration_learner set watermark_at = now() - ${w.horizonMs} * interval '1 millisecond', watermark_tenant = '', watermark_task = ''
            where id = 1 and watermark_at < now() - ${w.horizonMs} * interval '1 millisecond'`
      : tx`update duration_learner set watermark_at = ${w.at}::text::timestamptz, watermark_tenant = ${w.tenant}, watermark_task = ${w.task} where id = 1`,

  /** The stored histograms of these kinds, locked for the fold. */
  kinds: (tx: Sql, keys: { tenant: string; capability: string; action: string; model: string }[]) => tx<DurationRow[]>`
    select d.tenant_id, d.capability, d.action, d.model, d.histogram, d.samples::float8 as samples,
           (extract(epoch from d.updated_at) * 1000)::float8 as updated_at
      from task_durations d
      join unnest(${keys.map((k) => k.tenant)}::text[], ${keys.map((k) => k.capability)}::text[],
                  ${keys.map((k) => k.action)}::text[], ${keys.map((k) => k.model)}::text[]) as k(t, c, a, m)
        on d.tenant_id = k.t and d.capability = k.c and d.action = k.a and d.model = k.m
       for update of d`,

  /** How many kinds each of these tenants has learned (new kinds stop at MAX_KINDS_PER_TENANT). */
  kindCounts: (tx: Sql, tenants: string[]) => tx<{ tenant_id: string; n: number }[]>`
    select tenant_id, count(*)::int as n from task_durations where tenant_id = any(${tenants}::text[]) group by tenant_id`,

  /** One upsert for the whole batch. */
  upsert: (tx: Sql, rows: { tenant: string; capability: string; action: string; model: string; histogram: string; added: number }[]) => tx`
    insert into task_durations (tenant_id, capability, action, model, histogram, samples, updated_at)
    select t, c, a, m, h::jsonb, n, now()
      from unnest(${rows.map((r) => r.tenant)}::text[], ${rows.map((r) => r.capability)}::text[], ${rows.map((r) => r.action)}::text[],
                  ${rows.map((r) => r.model)}::text[], ${rows.map((r) => r.histogram)}::text[], ${rows.map((r) => r.added)}::bigint[]) as r(t, c, a, m, h, n)
    on conflict (tenant_id, capability, action, model) do update
      set histogram = excluded.histogram, samples = task_durations.samples + excluded.samples, updated_at = now()`,

  /** The cache's refresh: rows changed since `sinceMs` (a little overlap is harmless). */
  changedSince: (sinceMs: number) => sql<DurationRow[]>`
    select tenant_id, capability, action, model, histogram, samples::float8 as samples,
           (extract(epoch from updated_at) * 1000)::float8 as updated_at
      from task_durations
     where updated_at >= to_timestamp(${sinceMs / 1000})
     order by updated_at`,
});
